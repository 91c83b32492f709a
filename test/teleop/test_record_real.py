"""`policy-stack record --real --arm fake-servo`: the hardware record graph as real processes (own ROS
domain): the teleop node's actions go to the arm adapter's teleop_topic, the adapter drives the sim node
standing in for the arm behind a fake MoveIt Servo controller, the recorder writes MCAP, then conversion.
Checks: the episode is recorded and loads; its actions are the teleop commands sent; and the arm really
moved the way they say (+x), i.e. the adapter executed them on the (fake) robot."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policy_stack.data.reader import LeRobotDatasetReader

pytestmark = [pytest.mark.sim, pytest.mark.slow]
ACTION = [0.6, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]     # +x at 60 % of the OSC step, gripper open


def test_record_real_fake_servo_one_episode(tmp_path, ros_env):
    waypoints = tmp_path / "w.json"
    waypoints.write_text(json.dumps({"actions": [ACTION] * 40, "end_event": "failure"}))
    out = tmp_path / "ds"
    proc = subprocess.run([sys.executable, "-m", "policy_stack.cli", "record", "--real", "--arm", "fake-servo",
                           "--env", "lift", "--device", "scripted", "--waypoints", str(waypoints), "--episodes", "1",
                           "--seed", "3", "--out", str(out), "--domain-id", ros_env["ROS_DOMAIN_ID"], "--json"],
                          env=ros_env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes_recorded"] == 1 and summary["arm"] == "servo", summary
    ep = LeRobotDatasetReader(out).episode(0)
    n = len(ep["action"])
    assert n >= 20, n
    sent = [json.loads(line) for line in (Path(summary["recordings"]) / "run" / "teleop_commands.jsonl").read_text().splitlines()]
    assert sent and all(np.allclose(c["action"], ACTION) for c in sent if c["engaged"])
    np.testing.assert_allclose(ep["action"], np.tile(np.float32(ACTION), (n, 1)), atol=1e-6)
    eef = ep["robot0_eef_pos"]
    assert eef[-1][0] - eef[0][0] > 0.03, eef[[0, -1]]          # the adapter moved the arm along +x
    assert abs(eef[-1][1] - eef[0][1]) < 0.02
