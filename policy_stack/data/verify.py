"""`dataset verify`: decode everything a dataset holds and list what is wrong, one line per problem.

Opening a dataset (reader, writer, `dataset info`, `dataset repair`) checks the metadata, that every
named file exists, parquet footers and schemas, and MP4 headers: cheap checks that catch a truncated
file. They do not catch a flipped byte inside a parquet page or an MP4 frame; only decoding does, and
that costs about as much as reading the dataset once. This module does it: every parquet file under
meta/ and data/ is read completely, every episode is read through the reader (which checks its row
count and that each video yields exactly one frame per data row at the right timestamps), and
meta/stats.json is parsed.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import layout

MAX_PROBLEMS = 50       # stop listing (not checking) after this many


def _one_line(exc: BaseException) -> str:
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(exc)).split())
    return text if len(text) <= 300 else text[:297] + "..."


def verify_dataset(root, progress: bool = False) -> tuple[list[str], dict]:
    """(problems, counts). problems: one-line strings, empty when the dataset decodes cleanly.
    counts: what was checked (parquet files, episodes, frames, video files)."""
    import warnings

    from tqdm import tqdm

    from .reader import LeRobotDatasetReader

    root = Path(root)
    problems: list[str] = []
    counts = {"parquet_files": 0, "episodes": 0, "frames": 0, "video_files": 0}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")              # orphan files are reported below instead
            reader = LeRobotDatasetReader(root, check_videos=True)
    except Exception as exc:   # noqa: BLE001 - everything the open can raise is one reported problem
        return [_one_line(exc)], counts
    for orphan in reader.orphan_files:
        problems.append(f"{root / orphan}: not part of any committed episode (run `policy-stack dataset repair`)")
    parquets = sorted(p for sub in ("meta", "data") for p in (root / sub).rglob("*.parquet"))
    for path in tqdm(parquets, desc="parquet", unit="file", disable=not progress):
        try:
            pq.read_table(path)
            counts["parquet_files"] += 1
        except (pa.ArrowException, OSError) as exc:
            problems.append(f"{path}: parquet does not decode ({_one_line(exc)})")
    stats = root / layout.STATS_PATH
    if stats.exists():
        try:
            json.loads(stats.read_text())
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            problems.append(f"{stats}: not valid JSON ({_one_line(exc)})")
    for k in tqdm(range(reader.num_episodes), desc="episodes", unit="ep", disable=not progress):
        if len(problems) >= MAX_PROBLEMS:
            break
        try:
            reader.episode(k)
            counts["episodes"] += 1
            counts["frames"] += reader.episode_length(k)
        except Exception as exc:   # noqa: BLE001 - decoders raise many types; each is one problem
            problems.append(f"episode {k}: {_one_line(exc)}")
    problems += _video_frame_counts(reader, counts)
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS] + [f"... and more (listing stops at {MAX_PROBLEMS})"]
    return problems, counts


def _video_frame_counts(reader, counts: dict) -> list[str]:
    """Each MP4 must hold exactly the frames of the episodes that name it (packets counted, no decode:
    the decode above already checked each episode's own frames)."""
    import av

    expected: dict[Path, int] = {}
    for f in reader.features:
        if f.is_video:
            for k in range(reader.num_episodes):
                path = reader._video_path(f.key, reader.episodes[k])
                expected[path] = expected.get(path, 0) + reader.episode_length(k)
    problems = []
    for path, want in sorted(expected.items()):
        try:
            with av.open(str(path)) as container:
                have = sum(1 for pkt in container.demux(container.streams.video[0]) if pkt.size)
        except Exception as exc:   # noqa: BLE001
            problems.append(f"{path}: video does not open ({_one_line(exc)})")
            continue
        counts["video_files"] += 1
        if have != want:
            problems.append(f"{path}: video holds {have} frames, the episodes table accounts for {want}")
    return problems
