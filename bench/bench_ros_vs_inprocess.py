"""Success rate of one checkpoint in-process vs. behind ROS 2, on the same seeds (JSON output).

    python -m bench.bench_ros_vs_inprocess                  # shipped Lift checkpoint, 20 seeds
    python -m bench.bench_ros_vs_inprocess --episodes 50 --seed 100000 --device cpu --out runs/ros_vs_inproc.json

In-process: `policy-stack eval --env E --episodes N --seed S --action-steps 1 --max-steps M --json`:
the policy re-plans every control tick, as the inference node does (the node runs act() once per
observation and the sim executes chunk[0] of the newest chunk), but without transport, real-time
pacing or the watchdogs.
ROS 2: `policy-stack up --env E --episodes N --seed S --max-steps M --json`: sim node + inference node
as processes, real time at --rate; the sim node uses seed S + episode, exactly as eval's seed S + k,
so both see the same initial object placements. (The policies' sampling noise is not seeded per
episode in either path, so individual episodes may still differ.)

Reports both success rates, the difference (ROS minus in-process) in percentage points with the
standard error of a difference of two independent proportions, and the ROS run's loop latency / holds.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from policy_stack.persist import write_text_atomic

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], timeout: float) -> tuple[dict | None, int, str]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    data = json.loads(lines[-1]) if lines else None
    if data is not None:
        data["_wall_s"] = round(time.monotonic() - t0, 1)
    return data, proc.returncode, proc.stderr[-2000:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="lift")
    p.add_argument("--policy", default="", help="checkpoint folder (default: the shipped one)")
    p.add_argument("--episodes", "-n", type=int, default=20, help="seeds per path (default 20)")
    p.add_argument("--seed", type=int, default=100000, help="first seed (eval's default test seed)")
    p.add_argument("--max-steps", type=int, default=200, help="episode cap for both paths (Lift's horizon: 200)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--rate", type=float, default=20.0, help="ROS control rate, Hz")
    p.add_argument("--out", default="", help="also write the JSON here")
    args = p.parse_args(argv)

    py = sys.executable
    common = ["--env", args.env, "--episodes", str(args.episodes), "--seed", str(args.seed),
              "--max-steps", str(args.max_steps), "--device", args.device, "--json"]
    if args.policy:
        common += ["--policy", args.policy]
    eval_cmd = [py, "-m", "policy_stack.cli", "eval", *common, "--action-steps", "1", "--no-progress"]
    run_dir = Path(tempfile.mkdtemp(prefix="ros_vs_inproc_"))
    up_cmd = [py, "-m", "policy_stack.cli", "up", *common, "--rate", str(args.rate), "--run-dir", str(run_dir)]
    budget = 300 + 4 * args.episodes * args.max_steps / args.rate

    inproc, rc_e, err_e = _run(eval_cmd, budget)
    ros, rc_u, err_u = _run(up_cmd, budget)
    report = {"bench": "ros_vs_inprocess_success", "env": args.env, "policy": args.policy or "(shipped default)",
              "episodes": args.episodes, "seeds": [args.seed, args.seed + args.episodes - 1],
              "max_steps": args.max_steps, "device": args.device, "rate_hz": args.rate,
              "host": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
              "commands": {"in_process": " ".join(eval_cmd[1:]), "ros": " ".join(up_cmd[1:])}}
    errors = {}
    if inproc is None or rc_e != 0:
        errors["in_process"] = f"rc {rc_e}: {err_e}"
    if ros is None or rc_u != 0:
        errors["ros"] = f"rc {rc_u}: {(ros or {}).get('error') or err_u}"
    if inproc is not None:
        report["in_process"] = {"successes": inproc["successes"], "episodes": inproc["episodes"],
                                "success_rate": round(inproc["success_rate"], 4),
                                "action_steps": inproc.get("action_steps"), "sampler": inproc.get("sampler"),
                                "act_latency_ms_p50": round(inproc["latency_ms_p50"], 3),
                                "act_latency_ms_p99": round(inproc["latency_ms_p99"], 3), "wall_s": inproc["_wall_s"]}
    if ros is not None:
        holds = {}
        for ep in ros.get("per_episode", []):
            for k, v in ep.get("holds", {}).items():
                holds[k] = holds.get(k, 0) + v
        report["ros"] = {"successes": ros["successes"], "episodes": ros["episodes"],
                         "success_rate": ros["success_rate"], "loop_latency_ms": ros["loop_latency_ms"],
                         "hold_steps": holds, "wall_s": ros["_wall_s"],
                         "per_seed": {str(ep["seed"]): ep["success"] for ep in ros.get("per_episode", [])}}
    if inproc is not None and ros is not None and inproc["episodes"] and ros["episodes"]:
        a, na = inproc["success_rate"], inproc["episodes"]
        b, nb = ros["success_rate"], ros["episodes"]
        se = math.sqrt(a * (1 - a) / na + b * (1 - b) / nb)
        report["difference_pp"] = round(100 * (b - a), 2)        # ROS minus in-process
        report["difference_se_pp"] = round(100 * se, 2)
    report["errors"] = errors or None
    if not errors:
        import shutil
        shutil.rmtree(run_dir, ignore_errors=True)     # kept (node logs, episodes.jsonl) when something failed
    else:
        report["run_dir"] = str(run_dir)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        write_text_atomic(Path(args.out), text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
