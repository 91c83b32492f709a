"""Sim node + inference node as processes: killing the inference node makes the sim hold, and no
action is executed from a chunk older than max_chunk_age_s (the open-loop horizon, default 0.5 s)."""
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from ros_testlib import RosClient, node_env, standin, start_graph, status_values

pytestmark = pytest.mark.timeout(150)
from ros_nodes.params import load_definitions  # noqa: E402

MAX_CHUNK_AGE_S = load_definitions("sim_node")["max_chunk_age_s"].default


def test_killing_inference_node_makes_sim_hold(ros_env, tmp_path):
    procs = start_graph({"policy": standin("make_lowdim"), "episodes": "0", "max_steps": "1000",
                         "cameras": "", "depth": "false"},
                        node_env(ros_env), tmp_path)
    client = RosClient()
    client.record(DiagnosticArray, "/sim/status")
    client.record(Bool, "/episode/success")
    client.record(PoseStamped, "/ee_pose")
    client.record(PoseStamped, "/objects/cube/pose")
    client.record(JointState, "/joint_states")
    try:
        executing = lambda since=0.0: [s for s in map(status_values, client.received("/sim/status", since))
                                       if s["state"] == "executing"]
        assert client.wait_for(lambda: len(executing()) >= 10, 60), "sim never executed policy actions"
        assert client.received("/episode/success"), "no /episode/success messages"

        # What the sim node publishes follows docs/ros2.md: poses in the robot base frame with its frame
        # id (Lift's cube rests ~0.09 m below the base, ~0.5-0.6 m in front of it), fingers positive,
        # one stamp per observation on every topic.
        ee, cube, js = (client.received(t)[-1] for t in ("/ee_pose", "/objects/cube/pose", "/joint_states"))
        assert ee.header.frame_id == cube.header.frame_id == "panda_link0"
        assert -0.12 < cube.pose.position.z < -0.06 and 0.4 < cube.pose.position.x < 0.7, cube.pose.position
        fingers = [p for n, p in zip(js.name, js.position) if n.startswith("panda_finger_joint")]
        assert len(fingers) == 2 and all(-0.001 <= f <= 0.041 for f in fingers), fingers
        stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for t in ("/ee_pose", "/objects/cube/pose", "/joint_states")
                  for m in client.received(t)}
        assert len(stamps) < 1.5 * len(client.received("/ee_pose")), "topics of one observation must share its stamp"

        # /sim/reset restarts the episode; the policy keeps driving it.
        resp = client.call(Trigger, "/sim/reset", Trigger.Request())
        assert resp.success
        t = time.time()
        assert client.wait_for(lambda: len(executing(t)) >= 5, 20), "no actions after /sim/reset"

        procs.kill("inference_node")          # SIGKILL: no goodbye, the last chunk just stops coming
        t_kill = time.time()
        statuses = lambda: [status_values(m) for ts, m in list(client.msgs["/sim/status"]) if ts > t_kill]

        def settled_in_hold():                # the event to wait for: 5 stale-chunk holds in a row
            tail = statuses()[-5:]
            return len(tail) == 5 and all(s["state"] == "hold" and "stale_chunk" in s["reason"] for s in tail)
        assert client.wait_for(settled_in_hold, 20), [(s["state"], s["reason"]) for s in statuses()[-8:]]
        after = statuses()
        for s in after:
            if s["state"] == "executing":
                # Allowed only from a chunk that was still fresh when executed (the sim's own clock).
                assert float(s["chunk_age_ms"]) <= MAX_CHUNK_AGE_S * 1e3 + 1, s
        # No chunk can come any more: once the sim holds for a stale chunk it never executes again.
        first_stale = next(i for i, s in enumerate(after) if "stale_chunk" in s["reason"])
        late = after[first_stale:]
        assert all(s["state"] == "hold" for s in late), [s["state"] for s in late]
        # Hold for eef_delta: zero motion (the gripper keeps its last command).
        for s in late:
            action = np.array([float(x) for x in s["action"].strip("[]").split(",")])
            np.testing.assert_array_equal(action[:6], 0.0)
        assert procs.poll()["sim_node"] is None, "sim node must survive the inference node's death"
    finally:
        client.close()
        codes = procs.stop()
    assert codes["sim_node"] == 0, codes
