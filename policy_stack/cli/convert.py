"""`policy-stack convert hdf5|mcap|rosbag2 IN --out DIR`: import demonstrations into a LeRobot v3 dataset.

hdf5: robomimic/robosuite HDF5. mcap / rosbag2: recorded ROS 2 messages (policy-stack record's
episode_NNNNNN.mcap files, any .mcap, or rosbag2 folders), one episode per bag, through a
topic-to-feature mapping file (docs/teleop.md, "Mapping file")."""
from __future__ import annotations


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="convert_cmd", metavar="FORMAT", required=True)
    h5 = sub.add_parser("hdf5", help="robomimic/robosuite HDF5 (data/demo_<i>/obs, actions) -> LeRobot v3.0")
    h5.add_argument("src", help="input .hdf5 file")
    h5.add_argument("--out", required=True, help="new dataset folder")
    h5.add_argument("--task", default=None, help="task text stored with every episode (default: env name)")
    h5.add_argument("--fps", type=int, default=None, help="default: env_args control_freq, else 20")
    h5.add_argument("--no-flip", action="store_true",
                    help="images are already upright (default flips robosuite's bottom-up OpenGL rows)")
    h5.add_argument("--max-demos", type=int, default=None)
    for fmt, what in (("mcap", "MCAP files or a recordings folder (episode_NNNNNN.mcap + .json)"),
                      ("rosbag2", "rosbag2 folders (metadata.yaml + .mcap or .db3), or a folder of them")):
        b = sub.add_parser(fmt, help=f"{what} -> LeRobot v3.0, one episode per bag")
        b.add_argument("src", nargs="+", help="inputs")
        b.add_argument("--mapping", required=True, help="topic-to-feature mapping YAML")
        b.add_argument("--out", required=True, help="dataset folder (created, or appended to)")
        b.add_argument("--task", default=None, help="task text when an episode has no JSON and the mapping none")
        b.add_argument("--json", action="store_true", help="print one JSON summary on stdout")


def run(args) -> int:
    if args.convert_cmd in ("mcap", "rosbag2"):
        return _run_bags(args)
    from policy_stack.data.convert_hdf5 import convert_hdf5

    writer = convert_hdf5(args.src, args.out, task=args.task, flip_images=not args.no_flip, fps=args.fps,
                          max_demos=args.max_demos)
    print(f"wrote {args.out}: {writer.num_episodes} episodes, {writer.num_frames} frames")
    return 0


def _run_bags(args) -> int:
    import json
    from pathlib import Path

    from policy_stack.recording.convert_bag import convert, list_episodes
    from policy_stack.recording.mapping import load_mapping

    mapping = load_mapping(args.mapping)
    for p in list_episodes(args.src):
        bag2 = p.is_dir()
        if bag2 != (args.convert_cmd == "rosbag2"):
            kind = "a rosbag2 folder" if bag2 else "an MCAP file"
            raise ValueError(f"{p} is {kind}; use `convert {'rosbag2' if bag2 else 'mcap'}`")
    result = convert(args.src, mapping, Path(args.out), task=args.task)
    if args.json:
        print(json.dumps(result))
    else:
        for r in result["reports"]:
            print(f"episode {r['episode']}: {r['frames']} frames ({r['duration_s']} s) from {r['source']}"
                  + (f", dropped {r['dropped']}" if r["dropped"] else ""))
        print(f"wrote {args.out}: {result['episodes']} episodes, {result['frames']} frames at {result['fps']} fps")
    return 0
