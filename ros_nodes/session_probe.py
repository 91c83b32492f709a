"""The ROS 2 side of a sim-to-real session's preflight and calibrate steps (policy_stack/session/).

    python -m ros_nodes.session_probe preflight --env lift --policy diffusion_lowdim_lift --arm fake-servo \
        --real-profile real_lift --out SESSION/preflight/probe.json [--attach]
    python -m ros_nodes.session_probe calibrate --env lift --arm fake-servo --real-profile real_lift \
        --out SESSION/calibrate/probe.json

Without --attach the probe starts the graph it checks itself (ros_nodes.graph: the sim node behind the
fake arm interface wearing the real-side profile, the arm adapter, and for preflight the inference node),
in ROS domain --domain-id, and stops it at the end. With --attach (preflight on a real robot) it checks
whatever runs in the current domain: the robot's bringup, the arm adapter, the inference node.

preflight: (1) every expected topic speaks within --wait s (a missing one fails, by name); (2) its rate over
--seconds is at least 80 % of the expected one; (3) each camera the policy sees reports the intrinsics the
policy was trained with (the training sim's nominal camera, or --train-camera-info); (4) the e-stop drill:
while the arm moves, call the adapter's /safety/estop, check that every arm command is zero and the end
effector stays still, then /safety/reset and check that motion resumes.

calibrate: the same action chunks replayed on the training side (the sim graph, the sim node executing
chunks with the training controller) and on the real side (the arm adapter driving the fake servo that wears
the profile): each probe is one constant chunk along one axis, and its measured end-effector displacement is
one row. The gain fit itself is policy_stack/session/calibration.py's.

The result is one JSON file (--out, written atomically) with "ok" and, on failure, "error".
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ros_nodes.background_node import BackgroundNode

SETTLE_S = 0.5          # after a probe chunk: the arm comes to rest (the servo's 0.1 s timeout, OSC settling)
MIN_RATE_FRACTION = 0.8
ESTOP_WINDOW_S = 1.0
ESTOP_MAX_DRIFT_M = 0.005
ADVISORY_TOPICS = {"/policy/action_chunk"}


# ------------------------------------------------------------------------------ graph
def _graph(args, with_policy: bool, real: bool):
    from ros_nodes.graph import Graph, describe
    ga = {"env": args.env, "rate_hz": str(args.rate), "seed": str(args.seed), "device": "cpu",
          "episodes": "1", "max_steps": str(100000 if not with_policy else 400)}
    if with_policy:
        ga["policy"] = args.policy
    else:
        ga.update(cameras="", depth="false")
    if real:
        ga.update(sim="false", fake_arm="true", arm=args.arm.removeprefix("fake-"), real_profile=args.real_profile)
    g = describe(ga)
    nodes = []
    for n in g.nodes:
        if n.name == "inference_node" and not with_policy:
            continue        # the probe itself publishes the chunks
        if n.name == "sim_node" and not with_policy:
            # No policy to reset at episode start (the sim would wait 10 s for the service).
            n = dataclasses.replace(n, parameters={**n.parameters, "policy_reset_service": ""})
        nodes.append(n)
    return Graph(tuple(nodes), g.environment, g.lifetime_node)


class _Graph:
    """GraphProcesses around a block, logs to stderr, stopped however the block ends."""

    def __init__(self, graph, run_dir: Path):
        from ros_nodes.launcher import GraphProcesses
        self.procs = GraphProcesses(graph, run_dir, env=dict(os.environ), out=sys.stderr)

    def __enter__(self):
        self.procs.start()
        return self.procs

    def __exit__(self, *exc):
        self.procs.stop()


# ------------------------------------------------------------------------------ ROS client
class Probe(BackgroundNode):
    """One rclpy node: latest messages and arrival times per topic, chunk publishing, service calls."""

    def __init__(self, name: str = "session_probe"):
        super().__init__(name, "probe-spin")
        self.lock = threading.Lock()
        self.arrivals: dict[str, list[float]] = {}
        self.latest: dict[str, object] = {}

    def watch(self, topic: str, msg_type, qos=None) -> None:
        from ros_nodes.common import SENSOR_QOS, STATE_QOS
        if topic in self.arrivals:
            return
        self.arrivals[topic] = []

        def cb(msg, topic=topic):
            with self.lock:
                self.arrivals[topic].append(time.monotonic())
                self.latest[topic] = msg
        self.node.create_subscription(msg_type, topic, cb, qos or (SENSOR_QOS if "image" in topic or "camera_info" in topic
                                                                  else STATE_QOS))

    def clear(self) -> None:
        with self.lock:
            for k in self.arrivals:
                self.arrivals[k] = []
            self.latest.clear()

    def wait_for(self, topics: list[str], timeout: float) -> list[str]:
        """Topics still silent after `timeout` s (empty: all spoke)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                silent = [t for t in topics if not self.arrivals[t]]
            if not silent or time.monotonic() > deadline:
                return silent
            time.sleep(0.05)

    def get(self, topic: str):
        with self.lock:
            return self.latest.get(topic)

    def call_trigger(self, service: str, timeout: float = 10.0) -> tuple[bool, str, float]:
        """(success, message, seconds from the call to the answer)."""
        from std_srvs.srv import Trigger
        client = self.node.create_client(Trigger, service)
        if not client.wait_for_service(timeout_sec=timeout):
            return False, f"service {service} not available within {timeout:g} s", float("nan")
        t0 = time.monotonic()
        future = client.call_async(Trigger.Request())
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            return False, f"service {service} did not answer within {timeout:g} s", float("nan")
        r = future.result()
        return bool(r.success), r.message, time.monotonic() - t0



