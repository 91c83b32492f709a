"""The sim node as a fake real arm (arm_interface jtc): a process behind the joint_trajectory_controller
and gripper topic interfaces. A test client plays the arm adapter: the arm follows a valid trajectory
(measured on /joint_states, from physics), a trajectory with wrong joint names is refused and counted,
the gripper closes on command, and the episode ends and is reported as in chunk mode."""
import json
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ros_testlib import RosClient, node_env, start_graph, status_values
from ros_nodes import convert as C
from ros_nodes.common import CHUNK_QOS

pytestmark = [pytest.mark.timeout(180), pytest.mark.sim, pytest.mark.slow]
NAMES = [f"panda_joint{i}" for i in range(1, 8)]


def _trajectory(names, target, t_s: float) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))          # header.stamp 0: start now
    msg.points = [JointTrajectoryPoint(positions=[float(x) for x in target], velocities=[0.0] * len(names),
                                       time_from_start=C.sec_to_duration(t_s))]
    return msg


def test_jtc_fake_arm_follows_trajectories_and_rejects_bad_ones(ros_env, tmp_path):
    results = tmp_path / "episodes.jsonl"
    graph = {"cameras": "", "depth": "false", "episodes": "1", "max_steps": "60", "results_file": str(results)}
    procs = start_graph(graph, node_env(ros_env), tmp_path, only={"sim_node"}, overrides={"sim_node": {
        "arm_interface": "jtc", "policy_reset_service": "", "end_on_success": False}})
    client = RosClient()
    client.record(JointState, "/joint_states")
    client.record(DiagnosticArray, "/sim/status")
    trajectories = client.node.create_publisher(JointTrajectory, "/panda_arm_controller/joint_trajectory", CHUNK_QOS)
    gripper = client.node.create_publisher(Float64MultiArray, "/gripper_controller/commands", CHUNK_QOS)
    try:
        assert client.wait_for(lambda: client.received("/joint_states"), 120), "no /joint_states from the sim node"
        js = client.received("/joint_states")[-1]
        assert list(js.name[:7]) == NAMES
        q0 = np.array(js.position[:7])
        target = q0 + np.array([0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])

        # Wrong joint names: refused before the episode starts, so the arm must still be at q0 later.
        bad = list(NAMES)
        bad[0] = "fr3_joint1"
        t_bad = time.time()
        trajectories.publish(_trajectory(bad, target, 0.5))
        time.sleep(0.5)
        moved = [m for m in client.received("/joint_states", t_bad) if abs(m.position[0] - q0[0]) > 0.01]
        assert not moved, "a trajectory with unknown joint names moved the arm"

        # A valid trajectory starts the episode; the episode's reset drops it (a new episode starts
        # from rest), so the commands under test are sent once the episode runs.
        t_go = time.time()
        assert client.wait_for(lambda: len(client.received("/sim/status", t_go)) >= 3, 60,
                               tick=lambda: trajectories.publish(_trajectory(NAMES, q0, 0.5)), poll=0.2)
        q0 = np.array(client.received("/joint_states")[-1].position[:7])
        target = q0 + np.array([0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        t_go = time.time()
        trajectories.publish(_trajectory(NAMES, target, 1.0))
        gripper.publish(Float64MultiArray(data=[0.0]))
        reached = lambda: [m for m in client.received("/joint_states", t_go) if abs(m.position[0] - target[0]) < 0.02]
        assert client.wait_for(reached, 30), (
            f"joint 1 did not reach {target[0]:.3f}: last {client.received('/joint_states')[-1].position[0]:.3f}")
        last = client.received("/joint_states")[-1]
        np.testing.assert_allclose(last.position[1:7], q0[1:], atol=0.03)   # the other joints held
        assert max(last.position[7:9]) < 0.01, f"fingers did not close: {list(last.position[7:9])}"
        statuses = [status_values(m) for m in client.received("/sim/status")]
        assert any(int(s.get("events.bad_input", 0)) >= 1 for s in statuses), "rejection not counted"
        assert procs.wait("sim_node", 60) == 0, "the sim node did not finish its episode"
    finally:
        client.close()
        codes = procs.stop()
    assert codes["sim_node"] == 0
    episode = json.loads(results.read_text().splitlines()[0])
    assert episode["steps"] == 60
    assert abs(episode["actions"][-1][0] - target[0]) < 1e-3     # the executed joint target: the trajectory's
