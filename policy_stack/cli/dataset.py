"""`policy-stack dataset {info,viz,repair,verify}`: inspect, visualise, repair or verify a LeRobot v3.0 dataset.

Exit codes: 0 fine, 2 a problem (one line per problem on stderr, never a traceback for bad data).
"""
from __future__ import annotations

import json


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="dataset_cmd", metavar="SUBCOMMAND", required=True)
    info = sub.add_parser("info", help="episodes, frames, fps, features, cameras, success rate, size")
    info.add_argument("dir", help="dataset folder (the one holding meta/info.json)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    viz = sub.add_parser("viz", help="render one episode: RGB and colourized depth side by side")
    viz.add_argument("dir")
    viz.add_argument("--episode", type=int, default=0)
    viz.add_argument("--out", required=True, help="FILE.mp4 (video) or FILE.png (filmstrip of ~8 frames)")
    repair = sub.add_parser("repair", help="drop what a killed writer left past the last finished episode")
    repair.add_argument("dir")
    verify = sub.add_parser("verify", help="decode every parquet file and video frame; list what is wrong")
    verify.add_argument("dir")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def dataset_summary(reader) -> dict:
    summary = {
        "path": str(reader.root),
        "codebase_version": reader.info["codebase_version"],
        "robot_type": reader.info.get("robot_type"),
        "episodes": reader.num_episodes,
        "frames": reader.num_frames,
        "fps": reader.fps,
        "tasks": reader.tasks,
        "features": {f.key: {"env_key": f.env_key, "dtype": f.dtype, "shape": list(f.info_shape)}
                     for f in reader.features},
        "cameras": {"rgb": reader.rgb_keys, "depth": reader.depth_keys},
        "success_rate": None,
        "size_on_disk_bytes": reader.size_on_disk(),
    }
    if any(f.env_key == "success" for f in reader.features):
        # An episode succeeded if any of its frames reports success (no video decoding needed).
        import numpy as np

        success = reader.column("next.success").astype(bool)
        episode = reader.column("episode_index")
        summary["success_rate"] = len(np.unique(episode[success])) / max(reader.num_episodes, 1)
    if reader.orphan_files:
        summary["orphan_files"] = reader.orphan_files
    return summary


def _print_summary(s: dict) -> None:
    print(f"dataset   {s['path']}  (LeRobot {s['codebase_version']}, robot {s['robot_type']})")
    print(f"episodes  {s['episodes']}   frames {s['frames']}   fps {s['fps']}")
    print(f"tasks     {', '.join(s['tasks']) or '-'}")
    print(f"cameras   rgb {s['cameras']['rgb'] or '-'}   depth {s['cameras']['depth'] or '-'}")
    if s["success_rate"] is not None:
        print(f"success   {100 * s['success_rate']:.1f}% of episodes")
    print(f"size      {s['size_on_disk_bytes'] / 2**20:.1f} MiB")
    print("features")
    for key, f in s["features"].items():
        print(f"  {key:<40} {f['dtype']:<8} {str(f['shape']):<14} (env key {f['env_key']})")
    if s.get("orphan_files"):
        print(f"warning   {len(s['orphan_files'])} file(s) of an unfinished episode; run `policy-stack dataset repair`")


REPAIR_SCOPE = ("checked: metadata against the episodes table, every file present, parquet footers, video "
                "headers; not checked: parquet pages and video frames (run `policy-stack dataset verify DIR`)")


def _repair(path) -> int:
    import sys

    from policy_stack.data.reader import LeRobotDatasetReader
    from policy_stack.data.writer import DatasetWriter

    with DatasetWriter(path) as writer:     # holds the writer lock; reopening is the repair
        notes = list(writer.repair_notes)
        episodes, frames = writer.num_episodes, writer.num_frames
        LeRobotDatasetReader(path, check_videos=True)     # footers and headers of what was kept
    for note in notes:
        print(f"{path}: {note}", file=sys.stderr)
    print(f"{path}: {episodes} episodes, {frames} frames, metadata consistent with the files")
    print(f"{path}: {REPAIR_SCOPE}")
    return 0


def _verify(path, progress: bool) -> int:
    import sys

    from policy_stack.data.verify import verify_dataset

    problems, counts = verify_dataset(path, progress=progress)
    for line in problems:
        print(f"policy-stack dataset verify: {line}", file=sys.stderr)
    if problems:
        return 2
    print(f"{path}: ok: {counts['episodes']} episodes, {counts['frames']} frames, {counts['parquet_files']} parquet "
          f"files and {counts['video_files']} video files decoded")
    return 0


def run(args) -> int:
    from policy_stack.data.reader import LeRobotDatasetReader

    if args.dataset_cmd == "repair":
        return _repair(args.dir)
    if args.dataset_cmd == "verify":
        return _verify(args.dir, progress=not args.no_progress)
    # Video headers are opened here too (a few ms per file): a truncated MP4 fails `info`, not training.
    reader = LeRobotDatasetReader(args.dir, check_videos=True)
    if args.dataset_cmd == "info":
        summary = dataset_summary(reader)
        print(json.dumps(summary)) if args.json else _print_summary(summary)
        return 0
    from policy_stack.data.viz import render_episode

    if not 0 <= args.episode < reader.num_episodes:
        raise ValueError(f"--episode {args.episode}: dataset has episodes 0..{reader.num_episodes - 1}")
    out = render_episode(reader, args.episode, args.out)
    print(f"wrote {out}")
    return 0
