"""Observation preprocessing shared by the policy families: validation, derived features, normalization.

Raw observations hold only what a robot can publish (docs/CONVENTIONS.md). Features such as the
gripper-to-object vector are DERIVED here, inside the policy, so one checkpoint runs in-process and
behind ROS 2 without the publisher knowing about them. A derived feature is written as the string
"a-b" (vector difference of two same-shaped low-dim keys, e.g. "robot0_eef_pos-cube_pos"); the string
is also the feature's name. Plain strings keep configs JSON-only (no eval).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from policy_stack.normalize import Normalizer
from policy_stack.spaces import FeatureSpec

_FLOAT_KINDS = ("f",)


@dataclass(frozen=True)
class DerivedFeature:
    name: str
    minuend: str
    subtrahend: str

    @classmethod
    def parse(cls, spec: str) -> "DerivedFeature":
        parts = [p.strip() for p in spec.split("-")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"derived feature {spec!r}: expected 'key_a-key_b' (difference of two low-dim keys)")
        return cls(name=spec, minuend=parts[0], subtrahend=parts[1])

    def compute(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs[self.minuend] - obs[self.subtrahend]


def rgb_key(camera: str) -> str:
    return f"{camera}_rgb"


def depth_key(camera: str) -> str:
    return f"{camera}_depth"


class ObsPreprocessor:
    """Raw observation histories {key: (B, To, ...)} -> normalized policy inputs {key: (B, To, ...)}.

    Output keys: each low-dim key and derived feature (normalized to [-1, 1]), `<cam>_rgb` as
    (B, To, 3, H, W) in [0, 1] and `<cam>_depth` as (B, To, 1, H, W) in [0, 1], images resized to
    `image_shape` when the camera delivers another size.
    """

    def __init__(self, normalizer: Normalizer, lowdim_keys: list[str], derived_features: list[str],
                 cameras: list[str], use_depth: bool, image_shape: tuple[int, int]):
        self.normalizer = normalizer
        self.lowdim_keys = list(lowdim_keys)
        self.derived = [DerivedFeature.parse(s) for s in derived_features]
        self.cameras = list(cameras)
        self.use_depth = use_depth
        self.image_shape = tuple(image_shape)
        for feature in self.derived:
            normalizer.add_difference_stats(feature.name, feature.minuend, feature.subtrahend)
        for key in self.feature_keys:
            if not normalizer.has(key):
                raise ValueError(f"no normalization stats for observation key {key!r}")

    @property
    def feature_keys(self) -> list[str]:
        """Low-dim features the encoder sees, in order: plain keys then derived ones."""
        return self.lowdim_keys + [f.name for f in self.derived]

    @property
    def image_keys(self) -> list[str]:
        keys = []
        for cam in self.cameras:
            keys.append(rgb_key(cam))
            if self.use_depth:
                keys.append(depth_key(cam))
        return keys

    @property
    def raw_lowdim_keys(self) -> list[str]:
        """Low-dim keys the robot must publish (plain keys and the inputs of derived features)."""
        keys = list(self.lowdim_keys)
        for f in self.derived:
            keys += [k for k in (f.minuend, f.subtrahend) if k not in keys]
        return keys

    @property
    def required_keys(self) -> list[str]:
        return self.raw_lowdim_keys + self.image_keys

    def __call__(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [k for k in self.required_keys if k not in raw]
        if missing:
            raise ValueError(f"observation batch lacks key(s) {missing}")
        lowdim = {k: raw[k].to(torch.float32) for k in self.raw_lowdim_keys}
        out = {k: self.normalizer.normalize(k, lowdim[k]) for k in self.lowdim_keys}
        for feature in self.derived:
            out[feature.name] = self.normalizer.normalize(feature.name, feature.compute(lowdim))
        for cam in self.cameras:
            out[rgb_key(cam)] = self._resize(Normalizer.normalize_rgb(raw[rgb_key(cam)]), "area")
            if self.use_depth:
                # nearest: averaging depth across an object edge invents surfaces that are not there
                out[depth_key(cam)] = self._resize(self.normalizer.normalize_depth(raw[depth_key(cam)]), "nearest")
        return out

    def _resize(self, images: torch.Tensor, mode: str) -> torch.Tensor:
        if tuple(images.shape[-2:]) == self.image_shape:
            return images
        lead = images.shape[:-3]
        flat = images.reshape(-1, *images.shape[-3:])
        flat = F.interpolate(flat, size=self.image_shape, mode=mode)
        return flat.reshape(*lead, *flat.shape[-3:])


def validate_observation(obs: dict, obs_spec: dict[str, FeatureSpec], keys: list[str]) -> None:
    """Check one time step of raw observations; raise ValueError naming the offending key.

    Low-dim: exact shape, any floating dtype (cast to float32 later: ROS messages carry float64).
    RGB: uint8 (H, W, 3), any H, W (resized). Depth: (H, W) float metres or uint16 millimetres.
    Every value must be finite.
    """
    if not isinstance(obs, dict):
        raise ValueError(f"observation must be a dict of numpy arrays, got {type(obs).__name__}")
    for key in keys:
        if key not in obs:
            raise ValueError(f"observation is missing key {key!r}")
        spec = obs_spec[key]
        value = obs[key]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if spec.kind == "rgb":
            if value.dtype != np.uint8:
                raise ValueError(f"observation {key!r}: dtype {value.dtype}, expected uint8 RGB")
            if value.ndim != 3 or value.shape[-1] != 3:
                raise ValueError(f"observation {key!r}: shape {value.shape}, expected (H, W, 3)")
            continue  # uint8 cannot be NaN
        if spec.kind == "depth":
            if value.ndim != 2:
                raise ValueError(f"observation {key!r}: shape {value.shape}, expected (H, W) depth")
            if value.dtype.kind not in _FLOAT_KINDS and value.dtype != np.uint16:
                raise ValueError(f"observation {key!r}: dtype {value.dtype}, expected float metres or uint16 millimetres")
        else:
            if tuple(value.shape) != tuple(spec.shape):
                raise ValueError(f"observation {key!r}: shape {tuple(value.shape)}, expected {tuple(spec.shape)}")
            if value.dtype.kind not in _FLOAT_KINDS:
                raise ValueError(f"observation {key!r}: dtype {value.dtype}, expected {spec.dtype}")
        if value.dtype.kind in _FLOAT_KINDS and not np.all(np.isfinite(value)):
            raise ValueError(f"observation {key!r} contains NaN or Inf")
