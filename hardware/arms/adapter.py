"""The arm adapter's per-tick logic, shared by every backend and free of ROS (the node feeds it).

Inputs (any thread): measured joint states and end-effector pose, camera liveness, action chunks (and
single teleop actions), e-stop and reset. Output: one `Command` per control tick (`tick(now)`), which the
node publishes as it is.

Per tick, in this order (the first that applies decides):
1. e-stop latched -> the backend's stop (zero twist / stop trajectory / pose walking to the measured one);
2. a watchdog fires (joint states older than 100 ms, a configured camera older than 200 ms, no valid
   end-effector pose) -> hold;
3. arbitration (human interventions): a teleop action not older than teleop_timeout_s drives; else the
   policy's chunk follower (policy_stack.safety.ChunkFollower: time-indexed execution, NaN/shape rejection,
   clamping to the action bounds, horizon); it says hold -> hold;
4. else the action becomes a desired twist: servo: delta * scale / dt (robosuite's OSC_POSE scales, read
   from its config); jtc and pose: the target of the policy step is the MEASURED pose at the step's start
   plus delta * scale (what OSC does), to be reached by the step's end; the twist closes the gap between
   the commanded pose and that target in the time left;
5. the twist passes MotionLimiter (speed, acceleration, workspace box) and the backend turns it into
   its message(s).
A hold stops at once (the limiter forgets its last twist). Leaving a hold re-synchronises the jtc
backend with the measured joints. Every safety decision is an Event in `events` (counted) and in the
tick's Command, so the node can put it on /diagnostics.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from hardware.arms.backends import Pose, gripper_position, make_backend
from hardware.arms.limits import MotionLimiter, MotionLimits
from hardware.arms.rotations import quat_to_matrix, rotation_error, rotvec_to_matrix
from hardware.arms.scaling import OscScaling
from hardware.arms.watchdog import EStop, Staleness
from policy_stack import safety as S
from policy_stack.spaces import ActionSpace

# Event kinds of the adapter (stable strings: /diagnostics keys and tests use them).
ESTOP = "estop"                          # latched e-stop: backend stop
STALE_JOINTS = "stale_joint_states"      # /joint_states older than the watchdog: hold
STALE_CAMERA = "stale_camera"            # a configured camera older than its watchdog: hold
NO_POSE = "no_ee_pose"                   # no valid end-effector pose (yet): hold
BAD_STATE = "bad_state"                  # a measured state with NaN/Inf/absurd values: ignored (then stale)
LIMITED = "limited_"                     # + speed / accel / workspace / non_finite: the command was cut
IK_RESIDUAL = "ik_residual"              # jtc: the IK could not reach the commanded pose within 5 mm
POSE_RESYNC = "pose_resync"              # pose: target far from the measured pose (reflex, reset): restart there
ADAPTER_HOLDS = {ESTOP, STALE_JOINTS, STALE_CAMERA, NO_POSE}

MAX_ABS_JOINT_RAD = 4 * math.pi          # beyond this a joint reading is garbage, not a pose
MAX_ABS_POSITION_M = 10.0                # an end effector 10 m from its base is garbage too


def _calibration_gain(gain, backend: str) -> np.ndarray | None:
    """The calibration gain as 6 floats, None when it is all ones. Only the rate interface (servo) takes one:
    the pose and jtc backends command absolute targets, where a displacement gain has no single meaning."""
    g = np.asarray(gain, np.float64).reshape(-1)
    if g.size != 6 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"calibration_gain must be 6 positive finite numbers (x y z roll pitch yaw), got {list(gain)}")
    if np.all(g == 1.0):
        return None
    if backend != "servo":
        raise ValueError(f"calibration_gain {g.tolist()} with backend {backend!r}: only the servo backend (a velocity "
                         "interface) applies a calibration gain")
    return g


def eef_action_space() -> ActionSpace:
    """The policy's action space (sim.envs.default_action_space; repeated here: hardware/ needs no sim)."""
    return ActionSpace(names=["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"], low=[-1.0] * 7,
                       high=[1.0] * 7, kind="eef_delta", discrete=[6])


