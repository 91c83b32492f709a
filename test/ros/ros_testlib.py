"""Helpers for the ROS 2 tests: an in-process rclpy client on its own context, and node processes.

The nodes under test always run as separate processes (ros_nodes.launcher, exactly as `policy-stack
up` starts them), in the isolated domain of conftest's `ros_env` fixture.
"""
from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ros_nodes.background_node import BackgroundNode

REPO = Path(__file__).resolve().parents[2]
# The stand-in policy is loaded through the pyfile: hook, which needs an explicit opt-in (policy_io).
os.environ["POLICY_STACK_ALLOW_PYFILE_POLICY"] = "1"
STANDIN = REPO / "test" / "ros" / "standin_policy.py"


def standin(factory: str = "make_lowdim") -> str:
    """Policy parameter value of the test stand-in (see standin_policy.py and ros_nodes/policy_io.py)."""
    return f"pyfile:{STANDIN}:{factory}"


def image_transport_env() -> dict:
    """The transport variables a sim graph carrying camera images gives its processes (graph.describe):
    a test client that publishes or receives images must use them too (ros_nodes/transport.py)."""
    from ros_nodes.graph import describe
    env = describe({"sim": "true", "cameras": "agentview", "depth": "true"}).environment
    return {k: v for k, v in env.items() if k.startswith("FASTDDS_")}


def node_env(ros_env: dict, large_data: bool = False) -> dict:
    env = dict(ros_env, POLICY_STACK_ALLOW_PYFILE_POLICY="1", MUJOCO_GL=ros_env.get("MUJOCO_GL", "egl"))
    if large_data:
        env.update(image_transport_env())
    return env


def start_graph(graph_args: dict, env: dict, run_dir, only=None, overrides: dict | None = None):
    """Start (some of) the graph's nodes as processes; overrides = {node: {param: value}}."""
    from ros_nodes.graph import describe
    from ros_nodes.launcher import GraphProcesses
    g = describe(graph_args)
    if overrides:
        g = replace(g, nodes=tuple(replace(n, parameters={**n.parameters, **overrides.get(n.name, {})})
                                   for n in g.nodes))
    return GraphProcesses(g, run_dir, env=env, out=sys.stderr).start(only=only)


@contextlib.contextmanager
def inference_node_under_test(ros_env: dict, run_dir, monkeypatch, factory: str = "make_rgbd",
                              overrides: dict | None = None):
    """The inference node (stand-in policy `factory`) as a process, a test client recording its chunks
    and status, and an ObservationPublisher: yields (procs, client, pub); the node must exit cleanly."""
    from diagnostic_msgs.msg import DiagnosticArray
    from trajectory_msgs.msg import JointTrajectory
    images = factory == "make_rgbd"
    if images:   # the client publishes images: the same transport as the nodes
        for k, v in image_transport_env().items():
            monkeypatch.setenv(k, v)
    graph_args = {"policy": standin(factory), "cameras": "agentview" if images else "", "depth": str(images).lower()}
    procs = start_graph(graph_args, node_env(ros_env, large_data=images), run_dir, only={"inference_node"},
                        overrides={"inference_node": overrides or {}})
    client = RosClient()
    client.record(JointTrajectory, "/policy/action_chunk")
    client.record(DiagnosticArray, "/policy/status")
    try:
        yield procs, client, ObservationPublisher(client)
    finally:
        client.close()
        codes = procs.stop()
        assert codes["inference_node"] == 0, f"inference node did not exit cleanly: {codes}"


