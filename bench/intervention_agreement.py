"""How well a recording's `intervention` flag matches the action that was executed, for a dataset written
by `policy-stack record --policy ... --device scripted --waypoints W` with ONE constant teleop action in W.

    python -m bench.intervention_agreement DATASET --teleop-action 0,0,0.3,0,0,0,-1 [--out runs/bench/x.json]

Per episode: frames, frames flagged `intervention`, frames whose recorded (executed) action is the teleop
action, and frames where the two disagree (the flag says human but the policy's action ran, or the other
way round). Prints one JSON object (and writes it to --out).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from policy_stack.data.reader import LeRobotDatasetReader


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--teleop-action", required=True, help="the waypoint file's action, comma-separated")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    teleop = np.array([float(x) for x in args.teleop_action.split(",")], np.float32)
    ds = LeRobotDatasetReader(args.dataset)
    rows = []
    for k in range(ds.num_episodes):
        ep = ds.episode(k)
        flag = ep["intervention"].astype(bool)
        ran_teleop = np.all(np.abs(ep["action"] - teleop) <= 1e-6, axis=1)
        rows.append({"episode": k, "frames": int(len(flag)), "flagged": int(flag.sum()),
                     "teleop_executed": int(ran_teleop.sum()), "disagree": int((flag != ran_teleop).sum())})
    result = {"dataset": str(args.dataset), "episodes": rows,
              "disagree_total": sum(r["disagree"] for r in rows), "frames_total": sum(r["frames"] for r in rows)}
    text = json.dumps(result)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