def _ee(probe: Probe) -> tuple[np.ndarray, np.ndarray] | None:
    from hardware.arms.rotations import quat_to_matrix
    from ros_nodes import convert as C
    msg = probe.get("/ee_pose")
    if msg is None:
        return None
    p, q = C.pose_to_arrays(msg, "/ee_pose")
    return np.asarray(p, np.float64), quat_to_matrix(np.asarray(q, np.float64))


# ------------------------------------------------------------------------------ preflight
def _expected_topics(args) -> tuple[dict, list[str]]:
    """topic -> (message type, expected Hz), and the cameras the policy sees."""
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from policy_stack.checkpoint import resolve_checkpoint
    from ros_nodes.params import load_definitions
    from ros_nodes.policy_io import cameras_and_depth, obs_spec_of

    spec = str(resolve_checkpoint(args.policy)) if args.policy else ""
    obs_spec = obs_spec_of(spec)
    cameras, _depth = cameras_and_depth(obs_spec)
    sim = {k: v.default for k, v in load_definitions("sim_node").items()}
    adapter = {k: v.default for k, v in load_definitions("arm_adapter").items()}
    rate = float(args.rate)
    topics = {sim["joint_states_topic"]: (JointState, rate), sim["ee_pose_topic"]: (PoseStamped, rate),
              "/policy/action_chunk": (JointTrajectory, rate)}
    for key in obs_spec:
        if key.endswith("_pos") and not key.startswith("robot0"):
            topics[sim["object_pose_topic"].format(name=key[:-4])] = (PoseStamped, rate)
    for cam in cameras:
        topics[sim["color_topic"].format(camera=cam)] = (Image, rate)
        topics[sim["camera_info_topic"].format(camera=cam)] = (CameraInfo, rate)
    if args.arm == "fake-servo":
        topics[adapter["servo_topic"]] = (TwistStamped, float(adapter["rate_hz"]))
    return topics, cameras


