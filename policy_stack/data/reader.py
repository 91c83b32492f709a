"""LeRobotDatasetReader: validate a LeRobot v3.0 dataset on open and read whole episodes as numpy.

Reads our own datasets and plain LeRobot ones (several episodes per file, `from_timestamp` > 0).
Errors name the offending file and key. Only episodes below info.json's `total_episodes` exist (that
is the writer's commit point); files or metadata rows past it, left by a killed writer, are ignored and
listed in `orphan_files`.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import layout
from .paths import format_confined, validate_template
from .features import (DEFAULT_FEATURES, Feature, feature_from_info, link_concatenated_state,
                       millimetres_to_metres)
from .stats import normalization_stats_from_meta
from .video import decode_rgb_video, probe_video

REQUIRED_INFO_KEYS = ("codebase_version", "fps", "features", "total_episodes", "total_frames",
                      "chunks_size", "data_path", "video_path")
FRAME_TIME_TOLERANCE_S = 1e-4     # LeRobot's tolerance_s for video frame lookup
MAX_FPS = 10_000                  # bounds on info.json numbers, so an edited file cannot ask for
MAX_DIM = 65_536                  # absurd allocations


class DatasetFormatError(ValueError):
    """The dataset on disk breaks the LeRobot v3.0 layout; the message names the file and key."""


def read_info(root) -> dict:
    """meta/info.json, validated: every field the reader and writer use has a sane type and range, and
    the path templates pass policy_stack.data.paths (so nothing outside the dataset is ever opened)."""
    path = Path(root) / layout.INFO_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; not a LeRobot v3.0 dataset (no meta/info.json)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DatasetFormatError(f"{path}: not valid JSON ({str(exc)[:200]})") from exc
    if not isinstance(info, dict):
        raise DatasetFormatError(f"{path}: must hold a JSON object, got {type(info).__name__}")
    missing = [k for k in REQUIRED_INFO_KEYS if k not in info]
    if missing:
        raise DatasetFormatError(f"{path}: missing keys {missing}")
    if info["codebase_version"] != layout.CODEBASE_VERSION:
        raise DatasetFormatError(f"{path}: codebase_version is {str(info['codebase_version'])[:40]!r}, "
                                 f"this reader handles {layout.CODEBASE_VERSION!r} only")
    if isinstance(info["fps"], bool) or not isinstance(info["fps"], (int, float)) or not 0 < info["fps"] <= MAX_FPS:
        raise DatasetFormatError(f"{path}: fps must be a number in (0, {MAX_FPS}], got {str(info['fps'])[:40]!r}")
    for key, low in (("total_episodes", 0), ("total_frames", 0), ("chunks_size", 1)):
        value = info[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DatasetFormatError(f"{path}: {key} must be an integer >= {low}, got {str(value)[:40]!r}")
    if not isinstance(info["features"], dict) or not all(isinstance(e, dict) for e in info["features"].values()):
        raise DatasetFormatError(f"{path}: features must be an object of objects")
    for key in DEFAULT_FEATURES:
        if key not in info["features"]:
            raise DatasetFormatError(f"{path}: features lack LeRobot's default column {key!r}")
    for key, entry in info["features"].items():
        if "/" in key or key in (".", "..") or "\x00" in key:
            raise DatasetFormatError(f"{path}: feature key {key[:60]!r} is not a plain name")
        if not isinstance(entry.get("dtype"), str):
            raise DatasetFormatError(f"{path}: feature {key!r} has no dtype string")
        if not isinstance(entry.get("shape"), list) or not entry["shape"] or len(entry["shape"]) > 4 or \
                any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s <= MAX_DIM for s in entry["shape"]):
            raise DatasetFormatError(f"{path}: feature {key!r} has invalid shape {str(entry.get('shape'))[:60]}")
    has_video = any(e["dtype"] == "video" for e in info["features"].values())
    if has_video and not info["video_path"]:
        raise DatasetFormatError(f"{path}: video features present but video_path is null")
    validate_template(info["data_path"], "data_path", str(path))
    if info["video_path"] is not None:
        validate_template(info["video_path"], "video_path", str(path))
    return info


def data_file(root: Path, info: dict, row: dict) -> Path:
    """The data parquet an episodes-table row names, confined to the dataset folder."""
    return format_confined(root, info["data_path"], "data_path", chunk_index=row.get("data/chunk_index"),
                           file_index=row.get("data/file_index"))


def video_file(root: Path, info: dict, key: str, row: dict) -> Path:
    """The MP4 of video feature `key` an episodes-table row names, confined to the dataset folder."""
    return format_confined(root, info["video_path"], "video_path", video_key=key,
                           chunk_index=row.get(f"videos/{key}/chunk_index"),
                           file_index=row.get(f"videos/{key}/file_index"))


def _read_parquet_file(path: Path, what: str) -> pa.Table:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing ({what})")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetFormatError(f"{path}: unreadable {what} parquet (corrupt or truncated: {exc})") from exc


def read_episode_rows(root) -> list[dict]:
    """Every row of meta/episodes/*/*.parquet, files in sorted path order (as LeRobot concatenates them)."""
    files = sorted((Path(root) / "meta/episodes").glob("*/*.parquet"))
    rows = []
    for path in files:
        rows.extend(_read_parquet_file(path, "episodes metadata").to_pylist())
    return rows


