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


def test_record_real_policy_with_a_takeover(tmp_path, ros_env):
    """Interventions through the arm adapter (`record --real --policy`): the stand-in policy drives the fake
    servo arm; the scripted operator stays released for TAKEOVER ticks, then takes over with the expert.
    The adapter publishes what it executed, stamped with the observation it followed, so the dataset's
    `action` is the policy's before the takeover and the operator's after it, and `intervention` is one
    block from the takeover to the end."""
    import sys as _sys
    _sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))
    from ros_testlib import node_env, standin

    takeover, max_steps = 15, 45
    out = tmp_path / "ds"
    proc = subprocess.run([sys.executable, "-m", "policy_stack.cli", "record", "--real", "--arm", "fake-servo",
                           "--policy", standin("make_lowdim"), "--env", "lift", "--device", "scripted",
                           "--takeover-after", str(takeover), "--episodes", "1", "--seed", "4",
                           "--max-steps", str(max_steps), "--out", str(out),
                           "--domain-id", ros_env["ROS_DOMAIN_ID"], "--json"],
                          env=node_env(ros_env), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes_recorded"] == 1 and summary["policy"], summary
    ep = LeRobotDatasetReader(out).episode(0)
    flags, actions = ep["intervention"].astype(bool), ep["action"]
    idx = np.flatnonzero(flags)
    assert len(idx) >= 10 and np.all(np.diff(idx) == 1) and idx[-1] == len(flags) - 1, flags.astype(int).tolist()
    assert takeover - 4 <= idx[0] <= takeover + 4, (idx[0], flags.astype(int).tolist())
    sent = [json.loads(line) for line in (Path(summary["recordings"]) / "run" / "teleop_commands.jsonl")
            .read_text().splitlines()]
    engaged = np.array([c["action"] for c in sent if c["engaged"]], np.float32)
    assert len(engaged) >= 10
    is_sent = np.array([np.any(np.all(np.abs(engaged - a) < 1e-5, axis=1)) for a in actions])
    # The operator's actions after the takeover, the policy's before (a message in flight can shift the
    # edge by a frame or two).
    assert is_sent[idx[0] + 2:].all(), is_sent.astype(int).tolist()
    assert not is_sent[:max(0, idx[0] - 2)].any(), is_sent.astype(int).tolist()
    # The stand-in never rotates; the expert's frames are not all rotation-free.
    assert np.all(actions[:max(0, idx[0] - 2), 3:6] == 0)
