"""Action-space and observation-spec descriptions shared by policies, sim, ROS nodes and datasets.

Plain dataclasses that round-trip through JSON (checkpoints and dataset metadata carry them), so a
checkpoint knows which observation keys it needs and what its action dimensions mean.
"""
from __future__ import annotations

import math
import numbers

from dataclasses import asdict, dataclass, field

import numpy as np

ACTION_KINDS = ("eef_delta", "joint_position")

# What each known action dimension MEANS, so a checkpoint's actions can be executed on something other
# than the simulator it was trained in (docs/ros2.md "Action semantics"). eef_delta is robosuite's
# OSC_POSE controller as this project configures it (robosuite 1.5.2 default_panda.json: input_type
# delta, input_ref_frame base, output_max 0.05 m / 0.5 rad, goal from the ACHIEVED pose each step).
# name -> (meaning, unit, physical value of +1)
EEF_DELTA_DIMS = {
    "dx": ("end-effector point translation along base x", "m", 0.05),
    "dy": ("end-effector point translation along base y", "m", 0.05),
    "dz": ("end-effector point translation along base z", "m", 0.05),
    "droll": ("rotation vector component about base x (axis-angle, about the end-effector point)", "rad", 0.5),
    "dpitch": ("rotation vector component about base y (axis-angle, about the end-effector point)", "rad", 0.5),
    "dyaw": ("rotation vector component about base z (axis-angle, about the end-effector point)", "rad", 0.5),
    "gripper": ("gripper command, only its sign counts: < 0 open, > 0 close (robosuite moves the finger "
                "target 0.2 of its range per step toward the limit); the policies emit -1 / +1", "1", 1.0),
}
EEF_DELTA_FRAME = "robot base (panda_link0)"
EEF_DELTA_POINT = ("robosuite grip site: 0.097 m along panda_hand's z axis (panda_hand = 0.1065 m along "
                   "panda_link7's z; 6.4 mm short of franka_ros2's panda_hand_tcp at 0.1034 m)")
EEF_DELTA_STEP = ("delta per control step (1/20 s): goal = achieved pose + value * scale, clipped to "
                  "[-1, 1] first; position goal p + d, orientation goal R(rotvec) * R_current; an "
                  "operational-space impedance controller (kp 150, critically damped) tracks the goal")


