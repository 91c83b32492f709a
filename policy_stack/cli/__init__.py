"""The `policy-stack` command: the composition root.

This package is the one place in policy_stack/ that may import sim/, hardware/ and ros_nodes/, and it
does so lazily, per command: each verb lives in its own module here, exposing
`add_arguments(parser)` and `run(args) -> int`, and is imported only when the verb is used, so
`policy-stack dataset info` never pays for robosuite or rclpy.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# verb -> (module under policy_stack.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("collect", "collect scripted-expert demonstrations into a LeRobot v3 dataset"),
    "dataset": ("dataset", "inspect (info), visualise (viz), repair or verify a dataset"),
    "convert": ("convert", "import robosuite/robomimic HDF5, MCAP or rosbag2 recordings"),
    "train": ("train", "train a policy from a dataset"),
    "eval": ("evaluate", "roll a policy out in simulation"),
    "export": ("export", "export a policy network (onnx)"),
    "checkpoint": ("checkpoint", "load a checkpoint and describe it (info)"),
    "bench": ("bench", "latency benchmarks"),
    "up": ("up", "start the ROS 2 node graph (sim + inference) as processes"),
    "finetune": ("finetune", "online RL fine-tuning session (EXPO, PA-RL)"),
    "run-default": ("run_default", "what `make run` runs"),
    "camera": ("camera", "RealSense: synthesize a test recording (synth), check a camera or recording (check)"),
    "record": ("record", "record teleoperated demonstrations (MCAP per episode) and convert them to a dataset"),
    "session": ("session", "a sim-to-real session: preflight, eval, calibrate, demos, finetune, reeval (resumable)"),
}


def build_parser(verbs=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="policy-stack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (module_name, help_text) in COMMANDS.items():
        if verbs is not None and verb not in verbs:
            sub.add_parser(verb, help=help_text, add_help=False)
            continue
        p = sub.add_parser(verb, help=help_text)
        module = importlib.import_module(f"policy_stack.cli.{module_name}")
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb is not None and verb not in COMMANDS:
        print(f"policy-stack: unknown command {verb!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    # Only import the module of the verb in use (cheap --help for the rest).
    parser = build_parser(verbs={verb} if verb else set())
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 0 if verb is None else 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print("policy-stack: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as exc:  # user errors: one clear line, no traceback
        print(f"policy-stack {verb}: error: {one_line(exc)}", file=sys.stderr)
        return 2


def one_line(exc: BaseException, limit: int = 600) -> str:
    """An error message as one printable line: library messages (Arrow, PyAV) may carry newlines and
    control bytes from the damaged input they quote, and a hostile file must not shape our output."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(exc))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