class RosClient(BackgroundNode):
    """rclpy node on a private context, spun in a background thread; records every message it gets."""

    def __init__(self, name: str = "test_client"):
        super().__init__(name, "testlib_spin")
        self.msgs: dict[str, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=5000))
        self.lock = threading.Lock()


    def now(self) -> float:
        return time.time()

    def record(self, msg_type, topic: str, qos=None):
        from ros_nodes.common import STATE_QOS

        def cb(m, topic=topic):
            with self.lock:
                self.msgs[topic].append((time.time(), m))
        self.node.create_subscription(msg_type, topic, cb, qos or STATE_QOS)

    def received(self, topic: str, since: float = 0.0) -> list:
        with self.lock:
            return [m for t, m in self.msgs[topic] if t >= since]

    def wait_for(self, predicate, timeout: float, poll: float = 0.02, tick=None):
        """Call tick() (e.g. publish observations) until predicate() is truthy; returns its value."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if tick is not None:
                tick()
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        return predicate()

    def call(self, srv_type, name: str, request, timeout: float = 15.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available after {timeout} s"
        future = client.call_async(request)
        deadline = time.time() + timeout
        while not future.done() and time.time() < deadline:
            time.sleep(0.01)
        assert future.done(), f"service {name} did not answer in {timeout} s"
        return future.result()



def status_values(msg) -> dict:
    from ros_nodes.convert import diagnostic_values
    return diagnostic_values(msg)


class ObservationPublisher:
    """Publishes the stand-in rgbd policy's observation topics, optionally with one part broken."""

    def __init__(self, client: RosClient, size: int = 84):
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from ros_nodes.common import SENSOR_QOS, STATE_QOS
        n = client.node
        self.size = size
        self.joint = n.create_publisher(JointState, "/joint_states", STATE_QOS)
        self.ee = n.create_publisher(PoseStamped, "/ee_pose", STATE_QOS)
        self.cube = n.create_publisher(PoseStamped, "/objects/cube/pose", STATE_QOS)
        self.rgb = n.create_publisher(Image, "/agentview/color/image_raw", SENSOR_QOS)
        self.depth = n.create_publisher(Image, "/agentview/aligned_depth_to_color/image_raw", SENSOR_QOS)
        self.info = n.create_publisher(CameraInfo, "/agentview/color/camera_info", SENSOR_QOS)
        self.last_stamp = None

    def publish_exact(self) -> int:
        """Publish one observation now; returns its stamp as integer nanoseconds (exact pairing)."""
        from ros_nodes.convert import stamp_to_ns
        self.publish()
        return stamp_to_ns(self.last_msg_stamp)

    def publish(self, fault: str = "", age_s: float = 0.0, stamp=None, frame: str = "panda_link0"):
        """stamp: a builtin_interfaces/Time to use verbatim (default: now - age_s). frame: the poses' frame_id
        (docs/ros2.md: the robot base frame, the inference node's base_frame parameter)."""
        from ros_nodes import convert as C
        if stamp is None:
            stamp = C.sec_to_stamp(time.time() - age_s)
        t = C.stamp_to_sec(stamp)
        s = self.size
        q = [1.0, 0.0, 0.0, 0.0]
        names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
        pos = np.zeros(9)
        pos[7:] = [0.02, 0.02]          # franka_ros2: both fingers positive, metres
        if fault == "nan_joint":
            pos[7] = np.nan
        self.joint.publish(C.joint_state_msg(names, pos, stamp))
        self.ee.publish(C.pose_msg([0.56, 0.0, 0.09], q, stamp, frame))      # base frame (panda_link0)
        self.cube.publish(C.pose_msg([0.61, 0.0, -0.09], q, stamp, frame))
        self.info.publish(C.camera_info_msg({"K": [[50, 0, 41.5], [0, 50, 41.5], [0, 0, 1]], "width": s, "height": s},
                                            stamp, "cam"))
        self.depth.publish(C.depth_to_image(np.ones((s, s), np.float32), stamp, "cam"))
        rgb = np.zeros((s, s, 3), np.uint8)
        if fault == "wrong_size":
            rgb = np.zeros((s - 20, s - 20, 3), np.uint8)
        elif fault == "huge":
            rgb = np.zeros((1024, 1024, 3), np.uint8)
        img = C.rgb_to_image(rgb, stamp, "cam")
        if fault == "wrong_encoding":
            img.encoding = "bgr8"
        self.rgb.publish(img)
        self.last_stamp, self.last_msg_stamp = t, stamp
        return t


def leftover_processes(run_dir) -> list:
    """Node processes still alive whose command line names run_dir (their --params-file lies there)."""
    import psutil
    return [p for p in psutil.process_iter(["cmdline"]) if any(str(run_dir) in a for a in (p.info["cmdline"] or []))]


def process_alive(procs, name: str) -> bool:
    return procs.poll()[name] is None


def shm_cleanup_hint():
    """After SIGKILL Fast DDS leaves /dev/shm files (harmless, docs/background.md)."""
    return [p for p in os.listdir("/dev/shm") if p.startswith("fastdds")] if os.path.isdir("/dev/shm") else []
