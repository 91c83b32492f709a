"""The format rules lerobot 0.4.4's loader relies on (docs/datasets.md, "Format checks"), checked with
pyarrow and PyAV (lerobot itself lives in a separate venv: docs/install.md)."""
import json
from fractions import Fraction

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

VIDEO_KEY = "observation.images.agentview"


def _concat(paths):
    return pa.concat_tables([pq.read_table(p) for p in paths])


def test_lerobot_checklist(written_dataset):
    root, episodes = written_dataset
    info = json.loads((root / "meta/info.json").read_text())
    fps = info["fps"]
    # Layout (1-3)
    ep_files = sorted((root / "meta/episodes").glob("*/*.parquet"))
    data_files = sorted((root / "data").glob("*/*.parquet"))
    assert (root / "meta/tasks.parquet").is_file() and ep_files and data_files
    for p in ep_files + data_files:
        assert p.parent.name.startswith("chunk-") and p.name.startswith("file-") and len(p.stem) == 8
    assert not list(root.rglob("*.tmp"))
    # info.json (4-8)
    for k in ("codebase_version", "fps", "features", "total_episodes", "total_frames", "data_path", "video_path",
              "robot_type", "total_tasks", "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "splits"):
        assert k in info, k
    for key, entry in info["features"].items():
        assert "/" not in key
        assert 1 <= len(entry["shape"]) <= 5 and all(s > 0 for s in entry["shape"])
    # tasks.parquet (10-12): pandas index holds the task text
    tasks = pq.read_table(root / "meta/tasks.parquet")
    pandas_meta = json.loads(tasks.schema.metadata[b"pandas"])
    (index_col,) = pandas_meta["index_columns"]
    assert tasks.column("task_index").to_pylist() == list(range(info["total_tasks"]))
    task_text = tasks.column(index_col).to_pylist()
    assert len(set(task_text)) == len(task_text) == info["total_tasks"]
    # Episodes table (13-16)
    eps = _concat(ep_files).to_pylist()
    assert [r["episode_index"] for r in eps] == list(range(info["total_episodes"]))
    for col in ("data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index", "tasks", "length",
                f"videos/{VIDEO_KEY}/chunk_index", f"videos/{VIDEO_KEY}/file_index",
                f"videos/{VIDEO_KEY}/from_timestamp", f"videos/{VIDEO_KEY}/to_timestamp",
                "meta/episodes/chunk_index", "meta/episodes/file_index", "stats/action/mean"):
        assert col in eps[0], col
    assert eps[0]["dataset_from_index"] == 0 and eps[-1]["dataset_to_index"] == info["total_frames"]
    for prev, row in zip(eps, eps[1:]):
        assert row["dataset_from_index"] == prev["dataset_to_index"]
    for row in eps:
        assert row["dataset_to_index"] - row["dataset_from_index"] == row["length"]
    # Data parquet (17-22)
    non_video = {k for k, e in info["features"].items() if e["dtype"] != "video"}
    for p in data_files:
        schema = pq.read_schema(p)
        assert set(schema.names) == non_video
        assert pa.types.is_fixed_size_list(schema.field("action").type)
        assert schema.field("timestamp").type == pa.float32()           # shape [1] -> plain scalar
        assert schema.field("next.success").type == pa.bool_()
    data = _concat(data_files)
    assert data.column("index").to_pylist() == list(range(info["total_frames"]))
    frame_index = np.asarray(data.column("frame_index"))
    np.testing.assert_array_equal(np.asarray(data.column("timestamp")), (frame_index / fps).astype(np.float32))
    assert set(data.column("task_index").to_pylist()) <= set(range(info["total_tasks"]))
    for row in eps:
        path = root / info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        rows = pq.read_table(path).filter(pc.equal(pq.read_table(path).column("episode_index"), row["episode_index"]))
        assert rows.column("index").to_pylist() == list(range(row["dataset_from_index"], row["dataset_to_index"]))
        assert rows.column("frame_index").to_pylist() == list(range(row["length"]))
        assert {task_text[i] for i in rows.column("task_index").to_pylist()} == set(row["tasks"])
    # Videos (24-26): one stream, declared size, CFR pts k/fps from 0, frame count == episode frames
    per_file = {}
    for row in eps:
        path = root / info["video_path"].format(video_key=VIDEO_KEY, chunk_index=row[f"videos/{VIDEO_KEY}/chunk_index"],
                                                file_index=row[f"videos/{VIDEO_KEY}/file_index"])
        per_file.setdefault(path, []).append(row)
    for path, rows in per_file.items():
        with av.open(str(path)) as c:
            assert len(c.streams.video) == 1 and not c.streams.audio
            s = c.streams.video[0]
            assert (s.codec_context.width, s.codec_context.height) == (84, 84)
            assert s.codec_context.pix_fmt == "yuv420p" and s.codec_context.name in ("h264", "libx264")
            times = sorted(float(f.pts * f.time_base) for f in c.decode(s))
        assert len(times) == sum(r["length"] for r in rows)
        np.testing.assert_allclose(times, np.arange(len(times)) / fps, atol=1e-4)
        start = 0
        for r in sorted(rows, key=lambda r: r[f"videos/{VIDEO_KEY}/from_timestamp"]):
            assert abs(r[f"videos/{VIDEO_KEY}/from_timestamp"] - start / fps) < 1e-4
            assert abs(r[f"videos/{VIDEO_KEY}/to_timestamp"] - (start + r["length"]) / fps) < 1e-3
            start += r["length"]
    # Stats (27-28)
    stats = json.loads((root / "meta/stats.json").read_text())
    for key, entry in info["features"].items():
        s = stats[key]
        assert {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"} <= set(s), key
        assert np.all(np.asarray(s["std"]) >= 0) and len(s["count"]) == 1
        assert np.all(np.asarray(s["min"]) <= np.asarray(s["q01"]) + 1e-9)
        assert np.all(np.asarray(s["q99"]) <= np.asarray(s["max"]) + 1e-9)
        if entry["dtype"] == "video":
            assert np.asarray(s["mean"]).shape == (3, 1, 1)
        elif entry["shape"] != [1] and not key.startswith("observation.depth."):
            assert len(s["mean"]) == entry["shape"][0]
