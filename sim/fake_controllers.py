"""Fake real-robot controllers on the robosuite arm: the logic, without ROS.

The sim node's `arm_interface` modes (servo, jtc, pose) expose the simulated Panda through the topic
interfaces real controllers speak, so the real-robot path (arm adapter -> controller) can be scored on
task success here. Each class below validates a command the way its real counterpart does (a rejected
command raises `CommandRejected` with the reason; the node logs it and keeps the previous state) and
turns the accepted commands into what the robosuite arm executes at one control step:

- `FakeServo` (MoveIt Servo, twist commands): the twist is integrated over the step and divided by
  OSC_POSE's scale, i.e. `delta = twist * dt / scale`; no command for `timeout_s` (0.1 s) -> halt.
- `FakeJointTrajectoryController` (ros2_control joint_trajectory_controller): validated trajectories,
  sampled in time -> absolute joint targets for robosuite's JOINT_POSITION controller.
- `FakeCartesianImpedance` (Franka equilibrium pose): a pose target -> the OSC_POSE delta that reaches it;
  a jump between consecutive targets beyond the limits is a "discontinuity reflex" (latched hold).
- `FakeGripper` (forward_command_controller): finger position in metres <-> robosuite's gripper value.

The OSC_POSE scales (+1 = 0.05 m / 0.5 rad per step with robosuite 1.5's Panda default) are READ from
robosuite's controller config by `osc_config()`, not written here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GRIPPER_OPEN_M = 0.04       # Panda finger travel per finger (franka_ros2): 0 = closed, 0.04 = open


class CommandRejected(ValueError):
    """A command the real controller would refuse; the message says why (it is logged)."""


# ------------------------------------------------------------------------------------------ OSC config
@dataclass(frozen=True)
class OscConfig:
    """What the sim's OSC_POSE arm controller does with a normalized delta of +1, read from robosuite."""
    scale: np.ndarray          # (6,): metres (xyz) and radians (rpy) per unit of input
    kp: float                  # the controller's stiffness (the jtc fake's joint controller matches it)
    damping_ratio: float

    @property
    def linear(self) -> np.ndarray:
        return self.scale[:3]

    @property
    def angular(self) -> np.ndarray:
        return self.scale[3:]


def osc_config(robot: str = "Panda") -> OscConfig:
    """The arm part of robosuite's default composite controller for `robot` (the one sim/envs.py's
    make_env gets): scale = (output_max - output_min) / (input_max - input_min), as its OSC computes it."""
    from robosuite.controllers import load_composite_controller_config
    arm = arm_part_config(load_composite_controller_config(robot=robot))
    if arm["type"] != "OSC_POSE" or arm.get("input_type", "delta") != "delta":
        raise ValueError(f"expected an OSC_POSE delta arm controller, robosuite has {arm['type']}")
    out_max, out_min = (np.broadcast_to(np.asarray(arm[k], float), (6,)) for k in ("output_max", "output_min"))
    in_max, in_min = (np.broadcast_to(np.asarray(arm[k], float), (6,)) for k in ("input_max", "input_min"))
    return OscConfig(scale=(out_max - out_min) / (in_max - in_min), kp=float(arm["kp"]),
                     damping_ratio=float(arm["damping_ratio"]))


def arm_part_config(composite: dict) -> dict:
    """The single arm part ("right") of a BASIC composite controller config."""
    arms = composite["body_parts"].get("arms", composite["body_parts"])
    return arms["right"]


def joint_position_composite(robot: str = "Panda") -> dict:
    """robosuite's default composite config with the arm part replaced by JOINT_POSITION, absolute input.

    Why this controller for the jtc fake: a real joint_trajectory_controller makes the joints track a
    setpoint; JOINT_POSITION with absolute input is robosuite's joint-space tracker (computed torque
    through the mass matrix, plus gravity compensation). Its stiffness and damping are set to the OSC's
    (kp 150, critically damped in the default config), so a step goal settles at the same rate in joint
    space as the policy's training controller settles in task space.
    """
    import copy

    from robosuite.controllers import load_composite_controller_config
    composite = copy.deepcopy(load_composite_controller_config(robot=robot))
    arms = composite["body_parts"].get("arms", composite["body_parts"])
    osc = arms["right"]
    arms["right"] = {"type": "JOINT_POSITION", "input_type": "absolute", "input_max": 1, "input_min": -1,
                     "output_max": 0.05, "output_min": -0.05, "kp": osc["kp"], "damping_ratio": osc["damping_ratio"],
                     "impedance_mode": "fixed", "kp_limits": [0, 300], "damping_ratio_limits": [0, 10],
                     "qpos_limits": None, "interpolation": None, "ramp_ratio": 0.2, "gripper": osc["gripper"]}
    return composite