def _training_intrinsics(args, cameras: list[str]) -> dict:
    """The K the policy was trained with per camera: --train-camera-info (JSON {cam: {"K": ...}}), else the
    training sim's nominal camera at the policy's image size."""
    if args.train_camera_info:
        return {cam: np.asarray(v["K"], float).reshape(3, 3) for cam, v in json.loads(Path(args.train_camera_info).read_text()).items()}
    if not cameras:
        return {}
    from sim.envs import make_env
    env = make_env(args.env, cameras=cameras, image_size=args.image_size)
    try:
        return {cam: np.asarray(env.camera_info(cam)["K"], float).reshape(3, 3) for cam in cameras}
    finally:
        env.close()


def preflight(args, probe: Probe) -> dict:
    from ros_nodes import convert as C
    topics, cameras = _expected_topics(args)
    for topic, (msg_type, _hz) in topics.items():
        probe.watch(topic, msg_type)
    checks: list[dict] = []
    silent = probe.wait_for(list(topics), args.wait)
    detail = ", ".join(f"{t} ({topics[t][0].__name__}, expected {topics[t][1]:g} Hz)" for t in silent)
    checks.append({"check": "topics present", "ok": not silent, "silent": silent,
                   "error": f"no message within {args.wait:g} s on {detail}" if silent else None})
    if silent:
        return {"ok": False, "error": f"preflight: no message within {args.wait:g} s on {detail}", "checks": checks}
    # Rates over a fresh window.
    probe.clear()
    time.sleep(args.seconds)
    rates = {}
    with probe.lock:
        for topic, stamps in probe.arrivals.items():
            rates[topic] = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
    slow = {t: round(r, 2) for t, r in rates.items() if r < MIN_RATE_FRACTION * topics[t][1]}
    # The policy's chunk rate is latency, not a fault (a chunk is executed by time; the arm side holds when
    # chunks run out): reported, never failed. Sensors, state and the arm command must keep their rates.
    advisory = {t: r for t, r in slow.items() if t in ADVISORY_TOPICS}
    slow = {t: r for t, r in slow.items() if t not in ADVISORY_TOPICS}
    checks.append({"check": "topic rates", "ok": not slow, "window_s": args.seconds,
                   "rates_hz": {t: round(r, 2) for t, r in rates.items()},
                   "expected_hz": {t: hz for t, (_m, hz) in topics.items()}, "too_slow": slow,
                   "slow_advisory": advisory,
                   "error": ", ".join(f"{t} at {r:.1f} Hz (expected {topics[t][1]:g}, at least "
                                      f"{MIN_RATE_FRACTION * topics[t][1]:.1f})" for t, r in slow.items()) or None})
    # Camera intrinsics against the training cameras.
    train_k = _training_intrinsics(args, cameras)
    cams = {}
    for cam in cameras:
        msg = probe.get(f"/{cam}/color/camera_info")
        k = C.camera_info_to_K(msg, cam) if msg is not None else None
        ref = train_k.get(cam)
        err = None if k is None or ref is None else float(np.max(np.abs(k - ref)[[0, 1, 0, 1], [0, 1, 2, 2]]
                                                              / np.maximum(np.abs(ref[[0, 1, 0, 1], [0, 1, 2, 2]]), 1.0)))
        cams[cam] = {"K": None if k is None else k.tolist(), "train_K": None if ref is None else ref.tolist(),
                     "max_rel_error": err, "ok": err is not None and err <= args.max_intrinsics_error}
    bad = [f"{c}: K {v['K']} vs trained {v['train_K']}" for c, v in cams.items() if not v["ok"]]
    checks.append({"check": "camera intrinsics", "ok": not bad, "cameras": cams,
                   "note": "" if cameras else "the policy sees no camera: nothing to compare",
                   "error": "; ".join(bad) or None})
    checks.append(estop_drill(args, probe))
    failed = [c for c in checks if not c["ok"]]
    return {"ok": not failed, "checks": checks,
            "error": "; ".join(f"{c['check']} failed: {c.get('error')}" for c in failed) or None}


