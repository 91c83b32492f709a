"""`policy-stack run-default` (what `make run` runs): the ROS 2 manipulation stack on Lift.

Equivalent to `policy-stack up --env lift --episodes 5` with the shipped checkpoint, plus an MP4 of
the agentview camera and a loop-latency plot, all under runs/default-<time>/.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from policy_stack.cli import up


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    run_dir = Path("runs") / time.strftime("default-%Y%m%d-%H%M%S")
    parser = argparse.ArgumentParser()
    up.add_arguments(parser)
    argv = ["--env", "lift", "--episodes", str(args.episodes), "--run-dir", str(run_dir),
            "--video", str(run_dir / "agentview.mp4"), "--plot", str(run_dir / "latency.png")]
    return up.run(parser.parse_args(argv + (["--json"] if args.json else [])))
