"""Lockstep through ROS 2 equals in-process, action for action? (JSON)

    python -m bench.bench_lockstep                    # shipped Lift checkpoint, 20 seeds from 100000
    python -m bench.bench_lockstep -n 5 --policy CKPT --out runs/lockstep.json

In-process: the policy re-plans every step (`action_horizon=1`, as `eval --action-steps 1`) through the
one episode loop, its sampling noise reseeded with --policy-seed at every episode start.
ROS 2: `policy-stack up --timing lockstep --sim-time --policy-seed S`: the sim node publishes each
observation, waits for the chunk answering exactly it and executes its first action; the inference
node reseeds at every /policy/reset. Same env seeds (episode k: seed + k) on both paths.

Reports per seed: success on both paths, steps, and the largest absolute difference between the
actions executed at the same step (over the common length). Low-dim policies only: depth images are
quantized to millimetres on the wire, so an RGB-D policy sees slightly different input through ROS 2.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def in_process(policy_path: str, env_name: str, seeds: list[int], max_steps: int, policy_seed: int,
               device: str) -> dict[int, dict]:
    import torch

    from policy_stack.checkpoint import load_policy
    from policy_stack.episode import run_episode
    from sim.envs import make_env

    torch.set_num_threads(1)       # the inference node's setting on small machines
    policy = load_policy(policy_path or None, device=device)
    policy.reset = lambda seed=None, _reset=policy.reset: _reset(seed=policy_seed)   # reseed per episode
    out = {}
    # One env for every episode, reset once before the first as the sim node does (it publishes the
    # initial state while waiting for the policy): a fresh robosuite env per seed gives trajectories
    # that differ from a reused one's after a few steps (solver warm start, controller state).
    env = make_env(env_name, seed=seeds[0], horizon=max_steps)
    env.reset(seed=seeds[0])
    for seed in seeds:
        rec = run_episode(env, policy, seed, max_steps=max_steps, action_horizon=1, record_obs=False)
        out[seed] = {"success": bool(rec["episode_success"]), "steps": int(rec["length"]),
                     "actions": np.asarray(rec["action"], np.float64)}
    env.close()
    return out


def through_ros(args, seeds: list[int], run_dir: Path) -> tuple[dict[int, dict], dict]:
    cmd = [sys.executable, "-m", "policy_stack.cli", "up", "--json", "--env", args.env, "--episodes", str(len(seeds)),
           "--seed", str(seeds[0]), "--max-steps", str(args.max_steps), "--timing", "lockstep", "--sim-time",
           "--policy-seed", str(args.policy_seed), "--device", args.device, "--run-dir", str(run_dir),
           "--timeout", str(600 + 30 * len(seeds) * args.max_steps / 20)]
    if args.policy:
        cmd += ["--policy", args.policy]
    if args.domain_id is not None:
        cmd += ["--domain-id", str(args.domain_id)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {"error": proc.stderr[-2000:]}
    summary["command"] = " ".join(cmd[2:])
    summary["rc"] = proc.returncode
    out = {}
    path = run_dir / "episodes.jsonl"
    for line in (path.read_text().splitlines() if path.is_file() else []):
        ep = json.loads(line)
        out[int(ep["seed"])] = {"success": bool(ep["success"]), "steps": int(ep["steps"]),
                                "actions": np.asarray(ep["actions"], np.float64)}
    return out, summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="lift")
    p.add_argument("--policy", default="", help="low-dim checkpoint folder (default: the shipped one)")
    p.add_argument("--episodes", "-n", type=int, default=20)
    p.add_argument("--seed", type=int, default=100000)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--policy-seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID for the graph (default: up's random one)")
    p.add_argument("--out", default="runs/lockstep.json")
    args = p.parse_args(argv)
    seeds = [args.seed + k for k in range(args.episodes)]
    t0 = time.monotonic()
    ref = in_process(args.policy, args.env, seeds, args.max_steps, args.policy_seed, args.device)
    t_ref = time.monotonic() - t0
    ros, summary = through_ros(args, seeds, Path(tempfile.mkdtemp(prefix="lockstep_")))
    per_seed, diffs = {}, []
    for seed in seeds:
        a, b = ref[seed], ros.get(seed)
        if b is None:
            per_seed[seed] = {"in_process": a["success"], "ros": None}
            continue
        n = min(len(a["actions"]), len(b["actions"]))
        d = float(np.abs(a["actions"][:n] - b["actions"][:n]).max()) if n else 0.0
        diffs.append(d)
        per_seed[seed] = {"in_process": a["success"], "ros": b["success"], "steps": [a["steps"], b["steps"]],
                          "max_abs_action_diff": d}
    report = {"bench": "lockstep", "env": args.env, "policy": args.policy or "(shipped default)", "seeds": seeds,
              "policy_seed": args.policy_seed, "max_steps": args.max_steps,
              "host": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
              "in_process": {"successes": sum(r["success"] for r in ref.values()), "wall_s": round(t_ref, 1)},
              "ros": {"successes": sum(r["success"] for r in ros.values()), "episodes": len(ros),
                      "command": summary.get("command"), "rc": summary.get("rc"), "error": summary.get("error"),
                      "wall_s": summary.get("wall_s")},
              "same_success_every_seed": all(v.get("ros") == v["in_process"] for v in per_seed.values()),
              "max_abs_action_diff": max(diffs) if diffs else None, "per_seed": per_seed}
    text = json.dumps(report, indent=1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0 if summary.get("rc") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
