"""A third-party robot side (test/third_party/robot_side.py: robosuite + rclpy written only from
docs/ros2.md, importing nothing from this repository) against the real inference node process with a
checkpoint (default: the shipped Lift policy). JSON on stdout (and --out).

    python -m bench.bench_third_party_robot --episodes 10 --seed 100000 --out bench/results/ros_third_party_lift.json

Same settings as test/third_party/test_third_party_robot.py unless overridden: the node's watchdog
budgets widened to --budget-s (max_inference_s, max_obs_age_s), the robot side waiting up to --budget-s
for the answer to each observation and counting its time in control steps (--clock steps), so the
success rate does not depend on how loaded the machine is. --clock wall --budget-s 0.03 instead runs
the robot side like a real-time arm (index chunks by wall time) against the node's default budgets.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROBOT_SIDE = REPO / "test" / "third_party" / "robot_side.py"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=100000)
    ap.add_argument("--policy", default="", help="checkpoint folder (default: the shipped Lift policy)")
    ap.add_argument("--clock", choices=["steps", "wall"], default="steps")
    ap.add_argument("--budget-s", type=float, default=5.0,
                    help="robot side: wait per answer; node: max_inference_s and max_obs_age_s (clock steps)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(1, 99)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    node_cmd = [sys.executable, "-m", "ros_nodes.inference_node", "--ros-args",
                "--params-file", str(REPO / "config" / "inference_node.yaml"), "-p", "device:=cpu"]
    if a.policy:
        node_cmd += ["-p", f"policy:={a.policy}"]
    if a.clock == "steps":
        node_cmd += ["-p", f"max_inference_s:={a.budget_s}", "-p", f"max_obs_age_s:={a.budget_s}"]
    robot_cmd = [sys.executable, str(ROBOT_SIDE), "--episodes", str(a.episodes), "--seed", str(a.seed),
                 "--answer-wait", str(a.budget_s), "--clock", a.clock]
    t0 = time.monotonic()
    load0 = os.getloadavg()
    node = subprocess.Popen(node_cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        robot = subprocess.run(robot_cmd, cwd="/", env=env, capture_output=True, text=True, timeout=3600)
    finally:
        node.send_signal(2)
        try:
            _, node_err = node.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            node.kill()
            _, node_err = node.communicate()
    lines = [json.loads(ln) for ln in robot.stdout.splitlines() if ln.startswith("{")]
    episodes = [ln for ln in lines if "episode" in ln]
    summary = next((ln["summary"] for ln in lines if "summary" in ln), {})
    result = {
        "bench": "third_party_robot", "command": "python -m bench.bench_third_party_robot " + " ".join(argv or sys.argv[1:]),
        "node_command": " ".join(node_cmd[1:]), "robot_side_command": " ".join(robot_cmd[1:]),
        "successes": sum(e["success"] for e in episodes), "episodes": len(episodes), "summary": summary,
        "per_episode": episodes, "robot_side_rc": robot.returncode, "node_rc": node.returncode,
        "node_holds_logged": sum("hold:" in ln for ln in node_err.splitlines()),
        "node_rejected_input": sum("rejected input" in ln for ln in node_err.splitlines()),
        "wall_s": round(time.monotonic() - t0, 1), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "host": {"cpus": os.cpu_count()},
    }
    if robot.returncode != 0:
        result["robot_side_stderr_tail"] = robot.stderr[-2000:]
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0 if robot.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
