"""Action-space and observation-spec descriptions shared by policies, sim, ROS nodes and datasets.

Plain dataclasses that round-trip through JSON (checkpoints and dataset metadata carry them), so a
checkpoint knows which observation keys it needs and what its action dimensions mean.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

ACTION_KINDS = ("eef_delta", "joint_position")


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

    @property
    def dim(self) -> int:
        return len(self.names)

    def clip(self, action: np.ndarray) -> np.ndarray:
        return np.clip(action, np.asarray(self.low, np.float32), np.asarray(self.high, np.float32))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ActionSpace":
        return cls(**d)


@dataclass
class FeatureSpec:
    """One observation key: shape and dtype as the policy/dataset sees it."""
    shape: list[int]
    dtype: str                        # "float32", "uint8", "uint16"
    kind: str = "lowdim"              # lowdim | rgb | depth

    def to_dict(self) -> dict:
        return asdict(self)


def obs_spec_to_dict(spec: dict[str, FeatureSpec]) -> dict:
    return {k: v.to_dict() for k, v in spec.items()}


def obs_spec_from_dict(d: dict) -> dict[str, FeatureSpec]:
    return {k: FeatureSpec(**v) for k, v in d.items()}
