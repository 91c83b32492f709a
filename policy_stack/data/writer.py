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
an unfinished episode's files and metadata rows) and rewrites the metadata consistently. An episode whose
metadata row and files were all written before the kill is kept, not dropped (see _open_existing).
One writer at a time: the writer holds an flock on meta/.writer.lock from open to close (data/lock.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from policy_stack import persist

from . import layout
from .lock import DatasetLock
from .reader import DatasetFormatError, check_episode_rows, data_file, read_episode_rows, read_info, video_file
from .features import (DEFAULT_FEATURES, Feature, concatenated_environment_state, concatenated_state,
                       depth_to_millimetres, env_key,
                       feature_from_info, link_concatenated_state, make_feature)
from .stats import aggregate_stats, array_stats, depth_stats, image_stats, scalar_stats, to_jsonable
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
        self.repair_notes: list[str] = []     # what reopening changed beyond dropping a killed writer's debris
        # Depth stats layout per depth feature: per image column (LeRobot's, the default) or one number
        # (datasets our writer made before); an append keeps what the dataset has (_check_stats_shapes).
        self._depth_stats_per_column: dict[str, bool] = {}
        if not (self.root / layout.INFO_PATH).exists():
            self._check_new_target(fps, features)          # before the lock creates meta/ in it
        else:
            self._check_appendable(fps, features)          # refuse before the lock file is created
        self._lock = DatasetLock(self.root)                # held until close(); refuses a second writer
        try:
            if (self.root / layout.INFO_PATH).exists():
                self._open_existing(fps, features)
            else:
                self._create(fps, features, robot_type, chunks_size)
            for task in task_names or []:
                self._task_index(task)
            self._write_meta()
        except BaseException:
            self._lock.release()
            raise

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
        if not self._lock.held:
            raise ValueError(f"{self.root}: add_episode on a closed DatasetWriter")
        arrays, length = self._validate_frames(frames)
        if not isinstance(task, str) or not task:
            raise ValueError(f"add_episode: task must be a non-empty string, got {task!r}")
        ep = len(self.episodes)
        first_index = self.num_frames
        chunk, file = layout.chunk_file(ep, self.info["chunks_size"])
        row = {"episode_index": ep, "tasks": [task], "length": length,
               "data/chunk_index": chunk, "data/file_index": file,
               "dataset_from_index": first_index, "dataset_to_index": first_index + length}
        # Everything that can fail on the data (stats, and aggregating them with the dataset's) is done
        # before the first file is written, so a refused episode leaves nothing behind.
        task_index = self.tasks.index(task) if task in self.tasks else len(self.tasks)
        columns = self._bookkeeping_columns(ep, first_index, length, task_index)
        ep_stats = self._episode_stats(arrays, columns)
        self._aggregate(self.episode_stats + [ep_stats])

        for feat in self._video_features():
            path = video_file(self.root, self.info, feat.key, {f"videos/{feat.key}/chunk_index": chunk,
                                                               f"videos/{feat.key}/file_index": file})
            frames = arrays[feat.env_key]
            persist.write_file_atomic(path, lambda tmp: encode_rgb_video(tmp, frames, self.info["fps"],
                                                                         self.codec, self.crf))
            row.update({f"videos/{feat.key}/chunk_index": chunk, f"videos/{feat.key}/file_index": file,
                        f"videos/{feat.key}/from_timestamp": 0.0,
                        f"videos/{feat.key}/to_timestamp": length / self.info["fps"]})

        self._task_index(task)
        data_path = data_file(self.root, self.info, row)
        layout.write_parquet_atomic(data_path, self._data_table(arrays, columns), DATA_COMPRESSION)

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
        """Release the writer lock. Nothing is buffered: every add_episode is committed when it returns."""
        self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ create / reopen

    def _check_new_target(self, fps, features):
        if fps is None or features is None:
            raise ValueError(f"{self.root}: no dataset there yet; fps and features are required to create one")
        if self.root.exists():
            stray = [p.name for p in self.root.iterdir() if p.name not in ("meta", "data", "videos")]
            if stray:
                raise ValueError(f"{self.root}: exists and is not a dataset (contains {stray[:3]}); "
                                 f"pick an empty or new folder")
            # A writer commits info.json before its first episode, so episode files without it are not
            # the debris of a killed first write: info.json was deleted. Creating would erase them.
            episodes = [p for p in self._all_files() if not p.name.endswith(persist.TMP_SUFFIX)]
            if episodes:
                raise DatasetFormatError(f"{self.root}: holds episode files (e.g. {episodes[0].relative_to(self.root)}) "
                                         f"but no {layout.INFO_PATH}; refusing to start a new dataset over them")

    def _create(self, fps, features, robot_type, chunks_size):
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if isinstance(chunks_size, bool) or not isinstance(chunks_size, int) or chunks_size < 1:
            raise ValueError(f"chunks_size must be a positive integer, got {chunks_size!r}")
        self._remove_files(self._all_files())   # leftovers of a writer killed before its first commit
        self.features = [make_feature(k, spec) for k, spec in features.items()]
        if not any(f.kind == "action" for f in self.features):
            raise ValueError("features: an 'action' feature is required")
        for derived in (concatenated_state(self.features), concatenated_environment_state(self.features)):
            if derived is not None:
                self.features.append(derived)
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
        """Reopen for append (this is also `dataset repair`). The truth is the episodes table and the
        files, not info.json's counters: an episode whose row and files are complete is never dropped,
        even past info.json's commit point (a writer killed while updating the derived metadata, or an
        edited info.json); a killed writer's unfinished episode has files but no row, and those files
        are removed. Anything else where metadata and data disagree is refused with a
        DatasetFormatError, deleting nothing."""
        rows = self._check_appendable(fps, features)     # again: the folder may have changed meanwhile
        committed = self.info["total_episodes"]
        ep_dir = self.root / "meta/episodes"
        if len(rows) < committed:
            raise DatasetFormatError(f"{self.root}: info.json says {committed} episodes but meta/episodes has "
                                     f"{len(rows)} rows; the dataset was damaged outside the writer (nothing changed)")
        check_episode_rows(rows, ep_dir)
        missing = sorted(str(p.relative_to(self.root)) for r in rows[:committed]
                         for p in self._episode_files(r) if not p.exists())
        if missing:
            raise DatasetFormatError(f"{self.root}: committed episode files are missing: {missing[:5]} "
                                     f"(nothing changed)")
        self.tasks = self._read_task_table()
        kept = list(rows[:committed])
        rolled = []
        for i in range(committed, len(rows)):
            # A writer publishes an episode's row only after its files are complete and synced, so a row
            # past the commit point with missing or broken files is damage, never crash debris.
            problem = self._incomplete(rows[i])
            if problem is not None:
                raise DatasetFormatError(f"{self.root}: episode {i} has a metadata row but its files are not whole "
                                         f"({problem}); no crash leaves that (nothing changed)")
            kept.append(rows[i])
            rolled.append(i)
        if rolled:
            self.repair_notes.append(
                f"meta/info.json said total_episodes={committed}; episode(s) {rolled[0]}..{rolled[-1]} past it have "
                f"complete rows and files and are kept")
        self._rebuild_tasks(kept, verify=rolled)
        self.episodes = kept
        self.episode_stats = [self._stats_from_row(r) for r in self.episodes]
        total_frames = int(self.episodes[-1]["dataset_to_index"]) if self.episodes else 0
        if total_frames != self.info["total_frames"] and not rolled:
            self.repair_notes.append(f"meta/info.json said total_frames={self.info['total_frames']}; "
                                     f"the episodes table covers {total_frames}")
        self.info["total_episodes"] = len(self.episodes)
        self.info["total_frames"] = total_frames
        self._remove_uncommitted_files()

    def _episode_files(self, row: dict) -> list[Path]:
        return [data_file(self.root, self.info, row)] + [video_file(self.root, self.info, f.key, row)
                                                           for f in self._video_features()]

    def _incomplete(self, row: dict) -> str | None:
        """Why an episode past the commit point is not complete (None if its files are all there and
        whole: the data parquet holds its rows, every video opens)."""
        try:
            paths = self._episode_files(row)
        except ValueError as exc:
            return str(exc)
        for path in paths[1:]:
            if not path.is_file():
                return f"{path.relative_to(self.root)} missing"
            try:
                probe_video(path)
            except Exception as exc:     # PyAV raises several error types for broken containers
                return f"{path.relative_to(self.root)} unreadable ({str(exc)[:80]})"
        try:
            self._episode_task_index(row)
        except DatasetFormatError as exc:
            return str(exc)
        return None

    def _episode_task_index(self, row: dict) -> int:
        """The task_index the episode's data rows carry (read from its data parquet)."""
        path = data_file(self.root, self.info, row)
        if not path.is_file():
            raise DatasetFormatError(f"{path.relative_to(self.root)} missing")
        try:
            table = pq.read_table(path, columns=["episode_index", "task_index"])
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise DatasetFormatError(f"{path.relative_to(self.root)} unreadable ({str(exc)[:80]})") from exc
        k, length = row["episode_index"], row["dataset_to_index"] - row["dataset_from_index"]
        mine = table.filter(pc.equal(table.column("episode_index"), k)).column("task_index").to_pylist()
        if len(mine) != length:
            raise DatasetFormatError(f"{path.relative_to(self.root)} holds {len(mine)} rows of episode {k}, "
                                     f"the episodes table says {length}")
        if len(set(mine)) != 1 or not isinstance(mine[0], int) or mine[0] < 0:
            raise DatasetFormatError(f"{path.relative_to(self.root)}: episode {k} has task_index values {sorted(set(mine))[:5]}")
        return mine[0]

    def _read_task_table(self) -> list[str] | None:
        path = self.root / layout.TASKS_PATH
        if not path.exists():
            return None
        try:
            return layout.read_tasks(path)
        except (pa.ArrowException, OSError, ValueError) as exc:
            self.repair_notes.append(f"meta/tasks.parquet unreadable ({str(exc)[:80]}); rebuilt from the data")
            return None

    def _rebuild_tasks(self, rows: list[dict], verify: list[int]) -> None:
        """Make self.tasks agree with the episodes: the task text of each episode (its row's `tasks`) must
        sit at the task_index its data rows carry. When tasks.parquet is missing, unreadable or lacks an
        episode's task, or for episodes kept past the commit point, the index is read from the data;
        what cannot be proved that way is refused."""
        known = self.tasks
        need = set(verify)
        if known is None:
            need = set(range(len(rows)))
            self.repair_notes.append("meta/tasks.parquet was missing or unreadable; rebuilt from the episodes' data")
            known = []
        for i, row in enumerate(rows):
            text = (row.get("tasks") or [None])[0]
            if text is None:
                raise DatasetFormatError(f"{self.root}/meta/episodes: episode {i} names no task")
            if text not in known:
                need.add(i)
        by_index: dict[int, str] = {}
        for i in sorted(need):
            index, text = self._episode_task_index(rows[i]), rows[i]["tasks"][0]
            if by_index.setdefault(index, text) != text:
                raise DatasetFormatError(f"{self.root}: task_index {index} is used for both {by_index[index][:60]!r} "
                                         f"and {text[:60]!r}; cannot rebuild meta/tasks.parquet (nothing changed)")
        tasks = list(known)
        for index in sorted(by_index):
            text = by_index[index]
            if index < len(tasks):
                if tasks[index] != text:
                    raise DatasetFormatError(f"{self.root}: episodes use task_index {index} for {text[:60]!r}, "
                                             f"meta/tasks.parquet says {tasks[index][:60]!r} (nothing changed)")
            elif index == len(tasks):
                tasks.append(text)
            else:
                raise DatasetFormatError(f"{self.root}: episodes use task_index {index} but the text of task "
                                         f"{len(tasks)} is unknown; cannot rebuild meta/tasks.parquet (nothing changed)")
        if self.tasks is not None and len(tasks) > len(self.tasks):
            self.repair_notes.append(f"meta/tasks.parquet lacked {len(tasks) - len(self.tasks)} task(s) the "
                                     f"episodes use; added")
        self.tasks = tasks

    def _check_appendable(self, fps, features) -> list[dict]:
        """Read-only checks that this writer can add episodes to the dataset as it is (features it can
        write, same fps and features as asked, stats shapes it can aggregate with). Returns the
        episodes-table rows. Runs before anything is written or created, so a refusal changes nothing."""
        self.info = read_info(self.root)
        self.features = link_concatenated_state(
            [f for k, e in self.info["features"].items() if (f := feature_from_info(k, e))])
        self._check_writable()
        if fps is not None and int(fps) != self.info["fps"]:
            raise ValueError(f"{self.root}: dataset fps is {self.info['fps']}, asked to append at {fps}")
        if features is not None:
            self._check_same_features(features)
        rows = read_episode_rows(self.root)
        self._check_stats_shapes(rows)
        return rows

    def _check_writable(self):
        """Refuse, before anything is changed, a dataset whose features this writer cannot add episodes
        to (LeRobot can write some we cannot): PNG `image` features, strings, other dtypes."""
        supported = {"rgb": ("video",), "depth": ("uint16",), "lowdim": ("float32",), "action": ("float32",),
                     "scalar": ("float32", "bool")}
        for f in self.features:
            ok = f.dtype in supported[f.kind]
            if f.kind in ("lowdim", "action"):
                ok = ok and len(f.shape) == 1
            if f.kind == "depth":
                ok = ok and len(f.shape) == 2
            if not ok:
                raise DatasetFormatError(
                    f"{self.root}: cannot append: feature {f.key!r} is {f.dtype} {list(f.info_shape)}, and this "
                    f"writer adds only video RGB, uint16 (H, W) depth, float32 vectors and float32/bool scalars "
                    f"(nothing changed)")

    def _expected_stats_shape(self, key: str, stat: str) -> tuple | None:
        """The shape this writer gives stat `stat` of feature `key` (None: a feature it does not know)."""
        if stat == "count" or key in DEFAULT_FEATURES:
            return (1,)
        f = next((f for f in self.features if f.key == key), None)
        if f is None:
            return None
        if f.kind == "rgb":
            return (3, 1, 1)
        if f.kind == "depth":
            return (int(f.shape[1]),) if self._depth_stats_per_column.get(key, True) else (1,)
        if f.kind == "scalar":
            return (1,)
        return (int(f.shape[0]),)

    def _check_stats_shapes(self, rows: list[dict]):
        """Every episode's stats must have the shapes the new episodes' stats will have, or aggregating
        them fails after the new files are written. Depth keeps the layout the dataset already has
        (one number, as our writer did before, or one per column, as LeRobot writes); anything else
        that differs is refused with nothing changed."""
        for f in self.features:
            if f.kind == "depth":
                first = rows[0].get(f"stats/{f.key}/mean") if rows else None
                self._depth_stats_per_column[f.key] = first is None or np.asarray(first).size != 1
        for i, row in enumerate(rows):
            for key, stats in self._stats_from_row(row).items():
                for stat, value in stats.items():
                    want = self._expected_stats_shape(key, stat)
                    if want is not None and value.shape != want:
                        raise DatasetFormatError(
                            f"{self.root}: cannot append: episode {i} has stats/{key}/{stat} of shape "
                            f"{value.shape}, new episodes would get {want} (nothing changed)")

    def _check_same_features(self, features):
        wanted = {f.key: f for f in (make_feature(k, spec) for k, spec in features.items())}
        have = {f.key: f for f in self.features if f.derived_from is None}
        if set(wanted) != set(have):
            raise ValueError(f"{self.root}: features differ from the dataset's: "
                             f"new {sorted(set(wanted) - set(have))}, missing {sorted(set(have) - set(wanted))}")
        for key, f in wanted.items():
            if tuple(f.shape) != tuple(have[key].shape):
                raise ValueError(f"{self.root}: feature {key!r} has shape {tuple(have[key].shape)} in the "
                                 f"dataset, {tuple(f.shape)} requested")

    def _committed_files(self) -> set[Path]:
        return {p for row in self.episodes for p in self._episode_files(row)}

    def _all_files(self) -> list[Path]:
        return [p for sub in ("data", "videos", "meta/episodes") for p in (self.root / sub).rglob("*") if p.is_file()]

    def _remove_uncommitted_files(self):
        """Delete a killed writer's debris, and nothing that could be anyone's data: temp files, and the
        files of episode number len(episodes), the only one a writer can have been writing (every
        episode's files sit at its own index). Any other file no episode names means the episodes table
        and the files disagree (an edit, a copy): refuse rather than guess which side is right."""
        keep = self._committed_files()
        chunk, file = layout.chunk_file(len(self.episodes), self.info["chunks_size"])
        debris = set(self._episode_files({"data/chunk_index": chunk, "data/file_index": file,
                                          **{f"videos/{f.key}/{c}": v for f in self._video_features()
                                             for c, v in (("chunk_index", chunk), ("file_index", file))}}))
        temps = [p for p in self.root.rglob("*" + persist.TMP_SUFFIX) if p.is_file()]
        orphans = [p for p in self._all_files()
                   if p not in keep and p not in temps and not p.is_relative_to(self.root / "meta/episodes")]
        unexplained = sorted(str(p.relative_to(self.root)) for p in orphans if p not in debris)
        if unexplained:
            raise DatasetFormatError(
                f"{self.root}: {len(unexplained)} file(s) belong to no episode and are not what a killed writer "
                f"leaves (e.g. {unexplained[0]}); the episodes table and the files disagree. Nothing changed: "
                f"move those files away or restore meta/episodes")
        self._remove_files(orphans + temps)
        # Episode-metadata files past the last committed row (a new meta file begun by a killed writer).
        last_meta = (len(self.episodes) - 1) // EPISODES_PER_META_FILE if self.episodes else -1
        for path in sorted((self.root / "meta/episodes").glob("*/*.parquet")):
            try:
                chunk, file = int(path.parent.name.split("-")[1]), int(path.stem.split("-")[1])
            except (IndexError, ValueError):
                continue                 # not a name this writer uses; its rows were read, so keep it
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

    def _derived_features(self) -> list[Feature]:
        return [f for f in self.features if f.derived_from is not None]

    def _validate_frames(self, frames: dict) -> tuple[dict, int]:
        by_env = {}
        for key, value in frames.items():
            ek = env_key(key)
            if ek in by_env:
                raise ValueError(f"add_episode: key {key!r} given twice (as env key and dataset key)")
            by_env[ek] = value
        for feat in self._derived_features():
            if feat.env_key in by_env:      # e.g. an episode read back from a dataset: must agree
                given = np.asarray(by_env.pop(feat.env_key), np.float32)
                if not all(k in by_env for k in feat.derived_from):
                    continue                # the "missing keys" error below names what is absent
                parts = [np.asarray(by_env.get(k), np.float32) for k in feat.derived_from]
                if any(p.ndim != 2 for p in parts) or not np.array_equal(given, np.concatenate(parts, axis=1)):
                    raise ValueError(f"add_episode: {feat.env_key!r} is written from {list(feat.derived_from)}; "
                                     f"the one given is not their concatenation")
        known = {f.env_key for f in self.features if f.derived_from is None}
        unknown = sorted(set(by_env) - known)
        if unknown:
            raise ValueError(f"add_episode: unknown keys {unknown}; dataset features are {sorted(known)}")
        missing = sorted(known - set(by_env))
        if missing:
            raise ValueError(f"add_episode: missing keys {missing}")
        arrays = {feat.env_key: self._conform(feat, np.asarray(by_env[feat.env_key]))
                  for feat in self.features if feat.derived_from is None}
        lengths = {key: arr.shape[0] for key, arr in arrays.items()}
        values, counts = np.unique(list(lengths.values()), return_counts=True)
        length = int(values[np.argmax(counts)])       # the majority length; name the keys that differ
        odd = [key for key, n in lengths.items() if n != length]
        if odd:
            raise ValueError(f"add_episode: {odd[0]!r} has {lengths[odd[0]]} frames, the other keys have {length}")
        if not length:
            raise ValueError("add_episode: an episode needs at least one frame")
        for feat in self._derived_features():
            arrays[feat.env_key] = np.concatenate([arrays[k] for k in feat.derived_from], axis=1)
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
            elif feat.kind == "depth" and self._depth_stats_per_column.get(feat.key, True):
                stats[feat.key] = depth_stats(values)
            elif feat.kind == "depth":             # a dataset written before depth stats were per column
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
            self.info["features"][feat.key]["info"] = probe_video(video_file(self.root, self.info, feat.key,
                                                                             self.episodes[0]))

    @staticmethod
    def _aggregate(episode_stats: list[dict]) -> dict:
        """Dataset-wide stats of the features the first episode has (LeRobot writes every feature)."""
        return {k: aggregate_stats([s[k] for s in episode_stats]) for k in episode_stats[0]}

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
            persist.write_json_atomic(self.root / layout.STATS_PATH, to_jsonable(self._aggregate(self.episode_stats)))
        elif (self.root / layout.STATS_PATH).exists():
            os.remove(self.root / layout.STATS_PATH)    # stats of episodes that were never committed
        self.info["total_tasks"] = len(self.tasks)
        self.info["splits"] = {"train": f"0:{len(self.episodes)}"}
        persist.write_json_atomic(self.root / layout.INFO_PATH, self.info)