@dataclass
class Command:
    """What to publish this tick. Absent fields: publish nothing of that kind this tick."""
    twist: tuple | None = None             # (linear (3,), angular (3,)), base frame
    pose: Pose | None = None               # Cartesian target, base frame
    trajectory: list | None = None         # [TrajectoryPoint], joint order = the arm's joint names
    gripper: float | None = None           # finger position target, m
    stop: bool = False                     # invoke the controller's own stop (Servo pause)
    hold: S.Event | None = None            # why this tick holds (None: executing)
    events: list = field(default_factory=list)    # safety events raised this tick (incl. hold onset)
    action: np.ndarray | None = None       # the policy action executed (None on hold)
    chunk_index: int = -1
    source: str = "hold"                   # where the action came from: policy | teleop | hold


@dataclass
class AdapterConfig:
    backend: str = "servo"
    rate_hz: float = 50.0
    limits: MotionLimits = field(default_factory=MotionLimits)
    joint_state_timeout_s: float = 0.1
    camera_timeout_s: float = 0.2
    cameras: tuple = ()                    # names of the camera streams watched (empty: no camera watchdog)
    max_chunk_age_s: float = 0.5
    teleop_timeout_s: float = 0.25         # a teleop action drives this long after its stamp
    blend_steps: int = 0
    servo_timeout_s: float = 0.1
    joint_count: int = 7
    # Per axis (x, y, z, roll, pitch, yaw): the arm moves this many times the training controller's
    # displacement per command (a sim-to-real session's calibrate step measures it). servo only.
    calibration_gain: tuple = (1.0,) * 6


