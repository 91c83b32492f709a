"""The arm adapter as a real process over rclpy: a test client stands in for the arm's driver (joint
states, end-effector pose) and for the controller (it records what the adapter commands)."""
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from ros_testlib import REPO, RosClient

pytestmark = pytest.mark.ros

JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
NEUTRAL = [0.0, 0.196, 0.0, -2.618, 0.0, 2.94, 0.785]
SIM_BOX = {"workspace_min": [0.25, -0.35, -0.12], "workspace_max": [0.85, 0.35, 0.45]}


class Adapter:
    """arm_adapter process with config/arm_adapter.yaml plus overrides."""

    def __init__(self, env, tmp_path, **overrides):
        params = tmp_path / "arm_adapter.override.yaml"
        params.write_text(yaml.safe_dump({"arm_adapter": {"ros__parameters": {**SIM_BOX, **overrides}}}))
        cmd = [sys.executable, "-m", "ros_nodes.arm_adapter", "--ros-args", "--params-file",
               str(REPO / "config" / "arm_adapter.yaml"), "--params-file", str(params)]
        self.log = tmp_path / "arm_adapter.log"
        self.proc = subprocess.Popen(cmd, env=dict(env, PYTHONUNBUFFERED="1"), cwd=REPO, start_new_session=True,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class ArmDriver:
    """Publishes /joint_states and /ee_pose at 50 Hz (a standing arm) until paused or closed."""

    def __init__(self, client, q=NEUTRAL, pose=(0.46, 0.0, 0.1)):
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState
        from ros_nodes.common import STATE_QOS
        self.client, self.q, self.pose = client, list(q), pose
        self.joint_pub = client.node.create_publisher(JointState, "/joint_states", STATE_QOS)
        self.pose_pub = client.node.create_publisher(PoseStamped, "/ee_pose", STATE_QOS)
        self.paused = threading.Event()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        from ros_nodes import convert as C
        names = JOINTS + ["panda_finger_joint1", "panda_finger_joint2"]
        while not self.closed.is_set():
            if not self.paused.is_set():
                stamp = C.sec_to_stamp(time.time())
                self.joint_pub.publish(C.joint_state_msg(names, self.q + [0.04, 0.04], stamp))
                # robosuite's start orientation: the hand pointing down
                self.pose_pub.publish(C.pose_msg(self.pose, [1.0, 0.0, 0.0, 0.0], stamp, "panda_link0"))
            time.sleep(0.02)

    def close(self):
        self.closed.set()
        self.thread.join(2)


class Policy:
    """Publishes a chunk every 50 ms, stamped now (dx = +0.5: 2.5 cm per step, gripper closing)."""

    def __init__(self, client, action=(0.5, 0.0, 0.0, 0.0, 0.0, 0.2, 1.0)):
        from trajectory_msgs.msg import JointTrajectory
        from ros_nodes.common import CHUNK_QOS
        self.pub = client.node.create_publisher(JointTrajectory, "/policy/action_chunk", CHUNK_QOS)
        self.action = np.array(action)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        from ros_nodes import convert as C
        names = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
        while not self.closed.is_set():
            self.pub.publish(C.chunk_to_trajectory(np.tile(self.action, (8, 1)), names, 0.05,
                                                   C.sec_to_stamp(time.time()), "panda_link0"))
            time.sleep(0.05)

    def close(self):
        self.closed.set()
        self.thread.join(2)


def _stamp(m):
    return m.header.stamp.sec + m.header.stamp.nanosec * 1e-9


def _moving(m):
    return any(abs(v) > 1e-9 for v in (m.twist.linear.x, m.twist.linear.y, m.twist.linear.z,
                                       m.twist.angular.x, m.twist.angular.y, m.twist.angular.z))


def _events(client, since=0.0):
    from ros_nodes.convert import diagnostic_values
    return [diagnostic_values(m).get("event") for m in client.received("/diagnostics", since)]


def test_servo_adapter_estop_reset_and_joint_state_gap(ros_env, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import TwistStamped
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool, Trigger
    adapter = Adapter(ros_env, tmp_path, backend="servo")
    client = RosClient()
    pauses = []

    def on_pause(request, response):        # the fake Servo's pause service
        pauses.append(request.data)
        response.success = True
        return response
    client.node.create_service(SetBool, "/servo_node/pause_servo", on_pause)
    client.record(TwistStamped, "/servo_node/delta_twist_cmds")
    client.record(Float64MultiArray, "/gripper_controller/commands")
    client.record(DiagnosticArray, "/diagnostics")
    driver, policy = ArmDriver(client), Policy(client)
    twists = lambda since=0.0: client.received("/servo_node/delta_twist_cmds", since)  # noqa: E731
    try:
        assert client.wait_for(lambda: any(_moving(m) for m in twists()), 60), \
            f"no moving twist; log:\n{adapter.log.read_text()[-3000:]}"
        m = next(m for m in twists() if _moving(m))
        assert m.header.frame_id == "panda_link0"
        # dx = 0.5 asks for 0.5 m/s: limited to 0.25 m/s (the default), along +x only
        lin = np.array([m.twist.linear.x, m.twist.linear.y, m.twist.linear.z])
        assert np.linalg.norm(lin) <= 0.25 + 1e-6 and lin[0] > 0
        assert client.wait_for(lambda: any(list(g.data) == [0.0] for g in client.received("/gripper_controller/commands")), 5)
        assert "control_msgs" in adapter.log.read_text() and "topic" in adapter.log.read_text().lower()

        # e-stop: every twist stamped after the call is zero, the fake Servo is paused, chunks keep coming
        t_call = time.time()
        r = client.call(Trigger, "/safety/estop", Trigger.Request())
        t_estop = time.time()       # the answer: the stop command went out before it
        assert r.success and "latched" in r.message
        time.sleep(0.6)
        assert not any(_moving(m) for m in twists() if _stamp(m) >= t_estop)
        # the stop: one zero twist sent by the service itself (then silence: Servo is paused)
        assert any(not _moving(m) for m in twists() if t_call <= _stamp(m) <= t_estop)
        assert client.wait_for(lambda: pauses == [True], 5), pauses
        assert "estop" in _events(client)
        assert not any(_moving(m) for m in twists(time.time() - 0.2))     # still latched
        # reset releases it; the policy's next chunk moves the arm again
        t_reset = time.time()
        assert client.call(Trigger, "/safety/reset", Trigger.Request()).success
        assert client.wait_for(lambda: any(_moving(m) for m in twists(t_reset)), 10)

        # a 150 ms /joint_states gap: hold (zero twists, stale_joint_states on /diagnostics), then resume
        t_gap = time.time()
        driver.paused.set()
        time.sleep(0.15)
        driver.paused.clear()
        assert client.wait_for(lambda: "stale_joint_states" in _events(client, t_gap), 5), _events(client, t_gap)
        gap = [m for m in twists(t_gap) if t_gap + 0.12 <= _stamp(m) <= t_gap + 0.15]
        assert not any(_moving(m) for m in gap)
        t_back = time.time()
        assert client.wait_for(lambda: any(_moving(m) for m in twists(t_back)), 10)
    finally:
        policy.close()
        driver.close()
        client.close()
        code = adapter.stop()
    assert code == 0, adapter.log.read_text()[-3000:]


def test_jtc_adapter_sends_stamp_zero_real_names_and_zero_final_velocity(ros_env, tmp_path):
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory
    adapter = Adapter(ros_env, tmp_path, backend="jtc")
    client = RosClient()
    client.record(JointTrajectory, "/panda_arm_controller/joint_trajectory")
    driver, policy = ArmDriver(client), Policy(client)
    trajs = lambda since=0.0: client.received("/panda_arm_controller/joint_trajectory", since)  # noqa: E731
    try:
        assert client.wait_for(lambda: len(trajs()) >= 10, 60), adapter.log.read_text()[-3000:]
        moving = [m for m in trajs() if len(m.points) == 2]
        assert moving
        for m in trajs():
            assert m.header.stamp.sec == 0 and m.header.stamp.nanosec == 0
            assert list(m.joint_names) == JOINTS
            assert all(v == 0.0 for v in m.points[-1].velocities) and len(m.points[-1].velocities) == 7
            times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in m.points]
            assert times == sorted(times) and times[0] > 0
        assert any(any(abs(v) > 1e-6 for v in m.points[0].velocities) for m in moving)
        # the first targets are next to the measured joints (the driver's), not a jump
        assert np.max(np.abs(np.array(moving[0].points[0].positions) - NEUTRAL)) < 0.05
        assert client.call(Trigger, "/safety/estop", Trigger.Request()).success
        t_estop = time.time()
        assert client.wait_for(lambda: any(len(m.points) == 1 for m in trajs(t_estop - 1.0)), 5)
        time.sleep(0.5)
        assert trajs(t_estop + 0.1) == []                 # one stop trajectory, then silence
        stop = next(m for m in trajs(t_estop - 1.0) if len(m.points) == 1)
        np.testing.assert_allclose(stop.points[0].positions, NEUTRAL, atol=1e-6)     # where the arm is
        assert not any(stop.points[0].velocities)
    finally:
        policy.close()
        driver.close()
        client.close()
        code = adapter.stop()
    assert code == 0, adapter.log.read_text()[-3000:]