ROW_INT_COLUMNS = ("episode_index", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index")


def check_episode_rows(rows: list[dict], ep_dir: Path) -> int:
    """Episodes-table rows must be episodes 0..E-1 in order, each covering the frames right after the
    previous one; returns the frame count they cover. Raises DatasetFormatError naming the row."""
    expected_from = 0
    for i, row in enumerate(rows):
        for col in ROW_INT_COLUMNS:
            value = row.get(col)
            if value is None:
                raise DatasetFormatError(f"{ep_dir}: row {i} lacks column {col!r}")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DatasetFormatError(f"{ep_dir}: row {i} column {col!r} is {str(value)[:40]!r}, "
                                         f"not a non-negative integer")
        if row["episode_index"] != i:
            raise DatasetFormatError(f"{ep_dir}: row {i} has episode_index {row['episode_index']} "
                                     f"(rows must be episodes 0..E-1 in order)")
        if row["dataset_from_index"] != expected_from or row["dataset_to_index"] <= row["dataset_from_index"]:
            raise DatasetFormatError(f"{ep_dir}: episode {i} spans [{row['dataset_from_index']}, "
                                     f"{row['dataset_to_index']}), expected to start at {expected_from}")
        tasks = row.get("tasks")
        if tasks is not None and (not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks)):
            raise DatasetFormatError(f"{ep_dir}: row {i} column 'tasks' is not a list of strings")
        expected_from = row["dataset_to_index"]
    return expected_from


