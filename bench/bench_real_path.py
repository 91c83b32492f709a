"""The real-robot path end to end, scored on task success: policy -> arm adapter -> fake controller -> sim arm.

    python -m bench.bench_real_path                          # chunk, servo and jtc rows, 20 Lift episodes each
    python -m bench.bench_real_path --rows servo -n 5 --out runs/bench/real_path_servo.json

Every row is one `policy-stack up --json` run with the shipped default checkpoint, seeds S..S+n-1
(default S = 100000, never seen in training), real time at 20 Hz, on CPU:

  chunk   the sim graph: the sim node executes /policy/action_chunk itself (the comparison)
  servo   `up --real --arm fake-servo`: inference node -> arm_adapter (backend servo) -> TwistStamped ->
          the sim node as MoveIt Servo (0.1 s command timeout) on the robosuite arm
  jtc     `up --real --arm fake-jtc`: arm_adapter (backend jtc, differential IK) -> JointTrajectory ->
          the sim node as joint_trajectory_controller (robosuite JOINT_POSITION, absolute targets)
  pose    `up --real --arm fake-pose`: arm_adapter (backend pose) -> interpolated PoseStamped targets ->
          the sim node as Cartesian impedance controller (discontinuity reflex on jumps)

Per row: success rate, hold steps by reason (the fake controller's: "halted (command timeout)", "no
trajectory", ...), steps, wall time, and for the OSC rows (chunk, servo, pose) the executed actions
outside [-1, 1] or non-finite (must be 0) and the p50/p90 of the executed linear delta norm. The episode machinery (`up`, episodes.jsonl) and its helpers
are bench_robustness's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_robustness import _sum_holds, _violations, run_up

REPO = Path(__file__).resolve().parents[1]
ROWS = {"chunk": [], "servo": ["--real", "--arm", "fake-servo"], "jtc": ["--real", "--arm", "fake-jtc"],
        "pose": ["--real", "--arm", "fake-pose"]}
OSC_ROWS = {"chunk", "servo", "pose"}      # rows whose executed actions are OSC_POSE deltas in [-1, 1]
REQUIRED = {"servo": 0.90, "jtc": 0.90}
DOMAIN_BASE = 70


def run_row(name: str, args, work: Path) -> dict:
    cmd, proc, s, episodes, t0, load0 = run_up(ROWS[name], args, work / name, DOMAIN_BASE + list(ROWS).index(name))
    return {"command": " ".join(cmd[2:]), "rc": proc.returncode, "error": s.get("error"),
            "successes": s.get("successes"), "episodes": s.get("episodes"), "success_rate": s.get("success_rate"),
            "per_episode": [{k: ep.get(k) for k in ("seed", "success", "steps")} for ep in episodes],
            "hold_steps": _sum_holds(episodes), "steps": sum(ep.get("steps", 0) for ep in episodes),
            "controller_rejections": sum(ep.get("controller_rejections", 0) for ep in episodes),
            "action_violations": _violations(episodes) if name in OSC_ROWS else None,
            "linear_delta_norm": _linear_delta_norm(episodes) if name in OSC_ROWS else None,
            "wall_s": round(time.monotonic() - t0, 1),
            "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "stderr_tail": proc.stderr[-3000:] if proc.returncode else ""}


def _linear_delta_norm(episodes: list[dict]) -> dict | None:
    """p50/p90 of |(dx, dy, dz)| over the executed OSC actions: how hard the speed limits cut."""
    import numpy as np
    a = [np.asarray(ep["actions"], np.float64)[:, :3] for ep in episodes if ep.get("actions")]
    if not a:
        return None
    n = np.linalg.norm(np.concatenate(a), axis=1)
    return {"p50": round(float(np.percentile(n, 50)), 3), "p90": round(float(np.percentile(n, 90)), 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="chunk,servo,jtc", help=f"comma-separated, from {list(ROWS)}")
    p.add_argument("--episodes", "-n", type=int, default=20)
    p.add_argument("--seed", type=int, default=100000)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--policy", default="", help="checkpoint folder (default: the shipped one)")
    p.add_argument("--out", default="runs/bench/real_path.json")
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; known: {list(ROWS)}")
    work = Path(tempfile.mkdtemp(prefix="real_path_"))
    report = {"bench": "real_path", "policy": args.policy or "(shipped default)", "env": "lift",
              "episodes": args.episodes, "seeds": [args.seed, args.seed + args.episodes - 1],
              "max_steps": args.max_steps, "rate_hz": 20.0,
              "host": {"cpus": os.cpu_count(), "load_avg_1m_start": round(os.getloadavg()[0], 2)},
              "required_success": REQUIRED, "rows": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in rows:
        print(f"[real_path] {name} ...", file=sys.stderr, flush=True)
        row = run_row(name, args, work)
        row["meets_required"] = (row["success_rate"] or 0) >= REQUIRED[name] if name in REQUIRED else None
        report["rows"][name] = row
        print(f"[real_path] {name}: {row['successes']}/{row['episodes']} success, holds {row['hold_steps']}, "
              f"rejections {row['controller_rejections']}, rc {row['rc']}", file=sys.stderr, flush=True)
        out.write_text(json.dumps(report, indent=1))      # after every row: a long run keeps what it measured
    print(json.dumps(report, indent=1))
    return 0 if all(r["rc"] == 0 for r in report["rows"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
