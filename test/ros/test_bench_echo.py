"""bench/ros_echo.py, the ROS floor of bench_ros, as a real separate process over real ROS 2."""
import signal
import subprocess
import sys
import time

import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory

from ros_testlib import RosClient
from ros_nodes import convert as C
from ros_nodes.common import CHUNK_QOS, STATE_QOS

pytestmark = pytest.mark.timeout(120)


def test_echo_answers_only_complete_ticks_with_their_stamp(ros_env):
    echo = subprocess.Popen([sys.executable, "-m", "bench.ros_echo", "--topics", "/joint_states,/ee_pose",
                             "--chunk-shape", "16,7"], env=ros_env)
    client = RosClient()
    try:
        client.record(JointTrajectory, "/policy/action_chunk", CHUNK_QOS)
        joint = client.node.create_publisher(JointState, "/joint_states", STATE_QOS)
        pose = client.node.create_publisher(PoseStamped, "/ee_pose", STATE_QOS)

        def tick(complete=True):
            stamp = C.sec_to_stamp(time.time())
            joint.publish(JointState(header=Header(stamp=stamp)))
            if complete:
                pose.publish(PoseStamped(header=Header(stamp=stamp)))
            return (stamp.sec, stamp.nanosec)

        def answered() -> list:
            return [(m.header.stamp.sec, m.header.stamp.nanosec) for m in client.received("/policy/action_chunk")]

        assert client.wait_for(answered, 60, poll=0.1, tick=tick), "echo node never answered"
        settled = tick()                     # every warm-up answer is in once this one's is
        assert client.wait_for(lambda: settled in answered(), 10)
        half = tick(complete=False)          # one topic missing: no answer
        full = tick()
        sentinel = tick()
        # One writer's chunks arrive in order: once the sentinel's answer is in, any answer to `half`
        # or `full` is in too (an event to wait on, not a sleep).
        assert client.wait_for(lambda: sentinel in answered(), 10), "no answer to the last complete tick"
        assert [s for s in answered() if s in (half, full)] == [full], (answered()[-5:], half, full)
        msg = next(m for m in client.received("/policy/action_chunk")
                   if (m.header.stamp.sec, m.header.stamp.nanosec) == full)
        assert len(msg.points) == 16 and len(msg.points[0].positions) == 7
    finally:
        client.close()
        echo.send_signal(signal.SIGINT)
        assert echo.wait(timeout=10) == 0
