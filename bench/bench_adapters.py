"""Arm adapters: tracking through the fake arm, e-stop latency, and safety over 1000 hostile chunks.

    python -m bench.bench_adapters                              # all parts -> runs/bench/adapters.json
    python -m bench.bench_adapters --parts tracking --rows servo,jtc --out runs/bench/adapters_tracking.json

Parts:
- tracking: a scripted 10 s end-effector path (a vertical circle of radius 4 cm, 5 s per lap, eased in)
  followed by a scripted "policy" that publishes OSC_POSE delta chunks at 20 Hz (action 0 closes the gap
  from the measured pose to the path one step (+ --lead s) ahead, actions 1..7 are the path's own steps;
  stamp = the observation's). Rows: `chunk` (the sim node executes the chunks itself through robosuite's OSC: the
  reference), `servo` and `jtc` (and `pose`): the same chunks through arm_adapter -> the sim node acting
  as MoveIt Servo / joint_trajectory_controller / Cartesian impedance controller on the robosuite arm.
  Error: |measured /ee_pose - path(stamp)| over the 10 s; RMS, p95, max; and rms_to_chunk_row_mm: the
  RMS distance between a row's recorded path and the chunk row's (same path time): what the adapter
  and the fake controller add to robosuite's own OSC tracking.
- estop: e-stop to stop command: the client calls /safety/estop while the adapter executes chunks
  against a standing arm driver, and times the arrival of the stop command (servo: zero twist; jtc:
  one-point trajectory) from the call; 20 e-stops per backend, each followed by /safety/reset.
- violations: 1000 hostile chunks (NaN, Inf, 1e30, out of range, full-speed pushes into walls) through
  the adapter logic against a perfect plant (bench/adapter_plant.py), per backend: workspace, speed and
  acceleration violations of the commanded motion.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from bench import REPO, RUNS
from ros_nodes.background_node import BackgroundNode

SIM_BOX = {"workspace_min": [0.25, -0.35, -0.12], "workspace_max": [0.85, 0.35, 0.45]}
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
DT = 0.05            # the policy step (the sim's 20 Hz)
RADIUS, PERIOD, EASE, DURATION = 0.04, 5.0, 0.5, 10.0


# ------------------------------------------------------------------------------------------ processes
def _start(module: str, node: str, params: dict, env: dict, work: Path, name: str) -> subprocess.Popen:
    override = work / f"{name}.params.yaml"
    override.write_text(yaml.safe_dump({node: {"ros__parameters": params}}))
    cmd = [sys.executable, "-m", module, "--ros-args", "--params-file", str(REPO / "config" / f"{node}.yaml"),
           "--params-file", str(override)]
    log = open(work / f"{name}.log", "w")
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Client(BackgroundNode):
    """rclpy node on its own context, spun in a thread."""

    def __init__(self):
        super().__init__("bench_adapters", "bench_adapters_spin")


# ------------------------------------------------------------------------------------------ tracking
def path_offset(t: float) -> np.ndarray:
    """Offset from the start pose at path time t: a circle in the base y-z plane, eased in."""
    t = max(t, 0.0)
    phase = 2 * np.pi / PERIOD * (t - EASE * (1.0 - np.exp(-t / EASE)))
    return np.array([0.0, RADIUS * np.sin(phase), RADIUS * (1.0 - np.cos(phase))])


def track_row(row: str, env: dict, work: Path, scale: np.ndarray, lead: float = 0.0, extra: dict | None = None) -> dict:
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from trajectory_msgs.msg import JointTrajectory
    from hardware.arms.rotations import quat_to_matrix, rotation_error
    from ros_nodes import convert as C
    from ros_nodes.common import CHUNK_QOS, STATE_QOS

    sim_params = {"arm_interface": row, "env": "lift", "seed": 0, "episodes": 1, "max_steps": 600,
                  "end_on_success": False, "policy_reset_service": "", "wait_for_policy_s": 300.0}
    procs = {"sim_node": _start("ros_nodes.sim_node", "sim_node", sim_params, env, work, f"{row}_sim")}
    if row != "chunk":
        procs["arm_adapter"] = _start("ros_nodes.arm_adapter", "arm_adapter", {"backend": row, **SIM_BOX, **(extra or {})},
                                      env, work, f"{row}_adapter")
    client = Client()
    lock = threading.Lock()
    samples: list[tuple[float, np.ndarray, np.ndarray]] = []

    def on_pose(m):
        p, o = m.pose.position, m.pose.orientation
        with lock:
            samples.append((C.stamp_to_sec(m.header.stamp), np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w])))
    client.node.create_subscription(PoseStamped, "/ee_pose", on_pose, STATE_QOS)
    steps = []
    client.node.create_subscription(DiagnosticArray, "/sim/status", lambda m: steps.append(time.monotonic()), STATE_QOS)
    adapter_events: dict[str, int] = {}

    def on_diag(m):
        for st in m.status:
            if st.name == "policy_stack/arm_adapter":
                kv = {k.key: k.value for k in st.values}
                if "event" in kv:
                    adapter_events[kv["event"]] = adapter_events.get(kv["event"], 0) + 1
    client.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, STATE_QOS)
    pub = client.node.create_publisher(JointTrajectory, "/policy/action_chunk", CHUNK_QOS)
    result = {"row": row}
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not samples:
            time.sleep(0.1)
        if not samples:
            raise RuntimeError("no /ee_pose from the sim node")
        # Zero-motion chunks until the episode has run for 1 s: the sim starts it at the first command
        # (chunk, or the adapter's), and resets the arm then.
        while time.monotonic() < deadline and not (steps and time.monotonic() - steps[0] > 1.0):
            with lock:
                ts = samples[-1][0]
            pub.publish(C.chunk_to_trajectory(np.tile([0, 0, 0, 0, 0, 0, -1.0], (8, 1)), ACTION_NAMES, DT,
                                              C.sec_to_stamp(ts), "panda_link0"))
            time.sleep(DT)
        with lock:
            t0_stamp, p0, q0 = samples[-1]
        R0 = quat_to_matrix(q0)
        t0 = None
        last_stamp = -1.0
        while True:
            with lock:
                ts, p, q = samples[-1]
            if ts <= last_stamp:
                time.sleep(0.002)
                continue
            last_stamp = ts
            if t0 is None:
                t0 = ts
            if ts - t0 > DURATION:
                break
            chunk = np.zeros((8, 7))
            chunk[0, :3] = (p0 + path_offset(ts - t0 + DT + lead) - p) / scale[:3]
            chunk[0, 3:6] = rotation_error(R0, quat_to_matrix(q)) / scale[3:]
            for k in range(1, 8):
                chunk[k, :3] = (path_offset(ts - t0 + (k + 1) * DT) - path_offset(ts - t0 + k * DT)) / scale[:3]
            chunk[:, 6] = -1.0      # gripper open
            pub.publish(C.chunk_to_trajectory(np.clip(chunk, -1, 1), ACTION_NAMES, DT, C.sec_to_stamp(ts), "panda_link0"))
        with lock:
            done = [(t, p) for t, p, _ in samples if t0 <= t <= t0 + DURATION]
        result["trajectory"] = [[round(t - t0, 4)] + [round(float(v), 5) for v in p - p0] for t, p in done]
        # hold onsets and limit reports the adapter put on /diagnostics during the row (limits: <= 1/s per kind)
        result["adapter_events"] = dict(adapter_events)
        result["sim_rate_hz"] = round(len(done) / max(done[-1][0] - done[0][0], 1e-9), 2) if len(done) > 1 else None
        err = np.array([np.linalg.norm(p - (p0 + path_offset(t - t0))) for t, p in done])
        travel = float(sum(np.linalg.norm(b[1] - a[1]) for a, b in zip(done, done[1:])))
        result.update({"samples": len(done), "rms_mm": float(np.sqrt(np.mean(err ** 2)) * 1e3),
                       "p95_mm": float(np.percentile(err, 95) * 1e3), "max_mm": float(err.max() * 1e3),
                       "travel_m": round(travel, 4), "path_length_m": round(float(2 * np.pi * RADIUS * DURATION / PERIOD), 4)})
    except Exception as exc:       # a row that fails is reported, the others still run
        result["error"] = repr(exc)
    finally:
        client.close()
        result["exit_codes"] = {n: _stop(p) for n, p in procs.items()}
    return result


def rms_between(a, b) -> float:
    """RMS distance (mm) between two recorded paths (rows [path time, dx, dy, dz] from their start
    poses), b interpolated at a's path times: what an adapter adds to the OSC's own tracking."""
    a, b = np.asarray(a), np.asarray(b)
    t = a[(a[:, 0] >= b[0, 0]) & (a[:, 0] <= b[-1, 0]), 0]
    pa = np.stack([np.interp(t, a[:, 0], a[:, i]) for i in (1, 2, 3)], 1)
    pb = np.stack([np.interp(t, b[:, 0], b[:, i]) for i in (1, 2, 3)], 1)
    return float(np.sqrt(np.mean(np.sum((pa - pb) ** 2, 1))) * 1e3)


# ------------------------------------------------------------------------------------------ model
def model_row(backend: str, lead: float, joint_tau: float, scale: np.ndarray, seconds: float = DURATION) -> dict:
    """The same scripted path through the adapter logic in-process against a model arm, no ROS, no sim:
    jtc: joints follow the trajectory's setpoint with a first-order lag (time constant joint_tau), pose by
    forward kinematics; servo: the twist integrated exactly. State sampled at 20 Hz like the fake arm's
    /joint_states; chunks at 20 Hz from the sample; the adapter ticks at 50 Hz."""
    from hardware.arms.adapter import AdapterConfig, ArmAdapterCore
    from hardware.arms.backends import Pose
    from hardware.arms.kinematics import PANDA_NEUTRAL, DifferentialIK, Kinematics
    from hardware.arms.limits import ROBOSUITE_TABLE_WORKSPACE, MotionLimits
    from hardware.arms.rotations import matrix_to_quat, rotation_error, rotvec_to_matrix
    from hardware.arms.scaling import load_osc_scaling
    kin = Kinematics()
    core = ArmAdapterCore(AdapterConfig(backend=backend, limits=MotionLimits(*ROBOSUITE_TABLE_WORKSPACE)),
                          load_osc_scaling(), DifferentialIK(Kinematics()) if backend == "jtc" else None)
    tick, sub = core.tick_s, 0.002            # the model integrates in 2 ms steps
    q = PANDA_NEUTRAL.copy()
    p, R = kin.fk(q)
    pose = Pose(p, R)
    p0, R0 = p.copy(), R.copy()
    setpoint = None                            # jtc: (time sent, points)
    twist = (np.zeros(3), np.zeros(3))
    t, next_tick, next_obs = 0.0, 0.0, 0.0
    errs = []
    while t < seconds:
        if t >= next_obs - 1e-9:                  # observation + chunk, 20 Hz
            core.on_joint_state(q, t)
            core.on_ee_pose(pose.p, matrix_to_quat(pose.R), t)
            chunk = np.zeros((8, 7))
            chunk[0, :3] = (p0 + path_offset(t + DT + lead) - pose.p) / scale[:3]
            chunk[0, 3:6] = rotation_error(R0, pose.R) / scale[3:]
            for k in range(1, 8):
                chunk[k, :3] = (path_offset(t + (k + 1) * DT) - path_offset(t + k * DT)) / scale[:3]
            chunk[:, 6] = -1.0
            core.on_chunk(t, DT, np.clip(chunk, -1, 1), t)
            errs.append(float(np.linalg.norm(pose.p - (p0 + path_offset(t)))))
            next_obs += DT
        if t >= next_tick - 1e-9:                 # adapter tick, 50 Hz
            cmd = core.tick(t)
            if cmd.trajectory is not None:
                setpoint = (t, cmd.trajectory, q.copy())
            if cmd.twist is not None:
                twist = cmd.twist
            next_tick += tick
        if backend == "jtc" and setpoint is not None:
            t_sent, pts, q_start = setpoint
            tt = t - t_sent
            knots = [0.0] + [pt.time_from_start for pt in pts]
            qs = [q_start] + [np.asarray(pt.positions) for pt in pts]
            target = qs[-1] if tt >= knots[-1] else next(
                qs[i] + (qs[i + 1] - qs[i]) * (tt - knots[i]) / (knots[i + 1] - knots[i])
                for i in range(len(pts)) if knots[i] <= tt <= knots[i + 1])
            q = q + (target - q) * (1.0 - np.exp(-sub / joint_tau))
            p, R = kin.fk(q)
            pose = Pose(p, R)
        elif backend == "servo":
            pose = Pose(pose.p + twist[0] * sub, rotvec_to_matrix(twist[1] * sub) @ pose.R)
        t += sub
    e = np.array(errs)
    return {"backend": backend, "plant": (f"joints: first-order lag, tau {joint_tau} s" if backend == "jtc"
                                          else "twist integrated exactly"),
            "samples": len(e), "rms_mm": float(np.sqrt(np.mean(e ** 2)) * 1e3), "p95_mm": float(np.percentile(e, 95) * 1e3),
            "max_mm": float(e.max() * 1e3), "events": core.events.snapshot()}


# ------------------------------------------------------------------------------------------ e-stop
def estop_row(backend: str, env: dict, work: Path, n: int) -> dict:
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory
    from ros_nodes import convert as C
    from ros_nodes.common import CHUNK_QOS, STATE_QOS

    proc = _start("ros_nodes.arm_adapter", "arm_adapter", {"backend": backend, **SIM_BOX}, env, work, f"estop_{backend}")
    client = Client()
    node = client.node
    lock = threading.Lock()
    received: list[tuple[float, bool]] = []      # (arrival, is a stop command)

    if backend == "servo":
        def on_cmd(m):
            t = time.time()
            v = (m.twist.linear.x, m.twist.linear.y, m.twist.linear.z, m.twist.angular.x, m.twist.angular.y, m.twist.angular.z)
            with lock:
                received.append((t, not any(v)))
        node.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds", on_cmd, STATE_QOS)
    else:
        def on_cmd(m):
            t = time.time()
            with lock:
                received.append((t, len(m.points) == 1))
        node.create_subscription(JointTrajectory, "/panda_arm_controller/joint_trajectory", on_cmd, STATE_QOS)
    jpub = node.create_publisher(JointState, "/joint_states", STATE_QOS)
    ppub = node.create_publisher(PoseStamped, "/ee_pose", STATE_QOS)
    cpub = node.create_publisher(JointTrajectory, "/policy/action_chunk", CHUNK_QOS)
    estop = node.create_client(Trigger, "/safety/estop")
    reset = node.create_client(Trigger, "/safety/reset")
    stop_driver = threading.Event()

    def driver():
        q = [0.0, 0.196, 0.0, -2.618, 0.0, 2.94, 0.785, 0.04, 0.04]
        while not stop_driver.is_set():
            stamp = C.sec_to_stamp(time.time())
            jpub.publish(C.joint_state_msg(JOINTS + ["panda_finger_joint1", "panda_finger_joint2"], q, stamp))
            ppub.publish(C.pose_msg([0.46, 0.0, 0.1], [1.0, 0.0, 0.0, 0.0], stamp, "panda_link0"))
            cpub.publish(C.chunk_to_trajectory(np.tile([0.3, 0, 0, 0, 0, 0, -1.0], (8, 1)), ACTION_NAMES, DT, stamp,
                                               "panda_link0"))
            time.sleep(0.02)
    th = threading.Thread(target=driver, daemon=True)
    th.start()
    latencies, result = [], {"backend": backend}

    def moving_since(t):
        with lock:
            return any(a >= t and not stop for a, stop in received)

    def call(cl, timeout=10.0):
        fut = cl.call_async(Trigger.Request())
        end = time.time() + timeout
        while not fut.done() and time.time() < end:
            time.sleep(0.001)
        return fut.result() if fut.done() else None
    try:
        if not (estop.wait_for_service(timeout_sec=120) and reset.wait_for_service(timeout_sec=30)):
            raise RuntimeError("adapter services not available")
        for _ in range(n):
            t = time.time()
            while not moving_since(t) and time.time() - t < 30:
                time.sleep(0.005)
            time.sleep(0.2)
            t_call = time.time()
            fut = estop.call_async(Trigger.Request())
            while time.time() - t_call < 5:
                with lock:
                    hit = [a for a, stop in received if a >= t_call and stop]
                if hit:
                    latencies.append((hit[0] - t_call) * 1e3)
                    break
                time.sleep(0.0005)
            end = time.time() + 5
            while not fut.done() and time.time() < end:
                time.sleep(0.001)
            time.sleep(0.2)
            call(reset)
        lat = np.array(latencies)
        result.update({"estops": n, "stop_received": len(latencies), "latency_ms_p50": float(np.percentile(lat, 50)),
                       "latency_ms_p95": float(np.percentile(lat, 95)), "latency_ms_max": float(lat.max()),
                       "latency_ms": [round(x, 2) for x in latencies]})
    except Exception as exc:
        result["error"] = repr(exc)
    finally:
        stop_driver.set()
        th.join(2)
        client.close()
        result["exit_code"] = _stop(proc)
    return result


# ------------------------------------------------------------------------------------------ violations
def violations_row(backend: str, chunks: int) -> dict:
    from bench.adapter_plant import run_hostile
    from hardware.arms.adapter import AdapterConfig, ArmAdapterCore
    from hardware.arms.kinematics import DifferentialIK, Kinematics
    from hardware.arms.limits import ROBOSUITE_TABLE_WORKSPACE, MotionLimits
    from hardware.arms.scaling import load_osc_scaling
    ik = DifferentialIK(Kinematics()) if backend == "jtc" else None
    core = ArmAdapterCore(AdapterConfig(backend=backend, limits=MotionLimits(*ROBOSUITE_TABLE_WORKSPACE)),
                          load_osc_scaling(), ik)
    t = time.perf_counter()
    s = run_hostile(core, chunks=chunks, seed=0)
    s["backend"] = backend
    s["tick_ms_mean"] = (time.perf_counter() - t) / s["ticks"] * 1e3
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="violations,model,estop,tracking")
    ap.add_argument("--joint-tau", type=float, default=0.02, help="model: the joints' first-order time constant, s")
    ap.add_argument("--model-leads", default="0,0.05", help="model: the scripted follower's leads, s")
    ap.add_argument("--adapter-param", action="append", default=[], metavar="NAME=VALUE",
                    help="tracking: extra arm_adapter parameter (YAML value), e.g. joint_state_timeout_s=0.2")
    ap.add_argument("--rows", default="chunk,servo,jtc,pose", help="tracking rows")
    ap.add_argument("--estops", type=int, default=20)
    ap.add_argument("--lead", type=float, default=0.1,
                    help="tracking: the scripted follower aims this many seconds further along the path (feed-forward "
                         "for the OSC's lag)")
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument("--domain-id", type=int, default=91)
    ap.add_argument("--out", default=str(RUNS / "adapters.json"))
    ap.add_argument("--work", default="", help="keep the node logs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    extra = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.adapter_param)}
    from hardware.arms.scaling import load_osc_scaling
    scaling = load_osc_scaling()
    scale = scaling.output_max
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    os.environ.update(ROS_DOMAIN_ID=env["ROS_DOMAIN_ID"], ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    out = {"command": "python -m bench.bench_adapters " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
           "loadavg_start": os.getloadavg(), "osc_scale": scale.tolist(), "osc_source": scaling.source}
    with tempfile.TemporaryDirectory(prefix="bench_adapters_") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if "violations" in parts:
            out["violations"] = [violations_row(b, args.chunks) for b in ("servo", "jtc", "pose")]
            print(json.dumps(out["violations"], indent=1), flush=True)
        if "model" in parts:
            out["model"] = {"rows": [dict(model_row(b, lead, args.joint_tau, scale), lead_s=lead)
                                     for lead in (float(x) for x in args.model_leads.split(",")) for b in ("jtc", "servo")]}
            print(json.dumps(out["model"], indent=1), flush=True)
        if "estop" in parts:
            out["estop"] = [estop_row(b, env, work, args.estops) for b in ("servo", "jtc")]
            print(json.dumps(out["estop"], indent=1), flush=True)
        if "tracking" in parts:
            out["tracking"] = {"path": f"circle radius {RADIUS} m in base y-z, {PERIOD} s per lap, ease-in {EASE} s, "
                                       f"{DURATION} s", "lead_s": args.lead, "adapter_params": extra, "rows": []}
            rows = out["tracking"]["rows"]
            for row in args.rows.split(","):
                r = track_row(row, env, work, scale, args.lead, extra)
                print(json.dumps({k: v for k, v in r.items() if k != "trajectory"}), flush=True)
                rows.append(r)
            ref = next((r for r in rows if r["row"] == "chunk" and "trajectory" in r), None)
            for r in rows:
                if ref is not None and r is not ref and "trajectory" in r:
                    r["rms_to_chunk_row_mm"] = rms_between(r["trajectory"], ref["trajectory"])
        out["logs_tail"] = {p.name: p.read_text()[-1500:] for p in work.glob("*.log")
                            if "error" in p.read_text().lower()}
    out["loadavg_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