class ArmAdapterCore:
    def __init__(self, config: AdapterConfig, scaling: OscScaling, ik=None):
        if not (config.rate_hz >= 1.0 and math.isfinite(config.rate_hz)):
            raise ValueError(f"rate_hz must be >= 1, got {config.rate_hz!r}")
        self.config = config
        self.tick_s = 1.0 / config.rate_hz
        self.gain = _calibration_gain(config.calibration_gain, config.backend)
        self.scaling = scaling
        self.backend = make_backend(config.backend, self.tick_s, ik, config.servo_timeout_s,
                                    (config.limits.max_linear_speed, config.limits.max_angular_speed),
                                    config.limits)
        self.limiter = MotionLimiter(config.limits, self.tick_s)
        self.space = eef_action_space()
        self.follower = S.ChunkFollower(S.ActionSafety(self.space), max_age_s=config.max_chunk_age_s,
                                        blend_steps=config.blend_steps)
        # Teleop on the same safety path, its own follower: one action per message, valid teleop_timeout_s.
        self.teleop_follower = S.ChunkFollower(S.ActionSafety(self.space), max_age_s=config.teleop_timeout_s)
        self.estop_latch = EStop()
        self.events = S.EventLog()
        self.joints_watch = Staleness("/joint_states", config.joint_state_timeout_s)
        self.pose_watch = Staleness("end-effector pose", config.joint_state_timeout_s)
        self.camera_watch = {c: Staleness(f"camera {c}", config.camera_timeout_s) for c in config.cameras}
        self._lock = threading.RLock()
        self.q: np.ndarray | None = None            # measured joint positions (arm joints, joint_names order)
        self.ee: Pose | None = None                 # measured end-effector pose
        self._hold_kind: str | None = "start"       # kind of the current hold (None: executing)
        self._slot = None                           # (stamp, dt, index) of the policy step being executed
        self._target: Pose | None = None
        self._step_end = 0.0
        self._gripper: float | None = None          # last gripper command (None: never commanded)

    # ------------------------------------------------------------------ inputs
    def _event(self, kind: str, detail: str, now: float | None) -> S.Event:
        return self.events.add(S.Event(kind, detail), now)

    def on_joint_state(self, q, now: float) -> S.Event | None:
        """Measured arm joint positions (joint_names order). Garbage is dropped (the watchdog then holds)."""
        q = np.asarray(q, np.float64).reshape(-1)
        if q.size != self.config.joint_count or not np.all(np.isfinite(q)) or np.any(np.abs(q) > MAX_ABS_JOINT_RAD):
            return self._event(BAD_STATE, f"joint positions rejected: {np.array2string(q, precision=3)[:120]}", now)
        # No lock: the tick may be inside an IK step, and the executor thread that delivers this also
        # serves the e-stop service. The fields are replaced whole (atomic), never mutated.
        if self.config.backend == "jtc":          # the IK's pose is FK of the measured joints (one model)
            self.ee = self.backend.pose_of_measurement(q)
            self.pose_watch.touch(now)
        self.q = q
        self.joints_watch.touch(now)
        return None

    def on_ee_pose(self, p, quat_xyzw, now: float) -> S.Event | None:
        """Measured end-effector pose in the base frame (servo and pose backends)."""
        p = np.asarray(p, np.float64).reshape(-1)
        quat = np.asarray(quat_xyzw, np.float64).reshape(-1)
        if (p.size != 3 or quat.size != 4 or not np.all(np.isfinite(p)) or not np.all(np.isfinite(quat))
                or np.any(np.abs(p) > MAX_ABS_POSITION_M) or abs(np.linalg.norm(quat) - 1.0) > 0.1):
            return self._event(BAD_STATE, f"end-effector pose rejected: p={p.tolist()} q={quat.tolist()}"[:200], now)
        if self.config.backend == "jtc":
            return None
        self.ee = Pose(p, quat_to_matrix(quat))    # no lock: see on_joint_state
        self.pose_watch.touch(now)
        return None

    def on_camera(self, name: str, now: float) -> None:
        w = self.camera_watch.get(name)
        if w is not None:
            w.touch(now)

    def on_chunk(self, stamp: float, dt: float, chunk, now: float) -> tuple[bool, list]:
        """A chunk (or a single teleop action, T = 1) from /policy/action_chunk; None = explicit hold."""
        if chunk is None:
            self.follower.set_hold(stamp)
            return True, []
        accepted, events = self.follower.set_chunk(stamp, dt, chunk, now=now)
        for e in events:
            self.events.add(e, now)
        return accepted, events

    def on_teleop(self, stamp: float, action, now: float) -> tuple[bool, list]:
        """One teleop action (the operator holds the deadman): it drives for teleop_timeout_s from its stamp."""
        accepted, events = self.teleop_follower.set_chunk(stamp, self.config.teleop_timeout_s,
                                                          np.asarray(action, np.float32)[None], now=now)
        for e in events:
            self.events.add(e, now)
        return accepted, events

    def estop(self, reason: str, now: float) -> Command | None:
        """Latch the e-stop and return the stop command to publish AT ONCE (None: it already was latched).

        Deliberately without the tick's lock: a tick may be in the middle of an IK step (milliseconds, far
        more on a loaded machine), and the stop must not wait for it. The stop is built from the newest
        measurements (references, replaced whole, never mutated); the next tick sees the latch. The node
        drops any command of a tick that started before the latch (see ArmAdapterNode._loop)."""
        if not self.estop_latch.trigger(reason, now):
            return None
        ev = self._event(ESTOP, reason, now)
        self._hold_kind = ESTOP
        self.limiter.stop()
        fields = self.backend.estop(self.ee, self.q, onset=True)
        return Command(**fields, hold=ev, events=[ev])

    def reset_estop(self, now: float) -> bool:
        """Release the e-stop. Chunks computed before now are ignored: the policy must answer afresh."""
        with self._lock:
            if not self.estop_latch.reset():
                return False
            self.follower.reset(not_before=now)
            self.teleop_follower.reset(not_before=now)
            self.limiter.stop()
            self._slot = None
            self._event("estop_reset", "released by /safety/reset", now)
            return True

    # ------------------------------------------------------------------ the control tick
    def _watchdogs(self, now: float) -> S.Event | None:
        why = self.joints_watch.stale(now)
        if why:
            return S.Event(STALE_JOINTS, why)
        for w in self.camera_watch.values():
            why = w.stale(now)
            if why:
                return S.Event(STALE_CAMERA, why)
        if self.ee is None or self.pose_watch.stale(now):
            return S.Event(NO_POSE, self.pose_watch.stale(now) or "no end-effector pose yet")
        return None

    def _hold(self, event: S.Event, now: float, estop: bool = False) -> Command:
        onset = self._hold_kind != event.kind
        events = []
        if onset:
            self._hold_kind = event.kind
            events.append(self.events.add(event, now))
        self.limiter.stop()
        self._slot = None
        if estop:
            fields = self.backend.estop(self.ee, self.q, onset=False)
            return Command(**fields, hold=event, events=events)
        fields = self.backend.hold(self.ee, onset)
        return Command(**fields, gripper=self._gripper, hold=event, events=events)

    def tick(self, now: float) -> Command:
        with self._lock:
            if self.estop_latch.latched:
                return self._hold(S.Event(ESTOP, self.estop_latch.reason), now, estop=True)
            stop = self._watchdogs(now)
            if stop is not None:
                return self._hold(stop, now)
            follower, source = self.teleop_follower, "teleop"
            action, hold, idx = follower.action_at(now)
            if hold is not None:                  # no fresh teleop action: the policy drives
                follower, source = self.follower, "policy"
                action, hold, idx = follower.action_at(now)
            if hold is not None:
                return self._hold(hold, now)
            if self._hold_kind is not None:       # leaving a hold: start from where the arm is
                self.backend.resync(self.ee, self.q)
                self._hold_kind = None
            return self._execute(action, follower, now, source)

    def _execute(self, action: np.ndarray, follower, now: float, source: str) -> Command:
        stamp, dt, idx = follower.last_slot
        delta = self.scaling.scale(action[:6])
        resyncs = getattr(self.backend, "resyncs", 0)
        ref = self.backend.reference(self.ee, now)
        events = []
        if getattr(self.backend, "resyncs", 0) != resyncs:
            events.append(self.events.add(S.Event(POSE_RESYNC, "target re-synced to the measured pose"), now))
        if self.backend.mode == "rate":
            v, w = delta[:3] / dt, delta[3:] / dt
        else:
            if self._slot != (stamp, dt, idx):
                # A new policy step: its goal is the measured pose now plus the delta (OSC semantics).
                self._slot = (stamp, dt, idx)
                self._target = Pose(self.ee.p + delta[:3], rotvec_to_matrix(delta[3:]) @ self.ee.R)
                self._step_end = stamp + (idx + 1) * dt
            left = max(self._step_end - now, self.tick_s)
            v = (self._target.p - ref.p) / left
            w = rotation_error(self._target.R, ref.R) / left
        v, w, limited = self.limiter.limit(v, w, ref.p, self.backend.horizon_s)
        events += [self.events.add(S.Event(LIMITED + k), now) for k in limited]
        if self.gain is not None:
            # Calibrated arm: it moves gain x what it is told, so command (limited motion) / gain. After the
            # limiter on purpose: the speed and workspace limits then hold for the motion the arm MAKES.
            v, w = v / self.gain[:3], w / self.gain[3:]
        fields = self.backend.command(v, w, self.ee)
        if getattr(self.backend, "ik_error_m", 0.0) > 0.005:
            events.append(self.events.add(S.Event(IK_RESIDUAL, f"{self.backend.ik_error_m * 1e3:.1f} mm"), now))
        self._gripper = gripper_position(action[6])
        return Command(**fields, gripper=self._gripper, events=events, action=action, chunk_index=idx,
                       source=source)