@dataclass
class ActionSpace:
    names: list[str]                 # one per action dimension, e.g. ["dx","dy","dz","droll","dpitch","dyaw","gripper"]
    low: list[float]
    high: list[float]
    kind: str = "eef_delta"          # eef_delta (robosuite OSC) | joint_position (ros2_control arms)
    discrete: list[int] = field(default_factory=list)  # indices of binary dims (gripper): -1/+1

    def __post_init__(self):
        if not (len(self.names) == len(self.low) == len(self.high)):
            raise ValueError(f"ActionSpace: names/low/high lengths differ: {len(self.names)}, {len(self.low)}, {len(self.high)}")
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"ActionSpace: kind {self.kind!r} not in {ACTION_KINDS}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"ActionSpace: dimension names repeat: {self.names}")
        # Bounds are the last clamp before an actuator: an inverted, NaN or empty interval would turn
        # every command into a bound (a checkpoint with low 1, high -1 made the node send -1 on every axis).
        for i, (lo, hi) in enumerate(zip(self.low, self.high)):
            try:
                ok = math.isfinite(float(lo)) and math.isfinite(float(hi)) and float(lo) < float(hi)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"ActionSpace: dimension {self.names[i]!r} has bounds [{lo!r}, {hi!r}]; "
                                 "need finite low < high")
        bad = [d for d in self.discrete if isinstance(d, (bool, float)) or not 0 <= int(d) < len(self.names)]
        if bad or len(set(self.discrete)) != len(self.discrete):
            raise ValueError(f"ActionSpace: discrete indices {list(self.discrete)} must be distinct dimension "
                             f"indices in [0, {len(self.names) - 1}]")

    @property
    def dim(self) -> int:
        return len(self.names)

    def semantics(self) -> dict:
        """Meaning, unit, scale and frame of every dimension, as written into checkpoints and docs.

        ValueError (one line, naming what is unknown) when this kind or a dimension name has no known
        meaning: the inference node refuses such a checkpoint rather than publish actions nobody can
        execute correctly."""
        if self.kind == "eef_delta":
            unknown = [n for n in self.names if n not in EEF_DELTA_DIMS]
            if unknown:
                raise ValueError(f"action space eef_delta: dimensions {unknown} have no known meaning "
                                 f"(known: {list(EEF_DELTA_DIMS)})")
            dims = [dict(zip(("name", "meaning", "unit", "scale"), (n,) + EEF_DELTA_DIMS[n])) for n in self.names]
            return {"kind": self.kind, "controller": "robosuite OSC_POSE, delta input (BASIC composite controller)",
                    "frame": EEF_DELTA_FRAME, "ee_point": EEF_DELTA_POINT, "step": EEF_DELTA_STEP, "dims": dims}
        if self.kind == "joint_position":
            dims = [{"name": n, "meaning": f"absolute position target of joint {n}", "unit": "rad", "scale": 1.0}
                    for n in self.names]
            return {"kind": self.kind, "controller": "joint position targets (ros2_control style)",
                    "frame": "joint space", "ee_point": "", "step": "absolute target per control step",
                    "dims": dims}
        raise ValueError(f"action space kind {self.kind!r} has no known meaning (known: {list(ACTION_KINDS)})")

    def describe(self) -> str:
        """One line per dimension, for logs (the inference node prints it at start-up)."""
        s = self.semantics()
        lines = [f"{s['kind']}: {s['controller']}; frame {s['frame']}" + (f"; point {s['ee_point']}" if s["ee_point"] else "")]
        for d, lo, hi in zip(s["dims"], self.low, self.high):
            scale = f", +1 = {d['scale']:g} {d['unit']}" if s["kind"] == "eef_delta" and d["unit"] != "1" else ""
            lines.append(f"  {d['name']}: [{lo:g}, {hi:g}]{scale}: {d['meaning']}")
        return "\n".join(lines)

    def clip(self, action: np.ndarray) -> np.ndarray:
        return np.clip(action, np.asarray(self.low, np.float32), np.asarray(self.high, np.float32))

    def to_dict(self) -> dict:
        """Fields, plus the human-readable semantics (informative; recomputed from kind + names on load)."""
        d = asdict(self)
        try:
            d["semantics"] = self.semantics()
        except ValueError:
            pass
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ActionSpace":
        d = {k: v for k, v in d.items() if k != "semantics"}
        return cls(**d)


@dataclass
class FeatureSpec:
    """One observation key: shape and dtype as the policy/dataset sees it."""
    shape: list[int]
    dtype: str                        # "float32", "uint8", "uint16"
    kind: str = "lowdim"              # lowdim | rgb | depth

    MAX_DIM = 1 << 16                 # no observation axis is longer (a 65536-pixel-wide image)

    def __post_init__(self):
        shape = self.shape
        if not isinstance(shape, (list, tuple)) or len(shape) > 4 or not all(
                isinstance(n, numbers.Integral) and not isinstance(n, bool) and 1 <= n <= self.MAX_DIM for n in shape):
            raise ValueError(f"FeatureSpec: shape {str(shape)[:60]} must be up to 4 integers in [1, {self.MAX_DIM}]")
        if not isinstance(self.dtype, str) or not isinstance(self.kind, str):
            raise ValueError(f"FeatureSpec: dtype {str(self.dtype)[:30]!r} and kind {str(self.kind)[:30]!r} must be strings")
        try:
            np.dtype(self.dtype)
        except TypeError:
            raise ValueError(f"FeatureSpec: unknown dtype {self.dtype[:30]!r}") from None

    def to_dict(self) -> dict:
        return asdict(self)


def obs_spec_to_dict(spec: dict[str, FeatureSpec]) -> dict:
    return {k: v.to_dict() for k, v in spec.items()}


def obs_spec_from_dict(d: dict) -> dict[str, FeatureSpec]:
    if not all(isinstance(v, dict) for v in d.values()):
        raise ValueError("obs_spec: every entry must be an object with shape and dtype")
    return {k: FeatureSpec(**v) for k, v in d.items()}
