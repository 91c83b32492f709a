"""Observation -> action round trip over ROS 2 against the same policy in-process (JSON output).

    python -m bench.bench_ros                                   # all scenarios, 100 ticks each
    python -m bench.bench_ros --scenario lowdim --ticks 300     # shipped checkpoint only
    python -m bench.bench_ros --rgbd-policy CKPT --device cuda  # a trained RGB-D checkpoint
    python -m bench.bench_ros --soak 300 --scenario rgbd84      # soak: memory growth + missed ticks
    python -m bench.bench_ros --threads 1 ...                   # shared/loaded box: same threads both sides

The inference node runs as its own process (ros_nodes.launcher, as `policy-stack up` starts it) with a
real checkpoint folder as its `policy` parameter; this process plays the robot: it publishes one
observation per tick at --rate (joint states, ee pose, object poses, and for RGB-D policies RGB + depth
+ camera info per camera, all with one stamp) and times each chunk whose header.stamp is that
observation's stamp: round trip = chunk received - observation stamp. The messages of a tick are built
once and only restamped per tick (the observation never changes; a camera driver publishes from its
own buffers); publish() itself is inside the round trip (`robot_publish_ms`: stamp -> last publish()
returned). In the same run the SAME checkpoint is loaded here and timed in-process (policy.act on the
same observation), back to back (`in_process_ms`) and once per period as the node calls it
(`in_process_paced_ms`); the report gives the overhead = ROS p50/p99 minus in-process p50/p99 against
both (`overhead_ros_minus_inprocess[_paced]`, ms and ratio), and per tick the round trip minus the
node's own act() time for that chunk (`ros_minus_node_act_ms`; paired through the status's
chunk_stamp): what transport, conversion and scheduling add, free of act()'s run-to-run variance.
Then the same ticks go to bench/ros_echo.py instead of the node (`ros_floor_echo_ms`): a node that
answers with a fixed chunk, i.e. the rclpy + Fast DDS floor on this machine for these messages.
This process uses the sim graph's environment (LOCALHOST; with images the shared-memory profile of
ros_nodes/transport.py) and the nodes' process settings (switch interval, tune_malloc).

Scenarios (the policy decides which topics flow; the scenario decides the camera resolution):
  lowdim     --policy (default "": the shipped low-dim Diffusion checkpoint, sampler rti)
  rgbd84x2   --rgbd-policy, 84x84 RGB + depth from agentview + robot0_eye_in_hand (alias rgbd84)
  rgbd640x2  the same checkpoint fed 640x480 frames (alias rgbd640): its obs_spec image sizes are
             rewritten in a copy of the folder; the network resizes images to its own image_shape.
Without --rgbd-policy a tiny RANDOM-weight RGB-D Diffusion checkpoint
is built into the run folder (build_tiny_rgbd_checkpoint; the JSON says so). Its latency is that of a
small network, not of a trained vision policy: pass --rgbd-policy (e.g. the shipped
policy_stack/checkpoints/diffusion_rgbd_lift) for a trained network's numbers.

Soak (--soak SECONDS): per window (--soak-window, default 60 s) round trip, answered fraction and both
processes' RSS; at the end RSS start/end/growth of the node and of this (robot-side) process, missed
ticks (observations never answered) and late ticks (this publisher started a tick > 1 period late).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from policy_stack.persist import write_text_atomic

SCENARIOS = {
    "lowdim": {"h": 0, "w": 0},
    "rgbd84x2": {"h": 84, "w": 84},
    "rgbd640x2": {"h": 480, "w": 640},
}
ALIASES = {"rgbd84": "rgbd84x2", "rgbd640": "rgbd640x2"}


# ---------------------------------------------------------------------------------------- RGB-D checkpoint
TINY_RGBD_NOTE = ("tiny RANDOM-weight RGB-D Diffusion checkpoint built by bench.bench_ros.build_tiny_rgbd_checkpoint "
                  "(no --rgbd-policy given): transport + network cost of an RGB-D policy, not its skill")
BASE_FRAME = "panda_link0"   # the poses' frame_id: the inference node's base_frame (docs/ros2.md)
RGBD_CAMERAS = ("agentview", "robot0_eye_in_hand")


def build_tiny_rgbd_checkpoint(folder, image_hw=(84, 84), seed: int = 0) -> Path:
    """Save an untrained, small RGB-D DiffusionPolicy (2 cameras, RGB + depth, low-dim robot state, RTI
    sampler) as a checkpoint folder. image_hw is the size of the camera images it is fed (its obs_spec);
    the network resizes them to 84x84 as any checkpoint does. Normalization stats are synthetic but in
    Lift's ranges (end effector near (-0.1, 0, 1.0) m, gripper +-0.02 m, actions in [-1, 1]).
    Used by test/ros/test_rgbd_checkpoint.py and by the RGB-D scenarios of this benchmark."""
    import torch
    from policy_stack.checkpoint import save_checkpoint
    from policy_stack.normalize import stats_from_arrays
    from policy_stack.policies import make_policy
    from policy_stack.spaces import ActionSpace, FeatureSpec

    rng = np.random.default_rng(seed)
    n = 512
    quat = rng.normal([1.0, 0.0, 0.0, 0.0], 0.05, (n, 4))
    arrays = {"robot0_eef_pos": rng.normal([0.46, 0.0, 0.088], [0.06, 0.06, 0.08], (n, 3)),   # base frame
              "robot0_eef_quat": quat / np.linalg.norm(quat, axis=1, keepdims=True),
              "robot0_gripper_qpos": rng.normal([0.02, 0.02], 0.012, (n, 2)),             # franka fingers
              "action": np.clip(rng.normal(0.0, 0.4, (n, 7)), -1, 1)}
    arrays["action"][:, 6] = rng.choice([-1.0, 1.0], n)
    lowdim = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    config = {"cameras": list(RGBD_CAMERAS), "use_depth": True, "lowdim_keys": lowdim, "derived_features": [],
              "image_shape": [84, 84], "crop_shape": [76, 76], "down_dims": [16, 32], "step_embed_dim": 16,
              "vision_channels": [8, 8, 16], "num_keypoints": 8, "camera_feature_dim": 16,
              "sampler": "rti", "rti_steps": 3, "rti_initial_steps": 5, "device": "cpu", "seed": seed}
    h, w = image_hw
    obs_spec = {k: FeatureSpec([arrays[k].shape[1]], "float32", "lowdim") for k in lowdim}
    for cam in RGBD_CAMERAS:
        obs_spec[f"{cam}_rgb"] = FeatureSpec([h, w, 3], "uint8", "rgb")
        obs_spec[f"{cam}_depth"] = FeatureSpec([h, w], "float32", "depth")
    space = ActionSpace(names=["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"], low=[-1.0] * 7,
                        high=[1.0] * 7, kind="eef_delta", discrete=[6])
    torch.manual_seed(seed)
    policy = make_policy("diffusion", config, stats_from_arrays(arrays), space, obs_spec)
    return save_checkpoint(policy, folder, meta={"note": TINY_RGBD_NOTE, "trained": False})


def respec_checkpoint(src, dst, image_hw) -> Path:
    """Copy of checkpoint `src` whose obs_spec lists its camera images at image_hw (H, W)."""
    src, dst = Path(src), Path(dst)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    cfg = json.loads((dst / "config.json").read_text())
    for key, feat in cfg["obs_spec"].items():
        if feat.get("kind") == "rgb" or key.endswith("_rgb"):
            feat["shape"] = [image_hw[0], image_hw[1], 3]
        elif feat.get("kind") == "depth" or key.endswith("_depth"):
            feat["shape"] = [image_hw[0], image_hw[1]]
    (dst / "config.json").write_text(json.dumps(cfg, indent=1))
    return dst


def image_hw_of(spec: dict):
    for key, f in spec.items():
        if key.endswith("_rgb") or getattr(f, "kind", "") == "rgb":
            return tuple(f.shape[:2])
    return None


# ---------------------------------------------------------------------------------------- in-process
def synthetic_obs(spec: dict, rng) -> dict:
    """Plausible values for every key (Lift-like state; random images so no compression tricks help)."""
    # robot base frame (docs/ros2.md): Lift's cube on the table, the hand above it, fingers open
    base = {"robot0_eef_pos": [0.46, 0.0, 0.088], "robot0_eef_quat": [1.0, 0.0, 0.0, 0.0],
            "robot0_gripper_qpos": [0.02, 0.02], "cube_pos": [0.56, 0.0, -0.082], "cube_quat": [0, 0, 0, 1]}
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


def in_process(policy, obs, ticks: int, rate_hz: float = 0.0) -> dict:
    """act() latency in this process: back to back (rate_hz 0), or once per 1/rate_hz s as the node
    calls it (the CPU idles between calls, so caches and frequency are as the node finds them)."""
    policy.reset()
    for _ in range(3):
        policy.act(obs)
    ts = []
    next_t = time.perf_counter()
    for _ in range(ticks):
        if rate_hz:
            next_t += 1.0 / rate_hz
            time.sleep(max(0.0, next_t - time.perf_counter()))
        t = time.perf_counter()
        policy.act(obs)
        ts.append((time.perf_counter() - t) * 1e3)
    return _pct(ts)


def overhead(ros: dict, inproc: dict) -> dict:
    """ROS round trip minus in-process act(), ms and as a ratio, at p50 and p99."""
    out = {}
    for q in ("p50", "p99"):
        if ros.get(q) is None or inproc.get(q) is None:
            continue
        out[f"{q}_ms"] = round(ros[q] - inproc[q], 3)
        out[f"{q}_ratio"] = round(ros[q] / inproc[q], 3) if inproc[q] > 0 else None
    return out


# ---------------------------------------------------------------------------------------- robot side
class RobotSide:
    """Publishes observations and times the chunks that answer them."""

    def __init__(self, spec: dict, obs: dict):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from trajectory_msgs.msg import JointTrajectory

        from ros_nodes import convert as C
        from ros_nodes import policy_io
        from ros_nodes.common import CHUNK_QOS, SENSOR_QOS, STATE_QOS, make_executor, spin_in_background
        plan = policy_io.plan_inputs(spec)
        self.C, self.rclpy, self.spec, self.obs = C, rclpy, spec, obs
        self.cameras = plan.cameras
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        n = self.node = rclpy.create_node("bench_robot", context=self.context)
        self.pubs = {"joint": n.create_publisher(JointState, "/joint_states", STATE_QOS),
                     "ee": n.create_publisher(PoseStamped, "/ee_pose", STATE_QOS)}
        self.objects = sorted(plan.objects)
        for o in self.objects:
            self.pubs[o] = n.create_publisher(PoseStamped, f"/objects/{o}/pose", STATE_QOS)
        for cam in self.cameras:
            self.pubs[cam] = (n.create_publisher(Image, f"/{cam}/color/image_raw", SENSOR_QOS),
                              n.create_publisher(Image, f"/{cam}/aligned_depth_to_color/image_raw", SENSOR_QOS),
                              n.create_publisher(CameraInfo, f"/{cam}/color/camera_info", SENSOR_QOS))
        self.received: dict[float, float] = {}
        self.pub_end: dict[float, float] = {}         # stamp -> when its last message was published
        self.node_act: dict[float, float] = {}        # stamp -> the node's act() ms for its chunk
        self.status: dict = {}
        self.lock = threading.Lock()
        self._msgs = self._build_messages()
        n.create_subscription(JointTrajectory, "/policy/action_chunk", self._on_chunk, CHUNK_QOS)
        n.create_subscription(DiagnosticArray, "/policy/status", self._on_status, STATE_QOS)
        self.executor = make_executor(context=self.context)
        self.executor.add_node(n)
        self._thread = spin_in_background(self.executor, self.context, "bench_ros_spin")


    def _on_chunk(self, msg):
        t = time.time()
        if msg.points:
            with self.lock:
                self.received[round(self.C.stamp_to_sec(msg.header.stamp), 6)] = t

    def _on_status(self, msg):
        self.status = self.C.diagnostic_values(msg)
        stamp = self.status.get("chunk_stamp")
        if stamp:          # the node's own act() time for the chunk answering this observation
            with self.lock:
                self.node_act.setdefault(round(float(stamp), 6), float(self.status["latency_ms"]))

    def _build_messages(self) -> list:
        """Every message of one tick, built once: the observation is the same every tick, so only the
        stamps change (as a driver publishing from its own buffers). Conversion costs are measured
        separately (convert's rgb_to_image / depth_to_image); publish() itself stays in the round trip."""
        C, o = self.C, self.obs
        stamp = C.sec_to_stamp(0.0)
        names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
        q = np.concatenate([o.get("robot0_joint_pos", np.zeros(7)), o.get("robot0_gripper_qpos", np.zeros(2))])
        msgs = [(self.pubs["joint"], C.joint_state_msg(names, q, stamp)),
                (self.pubs["ee"], C.pose_msg(o.get("robot0_eef_pos", np.zeros(3)),
                                             o.get("robot0_eef_quat", np.array([0, 0, 0, 1.0])), stamp, BASE_FRAME))]
        for obj in self.objects:
            msgs.append((self.pubs[obj], C.pose_msg(o.get(f"{obj}_pos", np.zeros(3)),
                                                    o.get(f"{obj}_quat", np.array([0, 0, 0, 1.0])), stamp, BASE_FRAME)))
        for cam in self.cameras:
            rgb_pub, depth_pub, info_pub = self.pubs[cam]
            h, w = o[f"{cam}_rgb"].shape[:2]
            msgs.append((info_pub, C.camera_info_msg({"K": [[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], "width": w,
                                                      "height": h}, stamp, cam)))
            if f"{cam}_depth" in o:
                msgs.append((depth_pub, C.depth_to_image(o[f"{cam}_depth"], stamp, cam)))
            msgs.append((rgb_pub, C.rgb_to_image(o[f"{cam}_rgb"], stamp, cam)))   # last: the node's anchor
        return msgs

    def topics(self) -> list[str]:
        """The topics of one tick, in publish order."""
        return list(dict.fromkeys(pub.topic_name for pub, _ in self._msgs))

    def round_trips_ms(self, stamps) -> list[float]:
        """Observation stamp -> its chunk received, ms, for the given stamps that were answered."""
        with self.lock:
            return [(self.received[s] - s) * 1e3 for s in stamps if s in self.received]

    def publish(self) -> float:
        """Stamp every message of one tick with now and publish it; returns the stamp (s)."""
        t = time.time()
        stamp = self.C.sec_to_stamp(t)
        for pub, msg in self._msgs:
            msg.header.stamp = stamp
            pub.publish(msg)
        self.pub_end[round(t, 6)] = time.time()
        return round(t, 6)

    def close(self):
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2)


def _cpu_times() -> list[int] | None:
    """Aggregate CPU jiffies from /proc/stat (Linux): user nice system idle iowait irq softirq steal."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def _cpu_share(t0, t1) -> dict | None:
    """Busy and steal shares of all CPUs between two _cpu_times() readings. Steal is time the
    hypervisor ran something else on our virtual CPUs: on a VM it is the latency tail no process here
    can remove."""
    if not t0 or not t1:
        return None
    d = [b - a for a, b in zip(t0, t1)]
    total = max(1, sum(d))
    return {"busy": round(1 - (d[3] + d[4]) / total, 3), "steal": round(d[7] / total, 4)}


def _rss_mb(pid) -> float | None:
    try:
        import psutil
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except Exception:
        return None


def run_scenario(name: str, policy_spec: str, policy_inproc, args, run_dir: Path) -> dict:
    from ros_nodes.graph import describe
    from ros_nodes.launcher import GraphProcesses
    spec = dict(policy_inproc.obs_spec)
    obs = synthetic_obs(spec, np.random.default_rng(0))
    result = {"scenario": name, "policy": policy_spec or "(shipped default)", "image_hw": image_hw_of(spec),
              "in_process_ms": in_process(policy_inproc, obs, min(args.ticks, 200)),
              "in_process_paced_ms": in_process(policy_inproc, obs, min(args.ticks, 200), args.rate)}

    graph = describe({"sim": "true", "cameras": "", "depth": "false", "device": args.device, "rate_hz": str(args.rate),
                      "policy": policy_spec})
    procs = GraphProcesses(graph, run_dir / name, env=dict(os.environ),
                           out=sys.stderr if args.verbose else open(os.devnull, "w"))
    procs.start(only={"inference_node"})      # this process plays the robot instead of the sim node
    node_pid, own_pid = procs.procs["inference_node"].pid, os.getpid()
    robot = RobotSide(spec, obs)
    try:
        period = 1.0 / args.rate
        deadline = time.time() + 120          # start-up: imports, checkpoint, discovery
        while not robot.received and time.time() < deadline:
            if procs.poll()["inference_node"] is not None:
                raise RuntimeError(f"{name}: inference node exited ({list(procs.tails['inference_node'])[-5:]})")
            robot.publish()
            time.sleep(period)
        if not robot.received:
            raise RuntimeError(f"{name}: no chunk within 120 s (node log: {list(procs.tails.get('inference_node', []))[-5:]})")
        time.sleep(0.3)                         # the start-up answers land before timing starts
        duration = args.soak if args.soak else args.ticks * period
        window_s = args.soak_window
        rss_now = lambda: {"node": _rss_mb(node_pid), "robot_side": _rss_mb(own_pid)}
        rss0 = rss_now()
        t0 = time.time()
        sent, late, windows = _publish_ticks(robot, period, duration, window_s, rss_now if args.soak else None)
        lat = robot.round_trips_ms(sent)
        with robot.lock:
            # Per tick: round trip minus the node's own act() for that chunk (paired by stamp).
            paired = [(robot.received[s] - s) * 1e3 - robot.node_act[s] for s in sent
                      if s in robot.received and s in robot.node_act]
        ros = _pct(lat)
        result.update(ros_roundtrip_ms=ros,
                      ros_minus_node_act_ms=_pct(paired),
                      robot_publish_ms=_pct([(robot.pub_end[s] - s) * 1e3 for s in sent if s in robot.pub_end]),
                      sent=len(sent), answered=len(lat),
                      answered_fraction=round(len(lat) / max(1, len(sent)), 4),
                      missed_ticks=len(sent) - len(lat), late_ticks=late,
                      overhead_ros_minus_inprocess=overhead(ros, result["in_process_ms"]),
                      overhead_ros_minus_inprocess_paced=overhead(ros, result["in_process_paced_ms"]),
                      node_status={k: v for k, v in robot.status.items()
                                   if k in ("latency_p50_ms", "latency_p99_ms", "holds", "chunks", "sampler", "steps")
                                   or k.startswith("events.")})
        if args.soak:
            rss1 = rss_now()
            result.update(windows=_windows(robot, sent, t0, windows, window_s), rss_start_mb=rss0, rss_end_mb=rss1,
                          rss_growth_mb={k: round(rss1[k] - rss0[k], 1) if rss0[k] is not None and rss1[k] is not None
                                         else None for k in rss0})
        if not args.soak:
            procs.stop()     # the echo node must be the only one answering (stop() is idempotent)
            result["ros_floor_echo_ms"] = _echo_floor(robot, policy_inproc, obs, period, args.ticks, args.verbose)
    finally:
        robot.close()
        codes = procs.stop()
    result["node_exit_code"] = codes.get("inference_node")
    return result


def _publish_ticks(robot, period: float, duration: float, window_s: float = 0.0, rss_mark=None):
    """Publish one observation per period for `duration` s -> (stamps sent, late ticks, RSS marks per
    window when rss_mark is given)."""
    sent, windows, late = [], [], 0
    t0 = next_t = time.time()
    while time.time() - t0 < duration:
        if time.time() - next_t > period:
            late += 1                       # this tick starts more than one period late
        sent.append(robot.publish())
        next_t += period
        time.sleep(max(0.0, next_t - time.time()))
        if rss_mark and time.time() - t0 >= window_s * (len(windows) + 1):
            windows.append(rss_mark())
    time.sleep(0.5)                         # let the last answers land
    return sent, late, windows


def _echo_floor(robot, policy, obs, period: float, ticks: int, verbose: bool = False) -> dict:
    """The same ticks answered by bench.ros_echo (no conversion, no policy, a fixed chunk) instead of
    the inference node: the round trip rclpy + DDS cost alone on this machine for these messages."""
    import signal
    import subprocess
    chunk = np.asarray(policy.act(obs))
    cmd = [sys.executable, "-m", "bench.ros_echo", "--topics", ",".join(robot.topics()),
           "--chunk-shape", f"{chunk.shape[0]},{chunk.shape[1]}"]
    echo = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=None if verbose else subprocess.DEVNULL)
    try:
        deadline, first = time.time() + 60, None
        while first is None and time.time() < deadline and echo.poll() is None:
            s = robot.publish()
            time.sleep(period)
            with robot.lock:
                first = robot.received.get(s)
        if first is None:
            return {"error": "bench.ros_echo did not answer within 60 s"}
        time.sleep(0.3)
        sent, _, _ = _publish_ticks(robot, period, ticks * period)
        lat = robot.round_trips_ms(sent)
        return {**_pct(lat), "answered_fraction": round(len(lat) / max(1, len(sent)), 4)}
    finally:
        echo.send_signal(signal.SIGINT)
        try:
            echo.wait(timeout=5)
        except subprocess.TimeoutExpired:
            echo.kill()


def _windows(robot, sent, t0, rss_marks, window_s) -> list[dict]:
    """Soak: round trip, answered fraction and both processes' memory per window."""
    out = []
    for i, rss in enumerate(rss_marks):
        part = [s for s in sent if t0 + window_s * i <= s < t0 + window_s * (i + 1)]
        lat = robot.round_trips_ms(part)
        out.append({"window": i + 1, "end_s": round(window_s * (i + 1), 1), "roundtrip_ms": _pct(lat),
                    "sent": len(part), "missed": len(part) - len(lat),
                    "answered_fraction": round(len(lat) / max(1, len(part)), 4), "rss_mb": rss})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", default="", help="low-dim checkpoint folder (default: the shipped one)")
    p.add_argument("--rgbd-policy", default="",
                   help="RGB-D checkpoint folder for the rgbd scenarios (default: build a tiny random one)")
    p.add_argument("--device", default="auto")
    p.add_argument("--scenario", action="append", choices=list(SCENARIOS) + list(ALIASES),
                   help="repeatable; default: all")
    p.add_argument("--ticks", type=int, default=100, help="observations per scenario (default 100)")
    p.add_argument("--rate", type=float, default=20.0, help="observation rate, Hz")
    p.add_argument("--soak", type=float, default=0.0, help="soak: run each scenario this many seconds")
    p.add_argument("--soak-window", type=float, default=60.0, help="soak: window length, s (default 60)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads for BOTH the node and the in-process timing (default: torch's "
                        "default here; on a shared/loaded box use 1, oversubscribed threads stall for seconds)")
    p.add_argument("--domain-id", type=int, default=None)
    p.add_argument("--out", default="", help="also write the JSON here")
    p.add_argument("--verbose", action="store_true", help="stream the node's log to stderr")
    args = p.parse_args(argv)
    os.environ["ROS_DOMAIN_ID"] = str(args.domain_id if args.domain_id is not None else random.randint(1, 99))
    scenarios = list(dict.fromkeys(ALIASES.get(s, s) for s in (args.scenario or SCENARIOS)))
    # This process is the robot side of a sim graph: it takes the environment `up` gives the graph's
    # processes (LOCALHOST discovery; with cameras, the large shared-memory profile, which the image
    # PUBLISHER must load). One transport for the whole run: Fast DDS keeps the first participant's
    # transport settings for the process, so it cannot change between scenarios.
    from ros_nodes.graph import describe
    images = any(SCENARIOS[s]["h"] for s in scenarios)
    os.environ.update(describe({"sim": "true", "cameras": ",".join(RGBD_CAMERAS) if images else "",
                                "depth": "true"}).environment)
    # Same process settings as the nodes' main (ros_nodes.common.main_for), for the robot side and for
    # the in-process timing alike: GIL hand-over interval and the allocator tuning for large frames.
    from ros_nodes.transport import node_process_settings
    malloc_tuned = node_process_settings()
    import torch
    # The node and the in-process timing must run with the same thread count or the comparison is void.
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = str(threads)    # read by torch in the node process at import
    from ros_nodes import policy_io
    run_dir = Path(tempfile.mkdtemp(prefix="bench_ros_"))
    cpu0 = _cpu_times()
    rgbd_note = None
    results = []
    try:
        for s in scenarios:
            sc = SCENARIOS[s]
            if not sc["h"]:
                spec = args.policy
            elif args.rgbd_policy:
                rgbd_note = "given (--rgbd-policy)"
                spec = args.rgbd_policy
                if not spec.startswith(policy_io.PYFILE_PREFIX):
                    have = image_hw_of(policy_io.obs_spec_of(spec))
                    if have != (sc["h"], sc["w"]):
                        spec = str(respec_checkpoint(spec, run_dir / f"rgbd_{sc['h']}x{sc['w']}", (sc["h"], sc["w"])))
            else:
                rgbd_note = TINY_RGBD_NOTE
                spec = str(build_tiny_rgbd_checkpoint(run_dir / f"tiny_rgbd_{sc['h']}x{sc['w']}", (sc["h"], sc["w"])))
            policy = policy_io.load(spec, device=args.device)
            try:
                results.append(run_scenario(s, spec, policy, args, run_dir))
            except RuntimeError as exc:
                results.append({"scenario": s, "policy": spec or "(shipped default)", "error": str(exc)})
    finally:
        if not args.verbose:
            shutil.rmtree(run_dir, ignore_errors=True)
    report = {"bench": "ros_roundtrip", "lowdim_policy": args.policy or "(shipped default)",
              "rgbd_policy": args.rgbd_policy or ("tiny random (built per run)" if rgbd_note else None),
              "rgbd_policy_note": rgbd_note, "device": args.device,
              "rate_hz": args.rate, "ticks": args.ticks, "soak_s": args.soak, "torch_threads": threads,
              "transport": ("shm profile " + Path(os.environ["FASTDDS_DEFAULT_PROFILES_FILE"]).name
                            if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
                            else os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "default (UDPv4+SHM)")),
              "discovery_range": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE"),
              "malloc_tuned": malloc_tuned,
              "executor": os.environ.get("POLICY_STACK_EXECUTOR", "events"),
              "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "cpu_during_run": _cpu_share(cpu0, _cpu_times()),
                       "load_avg_1m": round(os.getloadavg()[0], 2)},
              "results": results}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        write_text_atomic(Path(args.out), text)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