def column_to_numpy(column, shape: tuple, path: Path, key: str) -> np.ndarray:
    """An Arrow column of (nested) lists or scalars -> (N, *shape) ndarray, checking the element count."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    while pa.types.is_list(arr.type) or pa.types.is_fixed_size_list(arr.type) or pa.types.is_large_list(arr.type):
        arr = arr.flatten()
    values = arr.to_numpy(zero_copy_only=False)
    per_row = int(np.prod(shape)) if shape else 1
    if values.size != n * per_row:
        raise DatasetFormatError(f"{path}: column {key!r} holds {values.size // max(n, 1)} values per frame, "
                                 f"info.json declares shape {list(shape) or [1]}")
    return values.reshape((n,) + tuple(shape))


def _check_arrow_type(arrow_type: pa.DataType, shape: list[int], path: Path, key: str):
    """Schema-level shape check: scalar column for [1], list of n for [n], nested lists for N-D."""
    dims = []
    t = arrow_type
    while pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        dims.append(t.list_size if pa.types.is_fixed_size_list(t) else None)
        t = t.value_type
    want = [] if shape == [1] else list(shape)
    if len(dims) != len(want) or any(d is not None and d != w for d, w in zip(dims, want)):
        raise DatasetFormatError(f"{path}: column {key!r} has Arrow type {arrow_type}, which does not fit "
                                 f"shape {shape} declared in meta/info.json")


def _decode_png_column(column, path: Path, key: str) -> np.ndarray:
    import cv2   # lazy: only LeRobot "image" features need it

    frames = []
    for cell in column.to_pylist():
        img = cv2.imdecode(np.frombuffer(cell["bytes"], np.uint8), cv2.IMREAD_COLOR) if cell and cell.get("bytes") else None
        if img is None:
            raise DatasetFormatError(f"{path}: column {key!r} holds an undecodable PNG")
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return np.stack(frames)


class LeRobotDatasetReader:
    """Open `root`, validate its layout, and read episodes.

    check_videos: open every referenced mp4 at load to check it exists, parses and has the declared
    frame size (a few ms per file). Frame counts are checked when an episode is decoded.
    """

    def __init__(self, root, check_videos: bool = True):
        self.root = Path(root)
        self.info = read_info(self.root)
        self.fps = self.info["fps"]
        self.features: list[Feature] = link_concatenated_state(
            [f for k, e in self.info["features"].items() if (f := feature_from_info(k, e)) is not None])
        self.tasks = self._read_tasks()
        self.episodes = self._read_committed_episodes()
        self._data_files = self._check_data_files()
        self._video_files = self._check_video_files(check_videos)
        self.orphan_files = self._find_orphans()
        if self.orphan_files:
            warnings.warn(f"{self.root}: {len(self.orphan_files)} file(s) of an unfinished episode are ignored "
                          f"(e.g. {self.orphan_files[0]}); reopening with DatasetWriter removes them", stacklevel=2)
        self._table_cache: tuple[Path, pa.Table] | None = None

    # ------------------------------------------------------------------ facts

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def rgb_keys(self) -> list[str]:
        return [f.env_key for f in self.features if f.kind == "rgb"]

    @property
    def depth_keys(self) -> list[str]:
        return [f.env_key for f in self.features if f.kind == "depth"]

    @property
    def lowdim_keys(self) -> list[str]:
        """Low-dim observation keys; our derived `observation.state` (the split keys concatenated) is
        left out, a LeRobot dataset's own plain `observation.state` is one of them."""
        return [f.env_key for f in self.features if f.kind == "lowdim" and f.derived_from is None]

    def feature(self, env_key: str) -> Feature:
        for f in self.features:
            if f.env_key == env_key or f.key == env_key:
                return f
        raise KeyError(f"{self.root}: no feature {env_key!r}; have {[f.env_key for f in self.features]}")

    def episode_length(self, k: int) -> int:
        return int(self._row(k)["dataset_to_index"] - self._row(k)["dataset_from_index"])

    def episode_task(self, k: int) -> str:
        tasks = self._row(k).get("tasks") or []
        return tasks[0] if tasks else ""

    @property
    def stats(self) -> dict | None:
        """meta/stats.json as {dataset key: {stat: ndarray}}, or None if the file is absent."""
        path = self.root / layout.STATS_PATH
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{path}: not valid JSON ({exc})") from exc
        return {k: {name: np.asarray(v) for name, v in s.items()} for k, s in raw.items()}

    def normalization_stats(self) -> dict:
        """Env-keyed {"min","max","mean","std"} from meta/stats.json (depth in metres, RGB in [0,1])."""
        stats = self.stats
        if stats is None:
            raise FileNotFoundError(f"{self.root / layout.STATS_PATH}: missing")
        return normalization_stats_from_meta(stats)

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    # ------------------------------------------------------------------ episodes

    def episode(self, k: int) -> dict:
        """Episode k as {env key: (T, ...) ndarray}.

        RGB `<cam>_rgb` uint8 (T, H, W, 3); depth `<cam>_depth` float32 metres and `<cam>_depth_mm` raw
        uint16 millimetres; low-dim float32; `action`; `reward`/`success`/`done` when recorded; plus
        LeRobot's `timestamp`, `frame_index`, `episode_index`, `index`, `task_index`.
        """
        row = self._row(k)
        length = self.episode_length(k)
        data_path = self._data_path(row)
        table = self._episode_rows(data_path, k, length)
        out = {}
        for f in self.features:
            if f.is_video:
                out[f.env_key] = self._episode_frames(f, row, length)
            elif f.kind == "rgb":            # LeRobot "image" feature: PNG bytes in the parquet
                out[f.env_key] = _decode_png_column(table.column(f.key), data_path, f.key)
            elif f.kind == "depth":
                mm = column_to_numpy(table.column(f.key), f.shape, data_path, f.key)
                out[f.env_key + "_mm"] = mm.astype(np.uint16, copy=False)
                out[f.env_key] = millimetres_to_metres(mm)
            else:
                values = column_to_numpy(table.column(f.key), f.shape, data_path, f.key)
                out[f.env_key] = values.astype(bool if f.dtype == "bool" else np.float32, copy=False)
        for key in DEFAULT_FEATURES:
            out[key] = column_to_numpy(table.column(key), (), data_path, key)
        return out

    def column(self, key: str) -> np.ndarray:
        """One non-video column over all committed episodes, e.g. `next.success` or `episode_index`,
        without decoding any video."""
        entry = self.info["features"].get(key)
        if entry is None or entry["dtype"] in ("video", "image"):
            raise KeyError(f"{self.root}: no parquet column {key!r}")
        shape = () if entry["shape"] == [1] else tuple(entry["shape"])
        parts = []
        for path in sorted(self._data_files):
            table = _read_parquet_file(path, "data").select([key, "index"])
            table = table.filter(pc.less(table.column("index"), self.num_frames))
            parts.append((column_to_numpy(table.column("index"), (), path, "index"),
                          column_to_numpy(table.column(key), shape, path, key)))
        order = np.argsort(np.concatenate([p[0] for p in parts]))
        return np.concatenate([p[1] for p in parts])[order]

    # ------------------------------------------------------------------ internals

    def _row(self, k: int) -> dict:
        if not 0 <= k < self.num_episodes:
            raise IndexError(f"{self.root}: episode {k} out of range (dataset has {self.num_episodes})")
        return self.episodes[k]

    def _read_tasks(self) -> list[str]:
        path = self.root / layout.TASKS_PATH
        if not path.is_file():
            raise DatasetFormatError(f"{path}: missing")
        try:
            return layout.read_tasks(path)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetFormatError(f"{path}: unreadable tasks parquet ({exc})") from exc

    def _read_committed_episodes(self) -> list[dict]:
        total = int(self.info["total_episodes"])
        rows = read_episode_rows(self.root)
        ep_dir = self.root / "meta/episodes"
        if len(rows) < total:
            raise DatasetFormatError(f"{ep_dir}: {len(rows)} episode rows but meta/info.json says "
                                     f"total_episodes={total}")
        rows = rows[:total]       # rows past the commit point belong to an episode that never finished
        expected_from = check_episode_rows(rows, ep_dir)
        if expected_from != self.info["total_frames"]:
            raise DatasetFormatError(f"{self.root / layout.INFO_PATH}: total_frames={self.info['total_frames']} but "
                                     f"the episodes table covers {expected_from} frames")
        return rows

    def _data_path(self, row: dict) -> Path:
        return data_file(self.root, self.info, row)

    def _video_path(self, key: str, row: dict) -> Path:
        return video_file(self.root, self.info, key, row)

    def _check_data_files(self) -> set[Path]:
        """Footer, schema and row count of every referenced data parquet (catches truncation early)."""
        frames_per_file: dict[Path, int] = {}
        for row in self.episodes:
            path = self._data_path(row)
            frames_per_file[path] = frames_per_file.get(path, 0) + row["dataset_to_index"] - row["dataset_from_index"]
        columns = {k: e for k, e in self.info["features"].items() if e["dtype"] != "video"}
        for path, frames in frames_per_file.items():
            if not path.is_file():
                raise DatasetFormatError(f"{path}: missing (data file named by meta/episodes)")
            try:
                meta = pq.ParquetFile(path)
                schema, num_rows = meta.schema_arrow, meta.metadata.num_rows
            except (pa.ArrowException, OSError) as exc:
                raise DatasetFormatError(f"{path}: unreadable data parquet (corrupt or truncated: {exc})") from exc
            names = set(schema.names) - {"__index_level_0__"}
            if names != set(columns):
                raise DatasetFormatError(f"{path}: columns differ from info.json features: missing "
                                         f"{sorted(set(columns) - names)}, extra {sorted(names - set(columns))}")
            for key, entry in columns.items():
                if entry["dtype"] == "image":
                    continue             # struct<bytes, path> of PNGs
                _check_arrow_type(schema.field(key).type, entry["shape"], path, key)
            if num_rows < frames:
                raise DatasetFormatError(f"{path}: holds {num_rows} rows, episodes table needs {frames}")
        return set(frames_per_file)

    def _check_video_files(self, open_them: bool) -> set[Path]:
        paths = set()
        for f in self.features:
            if not f.is_video:
                continue
            for i, row in enumerate(self.episodes):
                if row.get(f"videos/{f.key}/chunk_index") is None:
                    raise DatasetFormatError(f"{self.root}/meta/episodes: episode {i} lacks "
                                             f"'videos/{f.key}/chunk_index'")
                path = self._video_path(f.key, row)
                if path in paths:
                    continue
                paths.add(path)
                if not path.is_file():
                    raise DatasetFormatError(f"{path}: missing (video of {f.key!r}, episode {i})")
                if open_them:
                    try:
                        probe = probe_video(path)
                    except Exception as exc:   # PyAV raises several error types for broken containers
                        raise DatasetFormatError(f"{path}: unreadable video of {f.key!r} ({exc})") from exc
                    h, w = f.shape[0], f.shape[1]
                    if (probe["video.height"], probe["video.width"]) != (h, w):
                        raise DatasetFormatError(f"{path}: video is {probe['video.width']}x{probe['video.height']}, "
                                                 f"info.json declares {f.key!r} as {w}x{h}")
        return paths

    def _find_orphans(self) -> list[str]:
        known = self._data_files | self._video_files
        found = [p for sub in ("data", "videos") for p in (self.root / sub).rglob("*") if p.is_file()]
        return sorted(str(p.relative_to(self.root)) for p in found if p not in known)

    def _episode_rows(self, path: Path, k: int, length: int) -> pa.Table:
        if self._table_cache is None or self._table_cache[0] != path:
            self._table_cache = (path, _read_parquet_file(path, "data"))
        table = self._table_cache[1]
        rows = table.filter(pc.equal(table.column("episode_index"), k))
        if rows.num_rows != length:
            raise DatasetFormatError(f"{path}: episode {k} has {rows.num_rows} rows, episodes table says {length}")
        return rows

    def _episode_frames(self, f: Feature, row: dict, length: int) -> np.ndarray:
        path = self._video_path(f.key, row)
        try:
            frames, times = decode_rgb_video(path)
        except DatasetFormatError:
            raise
        except Exception as exc:
            raise DatasetFormatError(f"{path}: cannot decode video of {f.key!r} ({exc})") from exc
        start = float(row.get(f"videos/{f.key}/from_timestamp") or 0.0)
        slot = np.rint((times - start) * self.fps).astype(np.int64)
        on_grid = np.abs(times - start - slot / self.fps) < FRAME_TIME_TOLERANCE_S
        pick = np.flatnonzero(on_grid & (slot >= 0) & (slot < length))
        if len(pick) != length or not np.array_equal(slot[pick], np.arange(length)):
            raise DatasetFormatError(f"{path}: {len(pick)} frames of {f.key!r} found for episode "
                                     f"{row['episode_index']} at t={start:.4f}s, expected {length} "
                                     f"(truncated video or wrong timestamps)")
        frames = frames[pick]
        if frames.shape[1:] != tuple(f.shape):
            raise DatasetFormatError(f"{path}: frames are {frames.shape[1:]}, info.json declares {f.key!r} {f.shape}")
        return frames
