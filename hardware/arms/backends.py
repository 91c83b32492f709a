"""What each controller accepts, from one safe twist per control tick (hardware/arms/limits.py).

- servo (MoveIt Servo): the twist itself, in the base frame; the controller integrates it. Hold: zero
  twist every tick. E-stop: one zero twist, the node pauses Servo, then nothing until the reset.
- jtc (ros2_control joint_trajectory_controller): the commanded pose is integrated from the twist,
  differential IK turns it into joint positions, and every tick sends a two-point trajectory (stamp 0 =
  start now; a new one replaces the old): the next joint target one tick ahead with its velocity, then a
  linear stop at the acceleration limit (at least two ticks) with zero final velocity. If the stream ends
  (adapter gone), the arm brakes and stops on its own, inside the workspace box. Hold: one trajectory to where the last one ended. E-stop: one point at the
  measured position.
- pose (Cartesian impedance): the commanded pose is integrated from the twist and sent every tick, so
  consecutive targets differ by at most speed * tick (0.25 m/s at 50 Hz: 5 mm). Hold: the same target.
  An arm standing still for 150 ms more than 2 cm / 0.1 rad from the target (a reflex, a reset): re-sync
  to the measured pose.
  E-stop: the target walks to the measured pose in steps of at most `max_jump` (a jump to it at once
  would be a discontinuity the arm rejects).
- gripper (all): finger position per finger, metres: pos = 0.04 * (1 - g) / 2 for the policy's g in
  [-1, 1] (+1 closes), the inverse of the fake arm's g = 1 - 2 pos / 0.04: lossless.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from hardware.arms.rotations import matrix_to_quat, matrix_to_rotvec, rotation_error, rotvec_to_matrix

BACKENDS = ("servo", "jtc", "pose")
GRIPPER_OPEN_M = 0.04     # Panda finger travel per finger (franka_ros2 gripper width / 2)


def gripper_position(g: float) -> float:
    """Policy gripper value (robosuite: +1 close) -> finger position target, metres per finger."""
    g = float(np.clip(g, -1.0, 1.0))
    return GRIPPER_OPEN_M * (1.0 - g) / 2.0


def gripper_value(pos: float) -> float:
    """Inverse of gripper_position (what the fake arm does)."""
    return 1.0 - 2.0 * float(pos) / GRIPPER_OPEN_M


@dataclass
class Pose:
    p: np.ndarray       # (3,) base frame, m
    R: np.ndarray       # (3, 3)

    @property
    def quat(self) -> np.ndarray:
        return matrix_to_quat(self.R)

    def copy(self) -> "Pose":
        return Pose(np.array(self.p, np.float64), np.array(self.R, np.float64))


@dataclass
class TrajectoryPoint:
    positions: np.ndarray
    velocities: np.ndarray
    time_from_start: float      # s


def integrate(pose: Pose, v, w, dt: float) -> Pose:
    return Pose(pose.p + np.asarray(v) * dt, rotvec_to_matrix(np.asarray(w) * dt) @ pose.R)


def step_toward(current: Pose, goal: Pose, max_lin: float, max_ang: float) -> Pose:
    """current moved toward goal by at most max_lin metres and max_ang radians."""
    dp = goal.p - current.p
    n = float(np.linalg.norm(dp))
    p = goal.p.copy() if n <= max_lin else current.p + dp * (max_lin / n)
    e = rotation_error(goal.R, current.R)
    a = float(np.linalg.norm(e))
    R = goal.R.copy() if a <= max_ang else rotvec_to_matrix(e * (max_ang / a)) @ current.R
    return Pose(p, R)


class ServoBackend:
    name = "servo"
    mode = "rate"           # the policy's delta becomes a velocity (delta * scale / dt)

    def __init__(self, tick_s: float, command_timeout_s: float = 0.1):
        self.tick_s = tick_s
        # Servo keeps executing the last twist until its command timeout: the workspace check looks that far.
        self.horizon_s = tick_s + command_timeout_s

    def reference(self, measured: Pose, now: float = 0.0) -> Pose:
        return measured

    def command(self, v, w, measured: Pose):
        return {"twist": (np.asarray(v, np.float64), np.asarray(w, np.float64))}

    def hold(self, measured: Pose | None, onset: bool):
        return {"twist": (np.zeros(3), np.zeros(3))}

    def estop(self, measured: Pose | None, q_measured, onset: bool):
        # One zero twist and the pause; then silence: Servo halts on its own command timeout, a paused
        # Servo refuses twists, and a stream of zero twists would block other controllers (moveit2#2127).
        return {"twist": (np.zeros(3), np.zeros(3)), "stop": True} if onset else {}

    def resync(self, measured: Pose | None, q_measured) -> None:
        pass


class PoseBackend:
    name = "pose"
    mode = "target"         # target_i = measured pose at step i + delta_i * scale, reached in dt

    def __init__(self, tick_s: float, max_jump_m: float = 0.005, max_jump_rad: float = 0.025,
                 resync_m: float = 0.02, resync_rad: float = 0.1):
        self.tick_s = tick_s
        self.horizon_s = tick_s
        self.max_jump = (max_jump_m, max_jump_rad)
        self.resync_limits = (resync_m, resync_rad)
        self.cmd: Pose | None = None
        self.resyncs = 0
        self._history: collections.deque = collections.deque()    # (time, measured position), last 0.2 s

    def reference(self, measured: Pose, now: float = 0.0) -> Pose:
        """The commanded pose to continue from. When the arm stands still far from it (it was moved by
        hand or reset, or a discontinuity reflex stopped it: Franka then holds until a target near the
        MEASURED pose arrives), interpolating on from the old target would never be accepted: start again
        from the measured pose (one jump, which a reflexed arm accepts and a stopped one does not notice).
        An arm that is still moving is only lagging behind its target: no re-sync."""
        self._history.append((now, measured.p.copy()))
        while self._history and now - self._history[0][0] > 0.2:
            self._history.popleft()
        if self.cmd is None:
            self.cmd = measured.copy()
            return self.cmd
        far = (np.linalg.norm(self.cmd.p - measured.p) > self.resync_limits[0]
               or np.linalg.norm(rotation_error(self.cmd.R, measured.R)) > self.resync_limits[1])
        if far:
            span = now - self._history[0][0]
            moved = max(float(np.linalg.norm(p - measured.p)) for _, p in self._history)
            if span >= 0.15 and moved < 0.002:      # still for 150 ms: stopped, not lagging
                self.cmd = measured.copy()
                self.resyncs += 1
        return self.cmd

    def command(self, v, w, measured: Pose):
        self.cmd = integrate(self.cmd if self.cmd is not None else measured.copy(), v, w, self.tick_s)
        return {"pose": self.cmd.copy()}

    def hold(self, measured: Pose | None, onset: bool):
        if self.cmd is None:
            if measured is None:
                return {}
            self.cmd = measured.copy()
        return {"pose": self.cmd.copy()}

    def estop(self, measured: Pose | None, q_measured, onset: bool):
        if measured is None:
            return self.hold(None, onset)
        self.cmd = step_toward(self.cmd if self.cmd is not None else measured, measured, *self.max_jump)
        return {"pose": self.cmd.copy()}

    def resync(self, measured: Pose | None, q_measured) -> None:
        pass     # the target stays continuous: never jump it to the measured pose


class JtcBackend:
    name = "jtc"
    mode = "target"

    def __init__(self, tick_s: float, ik, stop_ticks: int = 2, max_speed: tuple = (np.inf, np.inf), limits=None):
        self.tick_s = tick_s
        self.max_speed = max_speed      # (m/s, rad/s): the realized Cartesian step keeps to them too
        self.limits = limits            # MotionLimits: the realized position keeps to the workspace box too
        self.ik = ik
        self.kin = ik.kin
        self.measure_kin = ik.kin.copy()     # FK of measurements, from the input thread (pinocchio data is per thread)
        self.stop_s = stop_ticks * tick_s
        # The trajectory's stop segment moves on by v * stop_s / 2 after the first point.
        self.horizon_s = tick_s + self.stop_s / 2.0
        self.q_cmd: np.ndarray | None = None
        self.x_cmd: Pose | None = None
        self.q_end: np.ndarray | None = None       # where the last trajectory sent ends
        self.end_s = self.stop_s                   # and the length of its stop segment
        self.ik_error_m = 0.0                      # position residual of the last IK step

    def measured_pose(self, q_measured) -> Pose:
        p, R = self.kin.fk(q_measured)
        return Pose(p, R)

    def pose_of_measurement(self, q_measured) -> Pose:
        """measured_pose for the input thread (its own kinematics data)."""
        p, R = self.measure_kin.fk(q_measured)
        return Pose(p, R)

    def resync(self, measured: Pose | None, q_measured) -> None:
        if q_measured is not None:
            self.q_cmd = np.array(q_measured, np.float64)
            self.x_cmd = self.measured_pose(self.q_cmd)

    def reference(self, measured: Pose, now: float = 0.0) -> Pose:
        return self.x_cmd

    def command(self, v, w, measured: Pose):
        goal = integrate(self.x_cmd, v, w, self.tick_s)
        q_next, self.ik_error_m = self.ik.solve(self.q_cmd, goal.p, goal.R, self.tick_s)
        # The IK's residual can make the joints' Cartesian step a little longer than the limited twist's:
        # shorten the joint step (to first order the Cartesian step shrinks in proportion).
        for _ in range(4):
            reached = self.measured_pose(q_next)
            ratio = max(np.linalg.norm(reached.p - self.x_cmd.p) / (self.max_speed[0] * self.tick_s),
                        np.linalg.norm(rotation_error(reached.R, self.x_cmd.R)) / (self.max_speed[1] * self.tick_s))
            if ratio <= 1.0:
                break
            q_next = self.q_cmd + (q_next - self.q_cmd) / (ratio * 1.001)   # 0.1%: the second-order rest
        if self.limits is not None and not self.limits.inside(self.measured_pose(q_next).p) \
                and self.limits.inside(self.x_cmd.p):
            # The IK's residual would leave the box: the longest part of the joint step that stays inside.
            lo, hi, step = 0.0, 1.0, q_next - self.q_cmd
            for _ in range(12):
                mid = (lo + hi) / 2.0
                lo, hi = (mid, hi) if self.limits.inside(self.measured_pose(self.q_cmd + mid * step).p) else (lo, mid)
            q_next = self.q_cmd + lo * step
        qdot = (q_next - self.q_cmd) / self.tick_s
        reached = self.measured_pose(q_next)        # what the joints really reach (IK residual included)
        # The stop segment brakes at the acceleration limit (at least over stop_ticks): if the stream ends,
        # the arm stops as the limiter would stop it, and the limiter's braking distance keeps that stop
        # inside the workspace box.
        # (Linear only: a longer, rotation-driven stop would carry the end effector further than the
        # limiter's braking distance allows.)
        brake_s = self.stop_s
        if self.limits is not None:
            brake_s = max(brake_s, np.linalg.norm(reached.p - self.x_cmd.p) / self.tick_s / self.limits.max_linear_accel)
        q_stop = np.clip(q_next + qdot * brake_s / 2.0, self.kin.lower, self.kin.upper)
        if self.limits is not None and self.limits.inside(reached.p) \
                and not self.limits.inside(self.measured_pose(q_stop).p):
            # Joint-space extrapolation bends (a rotating wrist swings the grip site): shorten it to stay inside.
            lo, hi = 0.0, 1.0
            for _ in range(12):
                mid = (lo + hi) / 2.0
                q_try = np.clip(q_next + mid * (q_stop - q_next), self.kin.lower, self.kin.upper)
                lo, hi = (mid, hi) if self.limits.inside(self.measured_pose(q_try).p) else (lo, mid)
            q_stop = q_next + lo * (q_stop - q_next)
        self.q_cmd = q_next
        self.x_cmd = reached
        self.q_end, self.end_s = q_stop, brake_s
        return {"trajectory": [TrajectoryPoint(q_next, qdot, self.tick_s),
                               TrajectoryPoint(q_stop, np.zeros_like(q_stop), self.tick_s + brake_s)]}

    def hold(self, measured: Pose | None, onset: bool):
        if not onset:
            return {}
        q = self.q_end if self.q_end is not None else self.q_cmd
        if q is None:
            return {}
        self.q_end = q
        return {"trajectory": [TrajectoryPoint(np.array(q), np.zeros_like(q), max(self.end_s, self.stop_s))]}

    def estop(self, measured: Pose | None, q_measured, onset: bool):
        if not onset or q_measured is None:
            return {}
        q = np.array(q_measured, np.float64)
        self.q_end = q
        return {"trajectory": [TrajectoryPoint(q, np.zeros_like(q), self.stop_s)]}


def make_backend(name: str, tick_s: float, ik=None, servo_timeout_s: float = 0.1, max_speed=(np.inf, np.inf),
                 limits=None):
    if name == "servo":
        return ServoBackend(tick_s, servo_timeout_s)
    if name == "pose":
        return PoseBackend(tick_s)
    if name == "jtc":
        if ik is None:
            raise ValueError("backend jtc needs the arm's kinematics (URDF) for differential IK")
        return JtcBackend(tick_s, ik, max_speed=max_speed, limits=limits)
    raise ValueError(f"unknown backend {name!r}; expected one of {list(BACKENDS)}")


__all__ = ["BACKENDS", "Pose", "TrajectoryPoint", "make_backend", "gripper_position", "gripper_value",
           "matrix_to_rotvec"]
