"""The teleop device interface and the mapping from a 6-axis motion input to an eef_delta action.

A device is polled once per control tick: `poll(now, obs)` -> TeleopCommand (action in the policy's
ActionSpace, whether the deadman is engaged, episode events since the last poll). Devices only parse
their input; what a command does (publish, record, call services) is the teleop node's job.

Deadman: a device reports motion only while its operator is actively holding it (gamepad: the
deadman button; SpaceMouse: reports keep arriving while the puck is deflected; keyboard: one key press
jogs one control tick). When it is released, or its input goes silent for `deadman_timeout_s`
(default 0.05 s, a dead USB link included), every continuous dimension is zero at the next poll.
The gripper dimension keeps its last commanded state: opening the hand because the operator let go
of the deadman would drop what it holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from policy_stack.spaces import ActionSpace

# LeRobot record's episode controls, plus quit (Esc) to end the session.
EVENTS = ("start", "success", "failure", "rerecord", "reset", "quit")
DEADMAN_TIMEOUT_S = 0.05
TRANSLATION, ROTATION = ("dx", "dy", "dz"), ("droll", "dpitch", "dyaw")


@dataclass
class TeleopCommand:
    action: np.ndarray                      # float32, in the ActionSpace, clipped to its bounds
    engaged: bool                           # deadman held: False means every continuous dim is zero
    events: list = field(default_factory=list)   # names from EVENTS, in the order they happened
    twist: np.ndarray | None = None         # (6,) linear m/s + angular rad/s, for MoveIt Servo users


class TwistMapper:
    """6 normalised motion axes in [-1, 1] (x, y, z, roll, pitch, yaw in the robot base frame) and a
    gripper state -> an eef_delta action and a Servo twist.

    Axis value 1 maps to `translation_scale` (resp. `rotation_scale`) in action units: the action space
    says what an action unit means (eef_delta: +1 = 0.05 m / 0.5 rad per control step, spaces.py), so
    the twist is action * unit / period. A joint_position action space is refused: a 6-axis input has
    no meaning in joint space without IK."""

    def __init__(self, space: ActionSpace, translation_scale: float = 1.0, rotation_scale: float = 1.0,
                 period_s: float = 0.05):
        if space.kind != "eef_delta":
            raise ValueError(f"teleop devices drive an eef_delta action space; this policy's is {space.kind!r}")
        missing = [n for n in TRANSLATION + ROTATION if n not in space.names]
        if missing:
            raise ValueError(f"teleop: action space {space.names} lacks dimensions {missing}")
        for name, v in (("translation_scale", translation_scale), ("rotation_scale", rotation_scale),
                        ("period_s", period_s)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"teleop: {name} must be finite and > 0, got {v!r}")
        self.space = space
        self.idx = [space.names.index(n) for n in TRANSLATION + ROTATION]
        self.gripper_idx = space.names.index("gripper") if "gripper" in space.names else None
        self.scale = np.array([translation_scale] * 3 + [rotation_scale] * 3, np.float32)
        self.period_s = period_s
        sem = space.semantics()["dims"]
        self.unit = np.array([sem[i]["scale"] for i in self.idx], np.float64)

    def zero(self, gripper: float) -> np.ndarray:
        return self.map(np.zeros(6), gripper)

    def map(self, axes, gripper: float) -> np.ndarray:
        axes = np.asarray(axes, np.float64).reshape(6)
        axes = np.where(np.isfinite(axes), axes, 0.0)     # a NaN from a broken driver is no motion
        action = np.zeros(self.space.dim, np.float32)
        action[self.idx] = np.clip(axes, -1.0, 1.0) * self.scale
        if self.gripper_idx is not None:
            action[self.gripper_idx] = gripper
        return self.space.clip(action).astype(np.float32)

    def twist(self, action: np.ndarray) -> np.ndarray:
        """Action -> (vx, vy, vz, wx, wy, wz) in m/s and rad/s over one control period."""
        return np.asarray(action, np.float64)[self.idx] * self.unit / self.period_s


class TeleopDevice:
    """Base class. Subclasses implement `_read(now, obs)` -> (axes (6,), engaged, events, gripper toggle)."""

    name = "device"

    def __init__(self, space: ActionSpace, period_s: float = 0.05, translation_scale: float = 1.0,
                 rotation_scale: float = 1.0, deadman_timeout_s: float = DEADMAN_TIMEOUT_S):
        self.mapper = TwistMapper(space, translation_scale, rotation_scale, period_s)
        self.deadman_timeout_s = float(deadman_timeout_s)
        self.gripper = -1.0                 # open; toggled by the gripper button/key
        self.last_input = -math.inf         # time of the last engaged motion input

    def poll(self, now: float, obs: dict | None = None) -> TeleopCommand:
        axes, engaged, events, toggle = self._read(now, obs)
        if toggle:
            self.gripper = -self.gripper
        if engaged:
            self.last_input = now
        # Deadman: released, or nothing heard for deadman_timeout_s -> zero motion at this poll.
        if not engaged or now - self.last_input > self.deadman_timeout_s:
            engaged, axes = False, np.zeros(6)
        action = self.mapper.map(axes, self.gripper)
        return TeleopCommand(action=action, engaged=engaged, events=list(events),
                             twist=self.mapper.twist(action))

    def _read(self, now: float, obs: dict | None):
        raise NotImplementedError

    def close(self) -> None:
        pass
