"""Observation -> action round trip over ROS 2 against the same policy in-process (JSON output).

    python -m bench.bench_ros                       # shipped checkpoint, 3 scenarios, 100 ticks each
    python -m bench.bench_ros --policy CKPT --ticks 300 --device cuda
    python -m bench.bench_ros --soak 600 --scenario lowdim     # soak: 10 minutes, per-minute windows

The inference node runs as its own process (ros_nodes.launcher, as `policy-stack up` starts it); this
process plays the robot: it publishes one observation per tick at --rate (joint states, ee pose, object
pose, and per scenario RGB-D images with camera info, all with one stamp) and times each chunk whose
header.stamp is that observation's stamp: round trip = chunk received - observation stamp. In the same
run the same policy is timed in-process (policy.act on the same observation) for comparison.

Scenarios: lowdim; rgbd84x2 (agentview + robot0_eye_in_hand, 84x84 RGB + depth); rgbd640x2 (the same
at 640x480). For image scenarios the policy is wrapped so its obs_spec also lists the images: the node
subscribes, converts, checks and time-aligns them exactly as for a vision policy, and the wrapper drops
them before calling the policy (a low-dim checkpoint's network cost stays the same across scenarios,
so the difference is the transport). The wrapper reaches the node through ros_nodes.policy_io's
pyfile: hook (enabled for the child process only).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SCENARIOS = {
    "lowdim": {"cameras": [], "h": 0, "w": 0},
    "rgbd84x2": {"cameras": ["agentview", "robot0_eye_in_hand"], "h": 84, "w": 84},
    "rgbd640x2": {"cameras": ["agentview", "robot0_eye_in_hand"], "h": 480, "w": 640},
}
_ENV_POLICY, _ENV_SCENARIO, _ENV_DEVICE = "BENCH_ROS_POLICY", "BENCH_ROS_SCENARIO", "BENCH_ROS_DEVICE"


# ---------------------------------------------------------------------------------------- policy
class WithCameras:
    """The wrapped policy plus image keys in obs_spec (dropped again before act); see module doc."""

    def __init__(self, inner, cameras, h, w):
        from policy_stack.spaces import FeatureSpec
        self.inner, self.action_space = inner, inner.action_space
        self.obs_spec = dict(inner.obs_spec)
        for cam in cameras:
            self.obs_spec.setdefault(f"{cam}_rgb", FeatureSpec([h, w, 3], "uint8", "rgb"))
            self.obs_spec.setdefault(f"{cam}_depth", FeatureSpec([h, w], "float32", "depth"))

    def reset(self):
        self.inner.reset()

    def act(self, obs):
        return self.inner.act({k: obs[k] for k in self.inner.obs_spec})

    @property
    def info(self):
        return self.inner.info


def make_policy():
    """pyfile: factory used by the inference node child (configured through environment variables)."""
    from ros_nodes import policy_io
    sc = SCENARIOS[os.environ[_ENV_SCENARIO]]
    inner = policy_io.load(os.environ.get(_ENV_POLICY, ""), device=os.environ.get(_ENV_DEVICE, "auto"))
    return WithCameras(inner, sc["cameras"], sc["h"], sc["w"]) if sc["cameras"] else inner


def synthetic_obs(spec: dict, rng) -> dict:
    """Plausible values for every key (Lift-like state; random images so no compression tricks help)."""
    base = {"robot0_eef_pos": [-0.1, 0.0, 1.0], "robot0_eef_quat": [1.0, 0.0, 0.0, 0.0],
            "robot0_gripper_qpos": [0.02, -0.02], "cube_pos": [0.0, 0.0, 0.83], "cube_quat": [0, 0, 0, 1]}
    obs = {}
    for k, f in spec.items():
        if k in base:
            obs[k] = np.asarray(base[k], np.float32)
        elif f.dtype == "uint8":
            obs[k] = rng.integers(0, 255, f.shape, dtype=np.uint8)
        elif k.endswith("_depth"):
            obs[k] = rng.uniform(0.3, 2.0, f.shape).astype(f.dtype)
        elif k.endswith("_quat"):
            obs[k] = np.array([0, 0, 0, 1], np.float32)
        else:
            obs[k] = np.zeros(f.shape, np.dtype(f.dtype))
    return obs


def _pct(x) -> dict:
    x = np.asarray(x, float)
    if not x.size:
        return {"n": 0}
    return {"n": int(x.size), "p50": round(float(np.percentile(x, 50)), 3), "p99": round(float(np.percentile(x, 99)), 3),
            "mean": round(float(x.mean()), 3), "max": round(float(x.max()), 3)}


def in_process(policy, obs, ticks: int) -> dict:
    policy.reset()
    for _ in range(3):
        policy.act(obs)
    ts = []
    for _ in range(ticks):
        t = time.perf_counter()
        policy.act(obs)
        ts.append((time.perf_counter() - t) * 1e3)
    return _pct(ts)


# ---------------------------------------------------------------------------------------- robot side
class RobotSide:
    """Publishes observations and times the chunks that answer them."""

    def __init__(self, spec: dict, cameras, obs: dict):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from trajectory_msgs.msg import JointTrajectory

        from ros_nodes import convert as C
        from ros_nodes.common import CHUNK_QOS, SENSOR_QOS, STATE_QOS, make_executor
        self.C, self.rclpy, self.spec, self.cameras, self.obs = C, rclpy, spec, cameras, obs
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        n = self.node = rclpy.create_node("bench_robot", context=self.context)
        self.pubs = {"joint": n.create_publisher(JointState, "/joint_states", STATE_QOS),
                     "ee": n.create_publisher(PoseStamped, "/ee_pose", STATE_QOS)}
        self.objects = sorted({k.rsplit("_", 1)[0] for k in spec if k.endswith("_pos") and not k.startswith("robot0")})
        for o in self.objects:
            self.pubs[o] = n.create_publisher(PoseStamped, f"/objects/{o}/pose", STATE_QOS)
        for cam in cameras:
            self.pubs[cam] = (n.create_publisher(Image, f"/{cam}/color/image_raw", SENSOR_QOS),
                              n.create_publisher(Image, f"/{cam}/aligned_depth_to_color/image_raw", SENSOR_QOS),
                              n.create_publisher(CameraInfo, f"/{cam}/color/camera_info", SENSOR_QOS))
        self.received: dict[float, float] = {}
        self.status: dict = {}
        self.lock = threading.Lock()
        n.create_subscription(JointTrajectory, "/policy/action_chunk", self._on_chunk, CHUNK_QOS)
        n.create_subscription(DiagnosticArray, "/policy/status", self._on_status, STATE_QOS)
        self.executor = make_executor(context=self.context)
        self.executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if not self.context.ok():
                    return
                raise

    def _on_chunk(self, msg):
        t = time.time()
        if msg.points:
            with self.lock:
                self.received[round(self.C.stamp_to_sec(msg.header.stamp), 6)] = t

    def _on_status(self, msg):
        self.status = self.C.diagnostic_values(msg)

    def publish(self) -> float:
        C, o = self.C, self.obs
        t = time.time()
        stamp = C.sec_to_stamp(t)
        names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
        q = np.concatenate([o.get("robot0_joint_pos", np.zeros(7)), o.get("robot0_gripper_qpos", np.zeros(2))])
        self.pubs["joint"].publish(C.joint_state_msg(names, q, stamp))
        self.pubs["ee"].publish(C.pose_msg(o.get("robot0_eef_pos", np.zeros(3)),
                                           o.get("robot0_eef_quat", np.array([0, 0, 0, 1.0])), stamp, "base"))
        for obj in self.objects:
            self.pubs[obj].publish(C.pose_msg(o[f"{obj}_pos"], o.get(f"{obj}_quat", np.array([0, 0, 0, 1.0])),
                                              stamp, "base"))
        for cam in self.cameras:
            rgb_pub, depth_pub, info_pub = self.pubs[cam]
            h, w = o[f"{cam}_rgb"].shape[:2]
            info_pub.publish(C.camera_info_msg({"K": [[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], "width": w, "height": h},
                                               stamp, cam))
            depth_pub.publish(C.depth_to_image(o[f"{cam}_depth"], stamp, cam))
            rgb_pub.publish(C.rgb_to_image(o[f"{cam}_rgb"], stamp, cam))
        return round(t, 6)

    def close(self):
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2)


def run_scenario(name: str, args, policy_inproc, run_dir: Path) -> dict:
    from ros_nodes.graph import describe
    from ros_nodes.launcher import GraphProcesses
    sc = SCENARIOS[name]
    spec = policy_inproc.obs_spec if not sc["cameras"] else WithCameras(policy_inproc, sc["cameras"], sc["h"], sc["w"]).obs_spec
    obs = synthetic_obs(spec, np.random.default_rng(0))
    result = {"scenario": name, "in_process_ms": in_process(policy_inproc, obs, min(args.ticks, 200))}

    env = dict(os.environ, POLICY_STACK_ALLOW_PYFILE_POLICY="1", **{_ENV_SCENARIO: name, _ENV_POLICY: args.policy,
                                                                   _ENV_DEVICE: args.device})
    graph = describe({"sim": "true", "cameras": "", "depth": "false", "device": args.device, "rate_hz": str(args.rate),
                      "policy": f"pyfile:{Path(__file__).resolve()}:make_policy"})
    procs = GraphProcesses(graph, run_dir / name, env=env, out=sys.stderr if args.verbose else open(os.devnull, "w"))
    procs.start(only={"inference_node"})      # this process plays the robot instead of the sim node
    robot = RobotSide(spec, sc["cameras"], obs)
    try:
        period = 1.0 / args.rate
        deadline = time.time() + 120          # start-up: imports, checkpoint, discovery
        while not robot.received and time.time() < deadline:
            robot.publish()
            time.sleep(period)
        if not robot.received:
            raise RuntimeError(f"{name}: no chunk within 120 s (node log: {list(procs.tails.get('inference_node', []))[-5:]})")
        duration = args.soak if args.soak else args.ticks * period
        sent, windows, t0 = [], [], time.time()
        rss0 = _rss(procs, "inference_node")
        next_t = time.time()
        while time.time() - t0 < duration:
            sent.append(robot.publish())
            next_t += period
            time.sleep(max(0.0, next_t - time.time()))
            if args.soak and time.time() - t0 >= 60 * (len(windows) + 1):
                windows.append(_rss(procs, "inference_node"))     # node memory at each minute mark
        time.sleep(0.5)                         # let the last answers land
        with robot.lock:
            lat = [(robot.received[s] - s) * 1e3 for s in sent if s in robot.received]
        result.update(ros_roundtrip_ms=_pct(lat), sent=len(sent), answered=len(lat),
                      answered_fraction=round(len(lat) / max(1, len(sent)), 4),
                      node_status={k: v for k, v in robot.status.items()
                                   if k in ("latency_p50_ms", "latency_p99_ms", "holds", "chunks") or k.startswith("events.")})
        if lat:
            result["ros_overhead_p50_ms"] = round(result["ros_roundtrip_ms"]["p50"] - result["in_process_ms"]["p50"], 3)
        if args.soak:
            result.update(windows=_windows(robot, sent, t0, windows), rss_start_mb=rss0,
                          rss_end_mb=_rss(procs, "inference_node"))
    finally:
        robot.close()
        procs.stop()
    return result


def _windows(robot, sent, t0, rss_marks) -> list[dict]:
    """Soak: round trip and answered fraction per minute, with the node's memory at the minute mark."""
    out = []
    for i, rss in enumerate(rss_marks):
        part = [s for s in sent if t0 + 60 * i <= s < t0 + 60 * (i + 1)]
        with robot.lock:
            lat = [(robot.received[s] - s) * 1e3 for s in part if s in robot.received]
        out.append({"minute": i + 1, "roundtrip_ms": _pct(lat),
                    "answered_fraction": round(len(lat) / max(1, len(part)), 4), "node_rss_mb": rss})
    return out


