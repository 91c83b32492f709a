"""Demonstrations per minute with `policy-stack collect --workers 1` vs `--workers 2`, in one run.

    python -m bench.bench_collect [--env lift --episodes 10 --cameras agentview,robot0_eye_in_hand --depth] [--out FILE]

Each configuration collects the same seeds into a fresh temporary dataset; the ratio is
demos/min(workers=2) / demos/min(workers=1), measured back to back on the same machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import RUNS
from policy_stack.persist import write_json_atomic


def collect(env: str, episodes: int, workers: int, cameras: str, depth: bool, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_collect_") as tmp:
        cmd = [sys.executable, "-m", "policy_stack.cli", "collect", "--env", env, "--episodes", str(episodes),
               "--workers", str(workers), "--seed", str(seed), "--out", str(Path(tmp) / "ds"), "--json"]
        if cameras:
            cmd += ["--cameras", cameras]
        if depth:
            cmd += ["--depth"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        summary["process_wall_s"] = round(time.perf_counter() - t0, 2)  # includes start-up and env creation
        return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="lift")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--cameras", default="agentview,robot0_eye_in_hand")
    p.add_argument("--depth", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--seed", type=int, default=5000)
    p.add_argument("--out", default=str(RUNS / "collect.json"), help="result JSON (default %(default)s)")
    args = p.parse_args(argv)
    runs = {}
    for workers in (1, 2):
        runs[f"workers_{workers}"] = collect(args.env, args.episodes, workers, args.cameras, args.depth, args.seed)
    w1, w2 = runs["workers_1"]["demos_per_min"], runs["workers_2"]["demos_per_min"]
    result = {"bench": "collect", "env": args.env, "episodes": args.episodes, "cameras": args.cameras,
              "depth": args.depth, "runs": runs, "speedup_workers_2_vs_1": round(w2 / w1, 3) if w1 else None,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "loadavg_end": os.getloadavg()}, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(Path(args.out), result, indent=1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