def _finite(name: str, values, n: int | None = None) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if n is not None and a.shape != (n,):
        raise CommandRejected(f"{name}: expected {n} values, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise CommandRejected(f"{name}: NaN or Inf in {a.tolist()}")
    return a


def rotation_delta(current_quat_xyzw, target_quat_xyzw) -> np.ndarray:
    """Axis-angle r with R(r) @ R_current = R_target (base frame): what OSC_POSE's delta rotation means."""
    from scipy.spatial.transform import Rotation
    r = Rotation.from_quat(target_quat_xyzw) * Rotation.from_quat(current_quat_xyzw).inv()
    return r.as_rotvec()


# ------------------------------------------------------------------------------------------ gripper
class FakeGripper:
    """ros2_control forward_command_controller on the fingers: data = [finger position, m] (0 closed,
    0.04 open). The policy's gripper value g (robosuite: +1 closes) maps LINEARLY both ways:
    pos = 0.04 * (1 - g) / 2 (the adapter), g = 1 - 2 * pos / 0.04 (here), so nothing is lost."""

    def __init__(self):
        self.value = -1.0        # robosuite gripper command; the hand starts open

    @staticmethod
    def position_to_value(pos: float) -> float:
        return 1.0 - 2.0 * pos / GRIPPER_OPEN_M

    @staticmethod
    def value_to_position(g: float) -> float:
        return GRIPPER_OPEN_M * (1.0 - g) / 2.0

    def command(self, data) -> float:
        a = _finite("gripper command", data)
        if a.size not in (1, 2):
            raise CommandRejected(f"gripper command: expected 1 value (or one per finger), got {a.size}")
        if a.size == 2 and a[0] != a[1]:
            raise CommandRejected(f"gripper command: the two fingers must get the same target, got {a.tolist()}")
        pos = float(a[0])
        if not 0.0 <= pos <= GRIPPER_OPEN_M:
            raise CommandRejected(f"gripper command {pos:g} m outside [0, {GRIPPER_OPEN_M:g}]")
        self.value = self.position_to_value(pos)
        return self.value

    def reset(self) -> None:
        self.value = -1.0


# ------------------------------------------------------------------------------------------ MoveIt Servo
class FakeServo:
    """MoveIt Servo in twist mode: TwistStamped in `frame_id`, m/s and rad/s, expected continuously.

    Each control step executes the newest twist for dt (delta = twist * dt / scale, clipped to OSC's
    input range). No command for longer than timeout_s -> halt (zero motion), as Servo's
    incoming_command_timeout does. Paused (pause_servo true) -> zero motion; resuming drops the last
    command, so a stale twist from before the pause never snaps back in (moveit2#1885)."""

    def __init__(self, frame_id: str, scale, dt: float, timeout_s: float = 0.1):
        self.frame_id, self.dt, self.timeout_s = frame_id, float(dt), float(timeout_s)
        self.scale = np.asarray(scale, float).reshape(6)
        self.paused = False
        self._twist: np.ndarray | None = None
        self._received = -math.inf

    def command(self, frame_id: str, linear, angular, now: float) -> None:
        if frame_id != self.frame_id:
            raise CommandRejected(f"twist in frame {frame_id!r}; this servo takes {self.frame_id!r}")
        twist = np.concatenate([_finite("linear", linear, 3), _finite("angular", angular, 3)])
        if self.paused:
            raise CommandRejected("servo is paused; command ignored")
        self._twist, self._received = twist, float(now)

    def set_paused(self, paused: bool) -> str:
        self.paused = bool(paused)
        self._twist = None
        return "paused" if self.paused else "resumed"

    def state(self, now: float) -> str:
        if self.paused:
            return "paused"
        if self._twist is None:
            return "no command"
        if now - self._received > self.timeout_s:
            return "halted (command timeout)"
        return "moving"

    def arm_delta(self, now: float) -> np.ndarray:
        """The normalized OSC_POSE delta (6,) to execute for the step starting now."""
        if self.state(now) != "moving":
            return np.zeros(6)
        return np.clip(self._twist * self.dt / self.scale, -1.0, 1.0)

    def reset(self) -> None:
        self._twist, self._received = None, -math.inf


# ------------------------------------------------------------------------------------------ JTC
@dataclass(frozen=True)
class _Trajectory:
    start: float                   # s, when time_from_start = 0
    times: np.ndarray              # (k,) absolute knot times; knot 0 = the state at start
    positions: np.ndarray          # (k, n)
    velocities: np.ndarray | None  # (k, n) when the message gave velocities (cubic), else linear

    def sample(self, t: float) -> np.ndarray:
        if t >= self.times[-1]:
            return self.positions[-1].copy()
        if t <= self.times[0]:
            return self.positions[0].copy()
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        t0, t1 = self.times[i], self.times[i + 1]
        h, s = t1 - t0, (t - t0) / (t1 - t0)
        p0, p1 = self.positions[i], self.positions[i + 1]
        if self.velocities is None:
            return p0 + s * (p1 - p0)
        v0, v1 = self.velocities[i] * h, self.velocities[i + 1] * h     # cubic Hermite, as JTC's spline
        h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
        return h00 * p0 + h10 * v0 + h01 * p1 + h11 * v1


class FakeJointTrajectoryController:
    """ros2_control joint_trajectory_controller, topic interface (`~/joint_trajectory`).

    Rejects (logged by the node, old trajectory kept): unknown, missing or repeated joint names, no
    points, a point with the wrong number of values or NaN/Inf, time_from_start not strictly increasing,
    a non-zero velocity at the last point (allow_nonzero_velocity_at_trajectory_end is false by default),
    a trajectory that ends before now. header.stamp 0 = start now; a future stamp starts then (the old
    trajectory runs until that moment). A new trajectory replaces the rest of the old one. Positions
    only -> linear interpolation; with velocities -> cubic, as the real controller's spline does. The
    trajectory starts from the current setpoint (or the measured position when idle)."""

    def __init__(self, joint_names):
        self.joint_names = list(joint_names)
        self._active: _Trajectory | None = None
        self._pending: _Trajectory | None = None   # a future-stamped trajectory waiting for its start
        self._hold: np.ndarray | None = None

    def command(self, names, stamp: float, points, now: float, measured) -> None:
        """points: [(time_from_start s, positions, velocities or [])]. stamp: header stamp in s (0 = now)."""
        n = len(self.joint_names)
        names = list(names)
        unknown = sorted(set(names) - set(self.joint_names))
        missing = [j for j in self.joint_names if j not in names]
        if unknown or missing or len(set(names)) != len(names):
            raise CommandRejected(f"joint names {names}: unknown {unknown}, missing {missing}"
                                  + (", repeated" if len(set(names)) != len(names) else ""))
        if not points:
            raise CommandRejected("trajectory without points")
        order = [names.index(j) for j in self.joint_names]
        times, pos, vel = [], [], []
        for k, (tfs, p, v) in enumerate(points):
            if not math.isfinite(tfs) or tfs < 0:
                raise CommandRejected(f"point {k}: time_from_start {tfs!r} not a finite time >= 0")
            if times and tfs <= times[-1]:
                raise CommandRejected(f"point {k}: time_from_start {tfs:g} s not after the previous {times[-1]:g} s")
            p = _finite(f"point {k} positions", p, n)[order]
            v = [] if v is None or len(v) == 0 else _finite(f"point {k} velocities", v, n)[order]
            times.append(float(tfs))
            pos.append(p)
            vel.append(v)
        if len(vel[-1]) and np.any(vel[-1] != 0.0):
            raise CommandRejected(f"non-zero velocity {np.round(vel[-1], 4).tolist()} at the trajectory end "
                                  "(allow_nonzero_velocity_at_trajectory_end is false)")
        has_vel = [len(v) > 0 for v in vel]
        if any(has_vel) and not all(has_vel):
            raise CommandRejected("velocities given for some points only")
        start = float(now) if stamp == 0.0 else float(stamp)
        if start + times[-1] < now:
            raise CommandRejected(f"trajectory ended {now - start - times[-1]:.3f} s ago")
        self._promote(now)
        state = self.setpoint(start, measured)
        knots = np.array([start] + [start + t for t in times])
        positions = np.vstack([state] + pos)
        if times[0] == 0.0:        # the first point IS the start state: it replaces the measured one
            knots, positions = knots[1:], positions[1:]
            velocities = np.vstack(vel) if all(has_vel) else None
        else:
            velocities = np.vstack([np.zeros(n)] + vel) if all(has_vel) else None
        traj = _Trajectory(start, knots, positions, velocities)
        if start > now:
            self._pending = traj
        else:
            self._active, self._pending = traj, None

    def _promote(self, now: float) -> None:
        if self._pending is not None and self._pending.start <= now:
            self._active, self._pending = self._pending, None

    def setpoint(self, t: float, measured) -> np.ndarray:
        """Joint setpoint at time t: the trajectory's, else hold where the arm was when it went idle."""
        self._promote(t)
        if self._active is not None:
            return self._active.sample(t)
        if self._hold is None:
            self._hold = np.asarray(measured, float).copy()
        return self._hold.copy()

    def stop(self, measured) -> None:
        """Drop every trajectory and hold the measured position (episode reset)."""
        self._active = self._pending = None
        self._hold = np.asarray(measured, float).copy()

    @property
    def executing(self) -> bool:
        return self._active is not None or self._pending is not None


# ------------------------------------------------------------------------------------------ impedance
class FakeCartesianImpedance:
    """Franka Cartesian impedance controller's equilibrium pose (PoseStamped in frame_id).

    Consecutive targets may differ by at most max_jump_m / max_jump_rad (the first one from the measured
    pose): a bigger jump is a "discontinuity reflex": the target is refused and the arm holds the
    measured pose, latched until a target within the limits of the measured pose arrives (the error
    recovery a real Franka needs). Each step drives the arm toward the target through OSC_POSE:
    delta = (target - current) / scale, clipped."""

    def __init__(self, frame_id: str, scale, max_jump_m: float = 0.01, max_jump_rad: float = 0.05):
        self.frame_id = frame_id
        self.scale = np.asarray(scale, float).reshape(6)
        self.max_jump_m, self.max_jump_rad = float(max_jump_m), float(max_jump_rad)
        self.reflex = False
        self._target: tuple[np.ndarray, np.ndarray] | None = None

    def command(self, frame_id: str, position, quat_xyzw, measured_pos, measured_quat) -> None:
        if frame_id != self.frame_id:
            raise CommandRejected(f"pose in frame {frame_id!r}; this controller takes {self.frame_id!r}")
        p = _finite("position", position, 3)
        q = _finite("orientation", quat_xyzw, 4)
        if abs(np.linalg.norm(q) - 1.0) > 1e-3:
            raise CommandRejected(f"orientation {q.tolist()} is not a unit quaternion")
        ref = (np.asarray(measured_pos, float), np.asarray(measured_quat, float)) if (
            self.reflex or self._target is None) else self._target
        jump_m = float(np.linalg.norm(p - ref[0]))
        jump_rad = float(np.linalg.norm(rotation_delta(ref[1], q)))
        if jump_m > self.max_jump_m or jump_rad > self.max_jump_rad:
            self.reflex, self._target = True, None
            raise CommandRejected(f"discontinuity reflex: target jumps {jump_m * 1e3:.1f} mm / {jump_rad:.3f} rad "
                                  f"(limits {self.max_jump_m * 1e3:g} mm / {self.max_jump_rad:g} rad); holding")
        self.reflex, self._target = False, (p, q / np.linalg.norm(q))

    def arm_delta(self, current_pos, current_quat) -> np.ndarray:
        if self._target is None:
            return np.zeros(6)      # no target yet, or reflex: hold (OSC with zero delta holds the pose)
        d = np.concatenate([self._target[0] - np.asarray(current_pos, float),
                            rotation_delta(current_quat, self._target[1])])
        return np.clip(d / self.scale, -1.0, 1.0)

    def reset(self) -> None:
        self.reflex, self._target = False, None