def _rss(procs, name):
    try:
        import psutil
        return round(psutil.Process(procs.procs[name].pid).memory_info().rss / 2**20, 1)
    except Exception:
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", default="", help="checkpoint folder (default: shipped) or pyfile: hook")
    p.add_argument("--device", default="auto")
    p.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="repeatable; default: all")
    p.add_argument("--ticks", type=int, default=100, help="observations per scenario (default 100)")
    p.add_argument("--rate", type=float, default=20.0, help="observation rate, Hz")
    p.add_argument("--soak", type=float, default=0.0, help="soak: run each scenario this many seconds")
    p.add_argument("--domain-id", type=int, default=None)
    p.add_argument("--out", default="", help="also write the JSON here")
    p.add_argument("--verbose", action="store_true", help="stream the node's log to stderr")
    args = p.parse_args(argv)
    os.environ["ROS_DOMAIN_ID"] = str(args.domain_id if args.domain_id is not None else random.randint(1, 99))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"   # as the (sim) graph's nodes
    os.environ["POLICY_STACK_ALLOW_PYFILE_POLICY"] = "1"
    scenarios = args.scenario or list(SCENARIOS)
    # One transport for the whole run: Fast DDS keeps the first participant's transport settings for
    # the process, so it cannot change between scenarios. Images need LARGE_DATA (notes/ros2.md).
    if any(SCENARIOS[s]["cameras"] for s in scenarios):
        os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    from ros_nodes import policy_io
    policy = policy_io.load(args.policy, device=args.device)
    run_dir = Path(tempfile.mkdtemp(prefix="bench_ros_"))
    results = [run_scenario(s, args, policy, run_dir) for s in scenarios]
    report = {"bench": "ros_roundtrip", "policy": args.policy or "(shipped default)", "device": args.device,
              "rate_hz": args.rate, "ticks": args.ticks,
              "transport": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "default (UDPv4+SHM)"), "soak_s": args.soak, "executor": os.environ.get(
                  "POLICY_STACK_EXECUTOR", "events"), "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                  "load_avg_1m": round(os.getloadavg()[0], 2)}, "results": results}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
