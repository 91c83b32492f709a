"""teleop_node as a real process over real rclpy: the published action layout (the /policy/action_chunk
layout, one point), the Servo twist, episode events from the Trigger services, and the sim reset call
that reset/rerecord make. The device is the scripted one replaying a waypoint file (what a test can
drive); the other devices' parsing is tested in test_devices.py."""
import json
import sys
import threading

import numpy as np
import pytest

from ros_nodes.graph import Graph, NodeSpec
from ros_nodes.launcher import GraphProcesses

NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]


@pytest.fixture
def client():
    sys.path.insert(0, "test/ros")
    from ros_testlib import RosClient
    c = RosClient("teleop_test_client")
    yield c
    c.close()


def test_teleop_node_topics_services_and_reset(tmp_path, ros_env, client):
    from geometry_msgs.msg import TwistStamped
    from std_msgs.msg import String
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from ros_nodes.common import CHUNK_QOS
    from ros_nodes.teleop_node import EVENT_QOS

    waypoints = tmp_path / "w.json"
    waypoints.write_text(json.dumps({"actions": [[0.4, -0.2, 0.1, 0, 0, 0.3, 1.0]] * 4000}))
    resets = []
    client.node.create_service(Trigger, "/test_sim/reset",
                               lambda req, res: (resets.append(1), setattr(res, "success", True), res)[-1])
    client.record(JointTrajectory, "/teleop/action", CHUNK_QOS)
    client.record(TwistStamped, "/teleop/twist", CHUNK_QOS)
    client.record(String, "/teleop/episode_event", EVENT_QOS)
    spec = NodeSpec(name="teleop_node", executable="teleop_node", module="ros_nodes.teleop_node",
                    parameters={"device": "scripted", "waypoints_file": str(waypoints),
                                "sim_reset_service": "/test_sim/reset", "rate_hz": 20.0, "max_steps": 100000})
    procs = GraphProcesses(Graph((spec,), {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}), tmp_path,
                           env=dict(ros_env), out=sys.stderr).start()
    try:
        acts = client.wait_for(lambda: client.received("/teleop/action")[5:], timeout=60)
        assert acts, "no /teleop/action"
        msg = acts[0]
        assert list(msg.joint_names) == NAMES and len(msg.points) == 1
        np.testing.assert_allclose(msg.points[0].positions, [0.4, -0.2, 0.1, 0, 0, 0.3, 1.0], atol=1e-6)
        assert msg.header.stamp.sec > 0
        tw = client.wait_for(lambda: client.received("/teleop/twist"), timeout=10)[-1]
        assert tw.header.frame_id == "panda_link0"
        # eef_delta: 0.4 -> 0.02 m per 50 ms step = 0.4 m/s; yaw 0.3 -> 0.15 rad per step = 3 rad/s
        assert tw.twist.linear.x == pytest.approx(0.4, rel=1e-5) and tw.twist.angular.z == pytest.approx(3.0, rel=1e-5)
        events = lambda: [json.loads(m.data)["event"] for m in client.received("/teleop/episode_event")]
        # The device's own first "start" may precede this client's match (events are volatile): ask again.
        assert client.call(Trigger, "/teleop/start", Trigger.Request()).success
        assert client.wait_for(lambda: "start" in events(), timeout=10)
        assert client.call(Trigger, "/teleop/rerecord", Trigger.Request()).success
        assert client.wait_for(lambda: "rerecord" in events() and resets, timeout=20)
        assert client.call(Trigger, "/teleop/stop_failure", Trigger.Request()).success
        assert client.wait_for(lambda: "failure" in events(), timeout=10)
        seen = events()
        assert seen.index("start") < seen.index("rerecord") < seen.index("failure")
    finally:
        codes = procs.stop()
    assert codes["teleop_node"] == 0, codes


def test_intervention_mode_publishes_actions_only_while_engaged(tmp_path, ros_env, client):
    """publish_when_released false: /teleop/action only while the device is engaged; /teleop/state (Joy)
    every tick with buttons[0] = engaged, so a recording marks the intervention."""
    from sensor_msgs.msg import Joy
    from trajectory_msgs.msg import JointTrajectory

    from ros_nodes.common import CHUNK_QOS

    waypoints = tmp_path / "w.json"
    waypoints.write_text(json.dumps({"actions": [[0.01 * (k + 1), 0, 0, 0, 0, 0, 1.0] for k in range(60)]}))
    client.record(JointTrajectory, "/teleop/action", CHUNK_QOS)
    client.record(Joy, "/teleop/state", CHUNK_QOS)
    # After its 60 actions (3 s) the scripted episode ends and resets through a service nobody serves: the
    # device then waits, released, for good.
    spec = NodeSpec(name="teleop_node", executable="teleop_node", module="ros_nodes.teleop_node",
                    parameters={"device": "scripted", "waypoints_file": str(waypoints), "publish_when_released": False,
                                "sim_reset_service": "/nobody/reset", "rate_hz": 20.0})
    procs = GraphProcesses(Graph((spec,), {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}), tmp_path,
                           env=dict(ros_env), out=sys.stderr).start()
    try:
        released = lambda: [m for m in client.received("/teleop/state") if m.buttons[0] == 0]
        assert client.wait_for(lambda: len(released()) >= 10, timeout=60)
        engaged = [m for m in client.received("/teleop/state") if m.buttons[0] == 1]
        actions = client.received("/teleop/action")
        # every action published is an engaged tick's (same stamp, same values); none while released
        engaged_by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): list(m.axes) for m in engaged}
        assert actions and len(actions) <= 60 and engaged
        for a in actions:
            key = (a.header.stamp.sec, a.header.stamp.nanosec)
            assert key in engaged_by_stamp
            np.testing.assert_allclose(a.points[0].positions, engaged_by_stamp[key], atol=1e-6)
        released_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in released()}
        assert not released_stamps & {(a.header.stamp.sec, a.header.stamp.nanosec) for a in actions}
    finally:
        codes = procs.stop()
    assert codes["teleop_node"] == 0, codes
