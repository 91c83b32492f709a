"""`policy-stack convert hdf5 IN.hdf5 --out DIR`: import robosuite/robomimic demonstrations."""
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


def run(args) -> int:
    from policy_stack.data.convert_hdf5 import convert_hdf5

    writer = convert_hdf5(args.src, args.out, task=args.task, flip_images=not args.no_flip, fps=args.fps,
                          max_demos=args.max_demos)
    print(f"wrote {args.out}: {writer.num_episodes} episodes, {writer.num_frames} frames")
    return 0