def estop_drill(args, probe: Probe) -> dict:
    """While the arm moves: /safety/estop -> every arm command zero and the arm still -> /safety/reset ->
    motion resumes on fresh chunks."""
    from ros_nodes.params import load_definitions
    adapter = {k: v.default for k, v in load_definitions("arm_adapter").items()}
    twist_topic = adapter["servo_topic"] if args.arm == "fake-servo" else None

    def twist_norm(msg) -> float:
        t = msg.twist
        return float(np.linalg.norm([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z]))

    out = {"check": "e-stop drill", "ok": False}
    if twist_topic:       # wait until the policy moves the arm (a drill on a still arm proves nothing)
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            msg = probe.get(twist_topic)
            if msg is not None and twist_norm(msg) > 1e-6:
                break
            time.sleep(0.02)
        else:
            out["error"] = f"the arm never moved within {args.wait:g} s (all twists zero)"
            return out
    ok, message, answer_s = probe.call_trigger(adapter["estop_service"])
    t_answer = time.monotonic()
    out.update(estop_service=adapter["estop_service"], estop_answer_s=round(answer_s, 4), estop_message=message)
    if not ok:
        out["error"] = f"e-stop call failed: {message}"
        return out
    # Messages sent before the answer may still be in flight: judge what arrives 50 ms after it.
    twists: list[float] = []
    positions = []
    end = t_answer + ESTOP_WINDOW_S
    seen = len(probe.arrivals.get(twist_topic, [])) if twist_topic else 0
    while time.monotonic() < end:
        time.sleep(0.02)
        if twist_topic:
            with probe.lock:
                new = probe.arrivals[twist_topic][seen:]
                seen += len(new)
            msg = probe.get(twist_topic)
            if new and msg is not None and time.monotonic() - t_answer > 0.05:
                twists.append(twist_norm(msg))
        ee = _ee(probe)
        if ee is not None and time.monotonic() - t_answer > 0.3:     # OSC settles within 0.3 s of a stop
            positions.append(ee[0])
    drift = float(np.max(np.linalg.norm(np.asarray(positions) - positions[0], axis=1))) if positions else float("nan")
    out.update(twists_after=len(twists), max_twist_after=round(max(twists), 9) if twists else 0.0,
               ee_drift_m=round(drift, 5))
    still = (not twists or max(twists) <= 1e-9) and np.isfinite(drift) and drift <= ESTOP_MAX_DRIFT_M
    ok, message, _ = probe.call_trigger(adapter["reset_service"])
    out.update(reset_ok=ok, reset_message=message)
    resumed = False
    if ok and twist_topic:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not resumed:
            msg = probe.get(twist_topic)
            resumed = msg is not None and twist_norm(msg) > 1e-6
            time.sleep(0.02)
    elif ok:
        resumed = True
    out["resumed"] = resumed
    out["ok"] = bool(still and ok and resumed)
    if not out["ok"]:
        out["error"] = ("arm not held during the e-stop" if not still else
                        "reset failed" if not ok else "no motion after the reset")
    return out


