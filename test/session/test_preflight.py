"""Preflight (ros_nodes/session_probe.py, attached to a running robot) fails clearly on a missing topic.

A real rclpy publisher in this process plays the robot's state topics (/joint_states, /ee_pose) at 20 Hz in
an isolated domain; nothing publishes the cube pose, the policy's chunks or the arm commands. The probe runs
as its own process, exactly as `policy-stack session` runs it."""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))   # ros_testlib (test/ros has no package)
from ros_testlib import REPO, RosClient  # noqa: E402

pytestmark = pytest.mark.ros


def test_preflight_names_the_missing_topics(ros_env, tmp_path):
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState

    from ros_nodes import convert as C
    from ros_nodes.common import STATE_QOS

    client = RosClient("fake_robot")
    joints = client.node.create_publisher(JointState, "/joint_states", STATE_QOS)
    pose = client.node.create_publisher(PoseStamped, "/ee_pose", STATE_QOS)
    stop = threading.Event()

    def robot():
        names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
        while not stop.is_set():
            stamp = C.sec_to_stamp(time.time())
            joints.publish(C.joint_state_msg(names, np.zeros(9), stamp))
            pose.publish(C.pose_msg([0.5, 0.0, 0.2], [1.0, 0.0, 0.0, 0.0], stamp, "panda_link0"))
            time.sleep(0.05)
    thread = threading.Thread(target=robot, daemon=True)
    thread.start()
    out = tmp_path / "probe.json"
    try:
        proc = subprocess.run([sys.executable, "-m", "ros_nodes.session_probe", "preflight", "--attach",
                               "--policy", "diffusion_lowdim_lift", "--wait", "3", "--out", str(out)],
                              cwd=REPO, env=ros_env, capture_output=True, text=True, timeout=120)
    finally:
        stop.set()
        thread.join(2)
        client.close()
    assert proc.returncode == 1, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["ok"] is False
    present = result["checks"][0]
    assert present["check"] == "topics present" and not present["ok"]
    # Exactly the silent topics are named, with their type and rate; the live ones are not.
    assert set(present["silent"]) == {"/objects/cube/pose", "/policy/action_chunk", "/servo_node/delta_twist_cmds"}
    assert "/objects/cube/pose (PoseStamped, expected 20 Hz)" in result["error"]
    assert "/joint_states" not in result["error"] and "/ee_pose" not in result["error"]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["ok"] is False
