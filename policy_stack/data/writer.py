"""DatasetWriter: create or append to a LeRobot v3.0 dataset, one whole episode at a time, crash-safely.

Layout choice: every episode gets its own data parquet and its own mp4 per camera (file number =
episode index, rotating into a new chunk folder every `chunks_size` files). v3.0 allows that: an
episode never spans files, and the episodes table names each episode's files and `from_timestamp`
(always 0.0 here). It is what makes crash safety simple: a finished file is never touched again.

Commit protocol of add_episode (see docs/datasets.md, "Crash safety"):
  1. each camera's mp4 and the data parquet are written under a `*.tmp` name, fsynced, os.replace'd,
     the folder fsynced (policy_stack.persist);
  2. the episodes-metadata parquet, tasks.parquet and stats.json are rewritten the same way;
  3. meta/info.json is replaced last. It is the commit point: an episode exists iff its index is
     below info.json's `total_episodes`. Readers ignore anything past it.
Reopening a dataset for append removes whatever a killed writer left past the commit point (temp files,
an uncommitted episode's files and metadata rows) and rewrites the metadata consistently.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from policy_stack import persist

from . import layout
from .features import (DEFAULT_FEATURES, Feature, depth_to_millimetres, env_key, feature_from_info,
                       make_feature)
from .stats import aggregate_stats, array_stats, image_stats, scalar_stats, to_jsonable
from .video import DEFAULT_CODEC, DEFAULT_CRF, encode_rgb_video, probe_video

EPISODES_PER_META_FILE = 1000   # rows per meta/episodes parquet; only the newest file is ever rewritten
DATA_COMPRESSION = "zstd"       # depth maps compress ~3-5x better than with snappy; any codec loads


class DatasetWriter:
    """Writes a LeRobot v3.0 dataset under `root`; appends if `root/meta/info.json` already exists.

    features: {env_key: shape | {"shape", "names"} | spaces.FeatureSpec}, e.g.
        {"robot0_eef_pos": (3,), "agentview_rgb": (84, 84, 3), "agentview_depth": (84, 84),
         "action": (7,), "reward": (), "success": (), "done": ()}
    Keys map to LeRobot feature names per docs/CONVENTIONS.md (policy_stack.data.features). When
    appending, `fps` and `features` may be None (taken from info.json) or must match it.
    """

    def __init__(self, root, fps: int | None = None, features: dict | None = None,
                 robot_type: str | None = "panda", task_names: list[str] | None = None, *,
                 codec: str = DEFAULT_CODEC, crf: int = DEFAULT_CRF,
                 chunks_size: int = layout.DEFAULT_CHUNK_SIZE):
        self.root = Path(root)
        self.codec, self.crf = codec, crf
        if (self.root / layout.INFO_PATH).exists():
            self._open_existing(fps, features)
        else:
            self._create(fps, features, robot_type, chunks_size)
        for task in task_names or []:
            self._task_index(task)
        self._write_meta()

    # ------------------------------------------------------------------ public API

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    def add_episode(self, frames: dict, task: str) -> int:
        """Write one whole episode; returns its index. `frames`: {key: array stacked over time (T, ...)}.

        Keys may be env keys or dataset feature keys. RGB: uint8 (T, H, W, 3). Depth: uint16
        millimetres (stored bit-exactly) or float metres (rounded to mm). Raises ValueError naming the
        key for a missing/unknown key, a wrong shape or dtype, or unequal lengths.
        """
        arrays, length = self._validate_frames(frames)
        if not isinstance(task, str) or not task:
            raise ValueError(f"add_episode: task must be a non-empty string, got {task!r}")
        ep = len(self.episodes)
        first_index = self.num_frames
        chunk, file = layout.chunk_file(ep, self.info["chunks_size"])
        row = {"episode_index": ep, "tasks": [task], "length": length,
               "data/chunk_index": chunk, "data/file_index": file,
               "dataset_from_index": first_index, "dataset_to_index": first_index + length}

        for feat in self._video_features():
            path = self.root / layout.VIDEO_PATH.format(video_key=feat.key, chunk_index=chunk, file_index=file)
            frames = arrays[feat.env_key]
            persist.write_file_atomic(path, lambda tmp: encode_rgb_video(tmp, frames, self.info["fps"],
                                                                         self.codec, self.crf))
            row.update({f"videos/{feat.key}/chunk_index": chunk, f"videos/{feat.key}/file_index": file,
                        f"videos/{feat.key}/from_timestamp": 0.0,
                        f"videos/{feat.key}/to_timestamp": length / self.info["fps"]})

        task_index = self._task_index(task)
        columns = self._bookkeeping_columns(ep, first_index, length, task_index)
        data_path = self.root / layout.DATA_PATH.format(chunk_index=chunk, file_index=file)
        layout.write_parquet_atomic(data_path, self._data_table(arrays, columns), DATA_COMPRESSION)

        ep_stats = self._episode_stats(arrays, columns)
        meta_chunk, meta_file = layout.chunk_file(ep // EPISODES_PER_META_FILE, self.info["chunks_size"])
        row.update({f"stats/{key}/{name}": np.asarray(value).tolist()
                    for key, s in ep_stats.items() for name, value in s.items()})
        row.update({"meta/episodes/chunk_index": meta_chunk, "meta/episodes/file_index": meta_file})

        self.episodes.append(row)
        self.episode_stats.append(ep_stats)
        self.info["total_episodes"] = len(self.episodes)
        self.info["total_frames"] = first_index + length
        if ep == 0:
            self._fill_video_info()
        self._write_meta(rewrite_episode_file=ep // EPISODES_PER_META_FILE)
        return ep

    def close(self) -> None:
        """Nothing is buffered: every add_episode is committed when it returns. Kept for symmetry."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ create / reopen

    def _create(self, fps, features, robot_type, chunks_size):
        if fps is None or features is None:
            raise ValueError(f"{self.root}: no dataset there yet; fps and features are required to create one")
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if self.root.exists():
            stray = [p.name for p in self.root.iterdir() if p.name not in ("meta", "data", "videos")]
            if stray:
                raise ValueError(f"{self.root}: exists and is not a dataset (contains {stray[:3]}); "
                                 f"pick an empty or new folder")
            self._remove_files(self._all_files())   # leftovers of a writer killed before its first commit
        self.features = [make_feature(k, spec) for k, spec in features.items()]
        if not any(f.kind == "action" for f in self.features):
            raise ValueError("features: an 'action' feature is required")
        has_video = any(f.is_video for f in self.features)
        self.info = {
            "codebase_version": layout.CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": 0, "total_frames": 0, "total_tasks": 0,
            "chunks_size": int(chunks_size),
            "data_files_size_in_mb": layout.DEFAULT_DATA_FILE_SIZE_IN_MB,
            "video_files_size_in_mb": layout.DEFAULT_VIDEO_FILE_SIZE_IN_MB,
            "fps": int(fps),
            "splits": {"train": "0:0"},
            "data_path": layout.DATA_PATH,
            "video_path": layout.VIDEO_PATH if has_video else None,
            "features": {**{f.key: f.info_entry() for f in self.features}, **DEFAULT_FEATURES},
        }
        self.tasks, self.episodes, self.episode_stats = [], [], []

    def _open_existing(self, fps, features):
        from .reader import read_info, read_episode_rows   # one parser for both sides

        self.info = read_info(self.root)
        self.features = [f for k, e in self.info["features"].items() if (f := feature_from_info(k, e))]
        if fps is not None and int(fps) != self.info["fps"]:
            raise ValueError(f"{self.root}: dataset fps is {self.info['fps']}, asked to append at {fps}")
        if features is not None:
            self._check_same_features(features)
        committed = int(self.info["total_episodes"])
        rows = read_episode_rows(self.root)
        if len(rows) < committed:
            raise ValueError(f"{self.root}: info.json says {committed} episodes but meta/episodes has "
                             f"{len(rows)} rows; the dataset was damaged outside the writer")
        self.episodes = rows[:committed]                 # rows past the commit point are dropped
        self.episode_stats = [self._stats_from_row(r) for r in self.episodes]
        tasks_path = self.root / layout.TASKS_PATH
        self.tasks = layout.read_tasks(tasks_path) if tasks_path.exists() else []
        self.info["total_frames"] = int(self.episodes[-1]["dataset_to_index"]) if self.episodes else 0
        self._remove_uncommitted_files()

    def _check_same_features(self, features):
        wanted = {f.key: f for f in (make_feature(k, s) for k, s in features.items())}
        have = {f.key: f for f in self.features}
        if set(wanted) != set(have):
            raise ValueError(f"{self.root}: features differ from the dataset's: "
                             f"new {sorted(set(wanted) - set(have))}, missing {sorted(set(have) - set(wanted))}")
        for key, f in wanted.items():
            if tuple(f.shape) != tuple(have[key].shape):
                raise ValueError(f"{self.root}: feature {key!r} has shape {tuple(have[key].shape)} in the "
                                 f"dataset, {tuple(f.shape)} requested")

    def _committed_files(self) -> set[Path]:
        keep = set()
        for row in self.episodes:
            keep.add(self.root / layout.DATA_PATH.format(chunk_index=row["data/chunk_index"],
                                                         file_index=row["data/file_index"]))
            for f in self._video_features():
                keep.add(self.root / layout.VIDEO_PATH.format(
                    video_key=f.key, chunk_index=row[f"videos/{f.key}/chunk_index"],
                    file_index=row[f"videos/{f.key}/file_index"]))
        return keep

    def _all_files(self) -> list[Path]:
        return [p for sub in ("data", "videos", "meta/episodes") for p in (self.root / sub).rglob("*") if p.is_file()]

    def _remove_uncommitted_files(self):
        keep = self._committed_files()
        missing = sorted(str(p.relative_to(self.root)) for p in keep if not p.exists())
        if missing:
            raise ValueError(f"{self.root}: committed episode files are missing: {missing[:5]}")
        orphans = [p for p in self._all_files()
                   if p not in keep and not p.is_relative_to(self.root / "meta/episodes")]
        orphans += [p for p in self.root.rglob("*" + persist.TMP_SUFFIX) if p.is_file()]
        self._remove_files(orphans)
        # Episode-metadata files past the last committed row (a new meta file begun by a killed writer).
        last_meta = (len(self.episodes) - 1) // EPISODES_PER_META_FILE if self.episodes else -1
        for path in sorted((self.root / "meta/episodes").glob("*/*.parquet")):
            chunk, file = int(path.parent.name.split("-")[1]), int(path.stem.split("-")[1])
            if chunk * self.info["chunks_size"] + file > last_meta:
                self._remove_files([path])
        self._rewrite_episode_files = True

    @staticmethod
    def _remove_files(paths):
        for p in set(paths):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass

    @staticmethod
    def _stats_from_row(row: dict) -> dict:
        stats: dict = {}
        for col, value in row.items():
            if col.startswith("stats/"):
                key, name = col[len("stats/"):].rsplit("/", 1)
                stats.setdefault(key, {})[name] = np.asarray(value)
        return stats

    # ------------------------------------------------------------------ validation and columns

    def _video_features(self) -> list[Feature]:
        return [f for f in self.features if f.is_video]

    def _validate_frames(self, frames: dict) -> tuple[dict, int]:
        by_env = {}
        for key, value in frames.items():
            ek = env_key(key)
            if ek in by_env:
                raise ValueError(f"add_episode: key {key!r} given twice (as env key and dataset key)")
            by_env[ek] = value
        known = {f.env_key for f in self.features}
        unknown = sorted(set(by_env) - known)
        if unknown:
            raise ValueError(f"add_episode: unknown keys {unknown}; dataset features are {sorted(known)}")
        missing = sorted(known - set(by_env))
        if missing:
            raise ValueError(f"add_episode: missing keys {missing}")
        arrays = {feat.env_key: self._conform(feat, np.asarray(by_env[feat.env_key])) for feat in self.features}
        lengths = {key: arr.shape[0] for key, arr in arrays.items()}
        values, counts = np.unique(list(lengths.values()), return_counts=True)
        length = int(values[np.argmax(counts)])       # the majority length; name the keys that differ
        odd = [key for key, n in lengths.items() if n != length]
        if odd:
            raise ValueError(f"add_episode: {odd[0]!r} has {lengths[odd[0]]} frames, the other keys have {length}")
        if not length:
            raise ValueError("add_episode: an episode needs at least one frame")
        return arrays, length

    @staticmethod
    def _conform(feat: Feature, arr: np.ndarray) -> np.ndarray:
        want = tuple(feat.shape)
        if feat.kind == "depth" and arr.ndim == 4 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if feat.kind == "scalar" and arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != len(want) + 1 or tuple(arr.shape[1:]) != want:
            raise ValueError(f"add_episode: {feat.env_key!r} has shape {arr.shape}, expected (T, {', '.join(map(str, want))})"
                             .replace("(T, )", "(T,)"))
        if feat.kind == "rgb":
            if arr.dtype != np.uint8:
                raise ValueError(f"add_episode: {feat.env_key!r} must be uint8 RGB, got {arr.dtype}")
            return arr
        if feat.kind == "depth":
            return depth_to_millimetres(feat.env_key, arr)
        if feat.dtype == "bool":
            return arr.astype(bool)
        if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
            raise ValueError(f"add_episode: {feat.env_key!r} must be numeric, got {arr.dtype}")
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise ValueError(f"add_episode: {feat.env_key!r} contains NaN or inf")
        return out

    def _bookkeeping_columns(self, ep, first_index, length, task_index) -> dict:
        frame_index = np.arange(length, dtype=np.int64)
        return {
            # Exactly float32(frame_index / fps): LeRobot's video lookup allows only 1e-4 s of error.
            "timestamp": (frame_index / self.info["fps"]).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(length, ep, np.int64),
            "index": first_index + frame_index,
            "task_index": np.full(length, task_index, np.int64),
        }

    def _data_table(self, arrays: dict, bookkeeping: dict) -> pa.Table:
        cols, fields = [], []
        for feat in self.features:
            if feat.is_video:
                continue                              # video frames live in the mp4, never in the parquet
            values = arrays[feat.env_key]
            arrow_type = feat.arrow_type()
            if feat.kind == "scalar":
                col = pa.array(values, arrow_type)
            else:
                flat = pa.array(values.reshape(-1), arrow_type.value_type if feat.kind != "depth"
                                else pa.uint16())
                if feat.kind == "depth":
                    h, w = feat.shape
                    col = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(flat, w), h)
                else:
                    col = pa.FixedSizeListArray.from_arrays(flat, int(feat.shape[0]))
            cols.append(col)
            fields.append(pa.field(feat.key, col.type))
        for key, values in bookkeeping.items():
            col = pa.array(values)
            cols.append(col)
            fields.append(pa.field(key, col.type))
        return pa.Table.from_arrays(cols, schema=pa.schema(fields))

    def _episode_stats(self, arrays: dict, bookkeeping: dict) -> dict:
        stats = {}
        for feat in self.features:
            values = arrays[feat.env_key]
            if feat.kind == "rgb":
                stats[feat.key] = image_stats(values)
            elif feat.kind == "depth":
                stats[feat.key] = scalar_stats(values)
            elif feat.kind == "scalar":
                stats[feat.key] = array_stats(values.astype(np.float64).reshape(-1, 1))
            else:
                stats[feat.key] = array_stats(values)
        for key, values in bookkeeping.items():
            stats[key] = array_stats(values.reshape(-1, 1))
        return stats

    def _task_index(self, task: str) -> int:
        if task not in self.tasks:
            self.tasks.append(task)
        return self.tasks.index(task)

    def _fill_video_info(self):
        for feat in self._video_features():
            row = self.episodes[0]
            path = self.root / layout.VIDEO_PATH.format(video_key=feat.key, chunk_index=row[f"videos/{feat.key}/chunk_index"],
                                                        file_index=row[f"videos/{feat.key}/file_index"])
            self.info["features"][feat.key]["info"] = probe_video(path)

    # ------------------------------------------------------------------ metadata (commit)

    def _write_meta(self, rewrite_episode_file: int | None = None):
        """Rewrite derived metadata, info.json last (the commit point)."""
        if getattr(self, "_rewrite_episode_files", False):
            meta_files = range((len(self.episodes) + EPISODES_PER_META_FILE - 1) // EPISODES_PER_META_FILE)
            self._rewrite_episode_files = False
        else:
            meta_files = [] if rewrite_episode_file is None else [rewrite_episode_file]
        for m in meta_files:
            rows = self.episodes[m * EPISODES_PER_META_FILE:(m + 1) * EPISODES_PER_META_FILE]
            chunk, file = layout.chunk_file(m, self.info["chunks_size"])
            layout.write_parquet_atomic(self.root / layout.EPISODES_PATH.format(chunk_index=chunk, file_index=file),
                                        pa.Table.from_pylist(rows))
        layout.write_parquet_atomic(self.root / layout.TASKS_PATH, layout.tasks_table(self.tasks))
        if self.episode_stats:
            keys = self.episode_stats[0].keys()
            dataset_stats = {k: aggregate_stats([s[k] for s in self.episode_stats]) for k in keys}
            persist.write_json_atomic(self.root / layout.STATS_PATH, to_jsonable(dataset_stats))
        elif (self.root / layout.STATS_PATH).exists():
            os.remove(self.root / layout.STATS_PATH)    # stats of episodes that were never committed
        self.info["total_tasks"] = len(self.tasks)
        self.info["splits"] = {"train": f"0:{len(self.episodes)}"}
        persist.write_json_atomic(self.root / layout.INFO_PATH, self.info)