# ------------------------------------------------------------------------------ calibrate
def replay(args, probe: Probe) -> dict:
    """Replay the probe chunks on whatever graph runs now; the displacement of each."""
    from geometry_msgs.msg import PoseStamped
    from trajectory_msgs.msg import JointTrajectory

    from hardware.arms.rotations import matrix_to_rotvec
    from ros_nodes import convert as C
    from ros_nodes.common import CHUNK_QOS
    from sim.envs import default_action_space

    names = default_action_space().names
    dt = 1.0 / args.rate
    pub = probe.node.create_publisher(JointTrajectory, "/policy/action_chunk", CHUNK_QOS)
    writer = C.TrajectoryWriter(names, dt, "panda_link0")
    probe.watch("/ee_pose", PoseStamped)
    if probe.wait_for(["/ee_pose"], args.wait):
        raise RuntimeError(f"no /ee_pose within {args.wait:g} s")

    def send(action) -> None:
        chunk = np.tile(np.asarray(action, np.float64), (args.steps, 1))
        # Stamped now (a replay answers no observation): executed from its first action on both sides.
        pub.publish(writer(chunk, C.sec_to_stamp(probe.node.get_clock().now().nanoseconds * 1e-9)))

    # The first chunk starts the episode (the sim resets the scene): let it settle before measuring.
    open_gripper = np.zeros(7)
    open_gripper[6] = -1.0
    for _ in range(15):
        send(open_gripper)
        time.sleep(0.2)
    time.sleep(1.0)
    commands, displacements = [], []
    for _rep in range(args.repeats):
        for axis in range(6):
            for sign in (1.0, -1.0):
                a = open_gripper.copy()
                a[axis] = sign * (args.amplitude if axis < 3 else args.rot_amplitude)
                p0, R0 = _ee(probe)
                send(a)
                time.sleep(args.steps * dt + SETTLE_S)
                p1, R1 = _ee(probe)
                commands.append([round(float(x), 6) for x in a])
                displacements.append([round(float(x), 7) for x in (*(p1 - p0), *matrix_to_rotvec(R1 @ R0.T))])
    probe.node.destroy_publisher(pub)
    return {"commands": commands, "displacements": displacements}


def calibrate(args, probe: Probe, run_dir: Path) -> dict:
    out = {"ok": False, "amplitude": args.amplitude, "rot_amplitude": args.rot_amplitude, "steps": args.steps,
           "repeats": args.repeats, "settle_s": SETTLE_S, "rate_hz": args.rate}
    for side, real in (("sim", False), ("real", True)):
        probe.clear()
        with _Graph(_graph(args, with_policy=False, real=real), run_dir / side):
            t0 = time.monotonic()
            out[side] = replay(args, probe)
            out[side]["wall_s"] = round(time.monotonic() - t0, 1)
        print(f"[probe] {side} side: {len(out[side]['displacements'])} probes", file=sys.stderr, flush=True)
    out["ok"] = True
    return out


# ------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["preflight", "calibrate"])
    ap.add_argument("--env", default="lift")
    ap.add_argument("--policy", default="", help="preflight: the checkpoint (its cameras and objects are expected)")
    ap.add_argument("--arm", default="fake-servo", choices=["fake-servo", "fake-pose", "fake-jtc"])
    ap.add_argument("--real-profile", default="", help="sim/real_profiles.py profile the fake arm's sim wears")
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=100000)
    ap.add_argument("--image-size", type=int, default=84)
    ap.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    ap.add_argument("--attach", action="store_true", help="preflight: check the running graph, start nothing")
    ap.add_argument("--wait", type=float, default=90.0, help="seconds for every expected topic to speak")
    ap.add_argument("--seconds", type=float, default=3.0, help="preflight: topic-rate window, s")
    ap.add_argument("--max-intrinsics-error", type=float, default=0.02, help="preflight: relative, per K entry")
    ap.add_argument("--train-camera-info", default="", help="preflight: JSON {camera: {K: [9]}} the policy trained with")
    ap.add_argument("--amplitude", type=float, default=0.2)
    ap.add_argument("--rot-amplitude", type=float, default=0.08)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.domain_id is not None:
        os.environ["ROS_DOMAIN_ID"] = str(args.domain_id)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    out = Path(args.out).resolve()
    run_dir = out.parent / "graph"
    from policy_stack.persist import write_json_atomic

    t0 = time.monotonic()
    probe = Probe()
    try:
        if args.mode == "preflight":
            if args.attach:
                result = preflight(args, probe)
            else:
                with _Graph(_graph(args, with_policy=True, real=True), run_dir):
                    result = preflight(args, probe)
        else:
            result = calibrate(args, probe, run_dir)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        result = {"ok": False, "error": f"{args.mode}: {exc}"}
    finally:
        probe.close()
    result["wall_s"] = round(time.monotonic() - t0, 1)
    write_json_atomic(out, result)
    print(json.dumps({"ok": result["ok"], "error": result.get("error")}), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
