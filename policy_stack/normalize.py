"""Observation/action normalization shared by every policy family.

Low-dim keys and the action are mapped per dimension from [min, max] to [-1, 1] (Diffusion Policy's
`limits` mode). Dimensions whose range is below `range_eps` (a constant in the data, e.g. a gripper
that never moved) are only offset-centred, so they neither blow up nor become NaN. Keys ending in
`quat` are left as they are (already in [-1, 1], as in DP). Images: RGB uint8 -> float in [0, 1];
depth in metres (or uint16 millimetres) is clipped to [0, depth_max_m] and scaled to [0, 1].

The statistics come as `{key: {"min", "max", "mean", "std"}: lists}` (docs/CONVENTIONS.md) and are
saved as JSON beside the weights (`normalization.json` in a checkpoint folder).

Strictly, "min" and "max" are the values mapped to -1 and +1. A checkpoint converted to a sign-flipped
observation (scripts/convert_checkpoint_frames.py: the second Panda finger, negative in robosuite,
positive on a real Franka) stores min' = -min, max' = -max, so min' > max'. The map then has
scale' = -scale and offset' = offset, and feeds the network bit-identical inputs: the constant-dimension
test below therefore looks at |max - min|.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ACTION_KEY = "action"
# Our split low-dim dataset features are `observation.state.<env key>`; that prefix is stripped so that
# policies see the observation key names of docs/CONVENTIONS.md. Any other key is kept whole: LeRobot's
# own plain `observation.state` (and `observation.environment_state`) is an observation key in its own
# right (policy_stack.data.features.env_key), and stripping it to `state` would lose it.
_SPLIT_STATE_PREFIX = "observation.state."


def _strip_prefix(key: str) -> str:
    return key[len(_SPLIT_STATE_PREFIX):] if key.startswith(_SPLIT_STATE_PREFIX) else key


@dataclass
class RangeStats:
    """Per-dimension affine map x_norm = scale * x + offset (and its inverse)."""
    scale: torch.Tensor
    offset: torch.Tensor


class Normalizer:
    """Maps raw low-dim observations/actions to [-1, 1] and images to [0, 1] (torch, any leading dims)."""

    def __init__(self, stats: dict[str, dict[str, list]], depth_max_m: float = 2.0,
                 range_eps: float = 1e-4, identity_suffixes: tuple[str, ...] = ("quat",)):
        self.stats: dict[str, dict[str, list[float]]] = {}
        for key, entry in stats.items():
            missing = [f for f in ("min", "max") if f not in entry]
            if missing:
                raise ValueError(f"normalization stats for {key!r} lack {missing}")
            self.stats[_strip_prefix(key)] = {f: np.asarray(v, np.float64).reshape(-1).tolist()
                                              for f, v in entry.items() if f in ("min", "max", "mean", "std")}
        self.depth_max_m = float(depth_max_m)
        self.range_eps = float(range_eps)
        self.identity_suffixes = tuple(identity_suffixes)
        self._maps: dict[str, RangeStats] = {k: self._range_map(k) for k in self.stats}

    # ---- construction helpers ----------------------------------------------------------------
    def _range_map(self, key: str) -> RangeStats:
        lo = np.asarray(self.stats[key]["min"], np.float64)
        hi = np.asarray(self.stats[key]["max"], np.float64)
        if lo.shape != hi.shape:
            raise ValueError(f"normalization stats for {key!r}: min/max shapes differ {lo.shape} vs {hi.shape}")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError(f"normalization stats for {key!r} contain NaN/Inf")
        if key.endswith(self.identity_suffixes):
            scale, offset = np.ones_like(lo), np.zeros_like(lo)
        else:
            span = hi - lo
            constant = np.abs(span) < self.range_eps      # |.|: a sign-flipped dimension has max < min
            # constant dims: scale 1 and centre on the (single) value, as DP's normalizer does
            scale = np.where(constant, 1.0, 2.0 / np.where(constant, 1.0, span))
            offset = np.where(constant, -(hi + lo) / 2.0, -1.0 - scale * lo)
        return RangeStats(torch.as_tensor(scale, dtype=torch.float32), torch.as_tensor(offset, dtype=torch.float32))

    def add_difference_stats(self, name: str, minuend: str, subtrahend: str) -> None:
        """Stats for a derived feature `minuend - subtrahend` by interval arithmetic, unless given.

        The bound is conservative (wider than the data's), which keeps the feature inside [-1, 1]."""
        if name in self.stats:
            return
        for key in (minuend, subtrahend):
            if key not in self.stats:
                raise ValueError(f"derived feature {name!r} needs normalization stats for {key!r}")
        a, b = self.stats[minuend], self.stats[subtrahend]
        self.stats[name] = {
            "min": (np.asarray(a["min"]) - np.asarray(b["max"])).tolist(),
            "max": (np.asarray(a["max"]) - np.asarray(b["min"])).tolist(),
        }
        self._maps[name] = self._range_map(name)

    # ---- queries ------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self._maps

    def dim(self, key: str) -> int:
        return int(self._require(key).scale.numel())

    def _require(self, key: str) -> RangeStats:
        if key not in self._maps:
            raise KeyError(f"no normalization stats for {key!r} (have: {sorted(self._maps)})")
        return self._maps[key]

    # ---- transforms ---------------------------------------------------------------------------
    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        m = self._require(key)
        return x * m.scale.to(x.device, x.dtype) + m.offset.to(x.device, x.dtype)

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        m = self._require(key)
        return (x - m.offset.to(x.device, x.dtype)) / m.scale.to(x.device, x.dtype)

    @staticmethod
    def normalize_rgb(x: torch.Tensor) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1]."""
        return x.to(torch.float32).div_(255.0).movedim(-1, -3)

    def normalize_depth(self, x: torch.Tensor) -> torch.Tensor:
        """Depth (..., H, W) in metres (float) or millimetres (uint16/int) -> float (..., 1, H, W) in [0, 1].

        Invalid (0, as real cameras report it) stays 0; far readings saturate at depth_max_m."""
        metres = x.to(torch.float32) / 1000.0 if not x.is_floating_point() else x.to(torch.float32)
        return metres.clamp(0.0, self.depth_max_m).div_(self.depth_max_m).unsqueeze(-3)

    # ---- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"stats": self.stats, "depth_max_m": self.depth_max_m, "range_eps": self.range_eps,
                "identity_suffixes": list(self.identity_suffixes)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        if "stats" not in d:  # a bare stats dict
            return cls(d)
        return cls(d["stats"], depth_max_m=d.get("depth_max_m", 2.0), range_eps=d.get("range_eps", 1e-4),
                   identity_suffixes=tuple(d.get("identity_suffixes", ("quat",))))

    def save_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "Normalizer":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"normalization file missing: {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"normalization file {path} is not valid JSON: {exc}") from exc
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"normalization file {path} is malformed: {exc}") from exc


def stats_from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, list[float]]]:
    """Stats in the JSON layout from arrays (N, ...) per key: handy for tests and small datasets."""
    out = {}
    for key, arr in arrays.items():
        flat = np.asarray(arr, np.float64).reshape(len(arr), -1)
        std = flat.std(0)
        out[key] = {"min": flat.min(0).tolist(), "max": flat.max(0).tolist(), "mean": flat.mean(0).tolist(),
                    "std": np.where(np.isfinite(std), std, 0.0).tolist()}
    return out


__all__ = ["ACTION_KEY", "Normalizer", "stats_from_arrays"]
