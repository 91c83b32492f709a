"""The ROS 2 floor for bench_ros: a node that answers each complete observation with a fixed chunk.

    python -m bench.ros_echo --topics /joint_states,/ee_pose,/objects/cube/pose --chunk-shape 16,7

It subscribes the same topics (message type from the topic name) with the same QoS, executor and
process settings as the inference node, and when every topic has delivered a message with one stamp
it publishes a prebuilt JointTrajectory stamped with it. No conversion, no policy, no safety: the round
trip through it is what rclpy and the DDS transport alone cost on this machine for that tick's
messages (two hops, the Python callbacks, (de)serialization), so bench_ros can tell the inference
node's own overhead from the platform's.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topics", required=True, help="comma-separated observation topics of one tick")
    p.add_argument("--chunk-shape", default="16,7", help="T,A of the chunk it answers with")
    p.add_argument("--chunk-topic", default="/policy/action_chunk")
    args = p.parse_args(argv)

    from ros_nodes.common import main_for
    return main_for(lambda: echo_node(args))


def echo_node(args):
    """The echo node (built by ros_nodes.common.main_for, which gives it the nodes' process settings,
    executor, start-up GC freeze and shutdown handling)."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from ros_nodes import convert as C
    from ros_nodes.common import CHUNK_QOS, IMAGE_QOS, SENSOR_QOS

    topics = [t for t in args.topics.split(",") if t]
    T, A = (int(v) for v in args.chunk_shape.split(","))
    node = rclpy.create_node("bench_ros_echo")
    pub = node.create_publisher(JointTrajectory, args.chunk_topic, CHUNK_QOS)
    writer = C.TrajectoryWriter([f"a{i}" for i in range(A)], 0.05)
    chunk = np.zeros((T, A))
    seen: dict[tuple[int, int], int] = {}

    def on_msg(msg):
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == len(topics):            # the tick is complete: answer it
            del seen[key]
            pub.publish(writer(chunk, msg.header.stamp))
        if len(seen) > 100:                      # ticks that never completed
            seen.clear()

    for t in topics:     # types and QoS as the inference node subscribes them (bench_ros's topic names)
        kind = (CameraInfo if t.endswith("camera_info") else Image if t.endswith("image_raw")
                else PoseStamped if t.endswith("pose") else JointState)
        node.create_subscription(kind, t, on_msg, IMAGE_QOS if kind is Image else SENSOR_QOS)
    return node

if __name__ == "__main__":
    sys.exit(main())
