"""The one Policy interface every family (diffusion/, ebt/) implements, and everything callers use.

Callers (the episode loop, `policy-stack eval|export`, the ROS 2 inference node, the RL agents, the
trainer) talk to a policy only through what is declared here: no `getattr`/`hasattr` probing and no
branching on the policy type. A family overrides the concrete hooks it supports; the defaults refuse
with a message that names the policy type, so an unsupported option fails loudly at start-up.

Observation: dict of numpy arrays for ONE time step (low-dim keys by name, `<cam>_rgb` HxWx3 uint8,
`<cam>_depth` HxW float32 metres). The policy keeps its own observation history (To steps) and
its warm start; `reset()` clears both at episode start.
Action chunk: np.ndarray (Ta, action_dim) float32 in env units, described by `self.action_space`.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from policy_stack.spaces import ActionSpace, FeatureSpec

if TYPE_CHECKING:
    from policy_stack.policies.config import PolicyConfig


class Policy(abc.ABC):
    policy_type: str = "?"               # registry name, set by @register_policy
    # config: the family's PolicyConfig (policies/config.py); callers read its horizons n_obs_steps (To),
    # horizon (Tp) and n_action_steps (Ta). A chunk starts at the oldest observation: the first
    # executed action is index To - 1.
    config: "PolicyConfig"
    action_space: ActionSpace
    obs_spec: dict[str, FeatureSpec]     # the keys act() needs, with shapes and dtypes
    backends: tuple[str, ...] = ("torch",)   # what set_backend() accepts

    # ------------------------------------------------------------------ acting (one episode)
    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> None:
        """New episode: clear observation history and warm start; optionally reseed sampling noise."""

    @abc.abstractmethod
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One control tick: push obs into history, return an action chunk (Ta, action_dim)."""

    @abc.abstractmethod
    def observe(self, obs: dict[str, np.ndarray]) -> None:
        """An observation seen while executing the current chunk (no planning). The next act() counts
        these as executed steps (the warm-start shift) and sees a contiguous history."""

    @property
    def info(self) -> dict:
        """Last tick's diagnostics (latency_ms, sampler, steps, uncertainty) for status topics."""
        return {}

    def debug_outputs(self) -> dict:
        """Optional per-tick outputs for visualisation (the ROS node publishes what it finds):
        "keypoint_base" (3,) metres in the robot base frame, "keypoint_px" (2,) (u, v), "heatmap" (H, W)
        uint8. Default: none."""
        return {}

    # ------------------------------------------------------------------ learning (batches)
    @abc.abstractmethod
    def sample(self, obs_batch: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """n candidate chunks per batch element (B, n, Tp, action_dim) in NORMALIZED action units.

        obs_batch holds normalized observation histories (B, To, ...), as produced by
        `self.preprocess`. Used by RL (EXPO / PA-RL)."""

    @abc.abstractmethod
    def loss(self, batch: dict) -> torch.Tensor:
        """The policy's own imitation loss on a batch {"obs": {k: (B,To,...)}, "action": (B,Tp,A)}
        given in RAW units (the policy normalizes). Used by training and PA-RL distillation."""

    @property
    def loss_info(self) -> dict[str, float]:
        """Extra scalars of the last loss() call, logged by the trainer (e.g. EBT's energy gap)."""
        return {}

    def preprocess(self, raw_obs: dict) -> dict[str, torch.Tensor]:
        """Raw observation histories {k: (B, To, ...)} -> the normalized inputs sample() takes."""
        return {k: torch.as_tensor(v).float() for k, v in raw_obs.items()}

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        """Raw env-unit actions -> the normalized units of sample(); default: the action box onto [-1, 1]."""
        low, high = self._action_bounds(action)
        return (action - low) / (high - low) * 2.0 - 1.0

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        low, high = self._action_bounds(action)
        return (action + 1.0) * 0.5 * (high - low) + low

    def _action_bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = torch.as_tensor(self.action_space.low, dtype=like.dtype, device=like.device)
        high = torch.as_tensor(self.action_space.high, dtype=like.dtype, device=like.device)
        return low, high

    # ------------------------------------------------------------------ device
    @property
    def device(self) -> torch.device:
        """Where the policy's tensors live (the RL agent builds its networks there)."""
        params = self.parameters() if isinstance(self, torch.nn.Module) else iter(())
        param = next(params, None)
        return param.device if param is not None else torch.device("cpu")

    def to(self, *args, **kwargs):
        """Move to a device (torch's Module.to for nn.Module policies); returns the policy."""
        if isinstance(self, torch.nn.Module):
            return torch.nn.Module.to(self, *args, **kwargs)
        return self

    # ------------------------------------------------------------------ runtime configuration
    @property
    def sampler_name(self) -> str:
        """The sampler act() uses (reports and status topics)."""
        return self.policy_type

    def set_sampler(self, name: str | None, steps: int | None = None) -> None:
        """Switch sampler and/or steps per call (None keeps the current one). A family that has no
        choice refuses any change rather than ignoring it."""
        if name not in (None, self.sampler_name) or steps is not None:
            raise ValueError(f"{self.policy_type} policies have no sampler settings; leave them empty")

    def set_backend(self, name: str, **options) -> None:
        """Run the network on another backend ("torch", "onnx", ... as listed in `backends`)."""
        if name != "torch":
            raise ValueError(f"backend {name!r}: {self.policy_type} policies run on torch only")

    # ------------------------------------------------------------------ export hooks
    def export_onnx(self, folder: str | Path | None = None) -> Path:
        """Write ONNX graphs of the network into folder (a temporary one when None); return it."""
        raise ValueError(f"export onnx: {self.policy_type!r} policies are not exportable")

    def check_export(self, folder: str | Path, tol: float) -> float:
        """Run the exported graphs against torch; return the max |difference| or raise above tol."""
        raise ValueError(f"export onnx: {self.policy_type!r} policies are not exportable")
