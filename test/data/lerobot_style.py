"""Build a dataset the way lerobot 0.4.4's own writer lays it out, with pyarrow + PyAV only (no
policy_stack writer), so the tests of our reader and writer meet LeRobot's conventions, not ours:

- one plain `observation.state` vector (LeRobot's usual key), no split `observation.state.<key>`;
- every episode in ONE data parquet and ONE mp4 per camera (`from_timestamp` > 0 after the first);
- a 2-D uint16 depth feature stored as nested lists, with stats per image column, shape (W,), which is
  what LeRobot computes for a (T, H, W) numeric feature (reduce over frames, then over rows);
- images stats (3, 1, 1) in [0, 1]; every feature, the 5 default ones included, has per-episode
  `stats/<feature>/<stat>` columns and an entry in meta/stats.json;
- meta/tasks.parquet with the task text as the pandas index (pandas 3 writes it as large_string).

test/interop/test_lerobot.py checks, when a lerobot venv is present, that lerobot itself loads what
this writes, and that what lerobot writes has these shapes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from policy_stack.data.video import encode_rgb_video

FPS = 10
STATE_NAMES = [f"joint{i}.pos" for i in range(6)]
DEPTH_KEY = "observation.depth.wrist"
CAMERA_KEY = "observation.images.front"
IMG = 16            # camera frames are IMG x IMG (even: yuv420p)
DEPTH_HW = (6, 8)
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
DEFAULT_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def make_frames(length: int, seed: int, depth: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float32)[:, None, None]
    yy, xx = np.mgrid[0:IMG, 0:IMG].astype(np.float32)
    rgb = np.stack([128 + 100 * np.sin(xx / 5 + t / 3 + seed), 128 + 100 * np.cos(yy / 4 - t / 4),
                    np.full_like(xx + t, 90.0)], -1).astype(np.uint8)
    out = {"observation.state": rng.normal(size=(length, 6)).astype(np.float32),
           "action": rng.uniform(-1, 1, (length, 6)).astype(np.float32),
           CAMERA_KEY: rgb}
    if depth:
        out[DEPTH_KEY] = rng.integers(200, 3000, (length, *DEPTH_HW)).astype(np.uint16)
    return out


def _stats(values: np.ndarray, image: bool = False) -> dict:
    values = np.asarray(values)
    if image:                                   # (T, H, W, 3) uint8 -> per channel (3, 1, 1) in [0, 1]
        flat = values.reshape(-1, 3).astype(np.float64) / 255.0
    elif values.ndim == 1:
        flat = values.reshape(-1, 1)
    else:                                       # (T, n) or (T, H, W): one entry per last-axis index
        flat = values.reshape(-1, values.shape[-1])
    out = {"min": flat.min(0), "max": flat.max(0), "mean": flat.astype(np.float64).mean(0),
           "std": flat.astype(np.float64).std(0), "count": np.array([len(values)])}
    out.update({k: np.quantile(flat.astype(np.float64), q, axis=0) for k, q in QUANTILES.items()})
    if image:
        out = {k: (v if k == "count" else v.reshape(3, 1, 1)) for k, v in out.items()}
    return out


def _aggregate(per_episode: list[dict]) -> dict:
    counts = np.array([s["count"][0] for s in per_episode], np.float64)
    w = counts / counts.sum()
    shape = (-1,) + (1,) * (np.asarray(per_episode[0]["mean"]).ndim)
    means = np.stack([s["mean"] for s in per_episode])
    mean = (means * w.reshape(shape)).sum(0)
    var = ((np.stack([s["std"] for s in per_episode]) ** 2 + (means - mean) ** 2) * w.reshape(shape)).sum(0)
    out = {"min": np.min([s["min"] for s in per_episode], 0), "max": np.max([s["max"] for s in per_episode], 0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(counts.sum())])}
    out.update({k: (np.stack([s[k] for s in per_episode]) * w.reshape(shape)).sum(0) for k in QUANTILES})
    return out


def _tasks_table(tasks: list[str]) -> pa.Table:
    meta = {"index_columns": ["__index_level_0__"], "column_indexes": [],
            "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                         "numpy_type": "int64", "metadata": None},
                        {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                         "numpy_type": "object", "metadata": None}],
            "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "3.1.1"}
    schema = pa.schema([("task_index", pa.int64()), ("__index_level_0__", pa.large_string())],
                       metadata={b"pandas": json.dumps(meta).encode()})
    return pa.table({"task_index": list(range(len(tasks))), "__index_level_0__": tasks}, schema=schema)


def write_lerobot_style(root, lengths=(12, 9), depth: bool = True, image_feature: bool = False,
                        task: str = "pick up the block") -> tuple[Path, list[dict]]:
    """Write the dataset; returns (root, episodes as {dataset key: (T, ...) array})."""
    root = Path(root)
    episodes = [make_frames(n, seed=10 + i, depth=depth) for i, n in enumerate(lengths)]
    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": STATE_NAMES},
        "action": {"dtype": "float32", "shape": [6], "names": STATE_NAMES},
        CAMERA_KEY: {"dtype": "video", "shape": [IMG, IMG, 3], "names": ["height", "width", "channels"],
                     "info": {"video.height": IMG, "video.width": IMG, "video.codec": "h264",
                              "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": FPS,
                              "video.channels": 3, "has_audio": False}},
    }
    if depth:
        features[DEPTH_KEY] = {"dtype": "uint16", "shape": list(DEPTH_HW), "names": ["height", "width"]}
    if image_feature:   # PNG bytes in the parquet: LeRobot writes these, our writer does not
        features["observation.images.side"] = {"dtype": "image", "shape": [IMG, IMG, 3],
                                               "names": ["height", "width", "channels"]}
    for key in DEFAULT_KEYS:
        features[key] = {"dtype": "float32" if key == "timestamp" else "int64", "shape": [1], "names": None}

    columns = {k: [] for k in features if features[k]["dtype"] != "video"}
    rows, ep_stats, start = [], [], 0
    for e, ep in enumerate(episodes):
        n = len(ep["action"])
        book = {"timestamp": (np.arange(n) / FPS).astype(np.float32), "frame_index": np.arange(n),
                "episode_index": np.full(n, e), "index": start + np.arange(n), "task_index": np.zeros(n, np.int64)}
        stats = {k: _stats(v, image=(k == CAMERA_KEY)) for k, v in ep.items()}
        stats.update({k: _stats(v) for k, v in book.items()})
        for key in columns:
            if key in book:
                columns[key].extend(book[key].tolist())
            elif features[key]["dtype"] == "image":
                import cv2
                columns[key].extend({"bytes": cv2.imencode(".png", f)[1].tobytes(), "path": None}
                                    for f in ep[CAMERA_KEY])
            else:
                columns[key].extend(ep[key].tolist())
        row = {"episode_index": e, "tasks": [task], "length": n, "data/chunk_index": 0, "data/file_index": 0,
               "dataset_from_index": start, "dataset_to_index": start + n,
               f"videos/{CAMERA_KEY}/chunk_index": 0, f"videos/{CAMERA_KEY}/file_index": 0,
               f"videos/{CAMERA_KEY}/from_timestamp": start / FPS,
               f"videos/{CAMERA_KEY}/to_timestamp": (start + n) / FPS}
        row.update({f"stats/{k}/{s}": np.asarray(v).tolist() for k, st in stats.items() for s, v in st.items()})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        rows.append(row)
        ep_stats.append(stats)
        start += n

    types = {"observation.state": pa.list_(pa.float32(), 6), "action": pa.list_(pa.float32(), 6),
             DEPTH_KEY: pa.list_(pa.list_(pa.uint16())), "timestamp": pa.float32(),
             "observation.images.side": pa.struct([("bytes", pa.binary()), ("path", pa.string())])}
    data = pa.table({k: pa.array(v, types.get(k, pa.int64())) for k, v in columns.items()})
    for rel, table in (("data/chunk-000/file-000.parquet", data),
                       ("meta/episodes/chunk-000/file-000.parquet", pa.Table.from_pylist(rows)),
                       ("meta/tasks.parquet", _tasks_table([task]))):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / rel)
    video = root / f"videos/{CAMERA_KEY}/chunk-000/file-000.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    encode_rgb_video(video, np.concatenate([ep[CAMERA_KEY] for ep in episodes]), FPS)
    stats = {k: {s: np.asarray(v).tolist() for s, v in _aggregate([st[k] for st in ep_stats]).items()}
             for k in ep_stats[0]}
    (root / "meta/stats.json").write_text(json.dumps(stats, indent=4))
    info = {"codebase_version": "v3.0", "robot_type": "so101_follower", "total_episodes": len(episodes),
            "total_frames": start, "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": FPS, "splits": {"train": f"0:{len(episodes)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return root, episodes


def tree_snapshot(root) -> dict:
    """{relative path: bytes} of every file under root: 'nothing changed' means equal snapshots."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
