"""The one Policy interface every family (diffusion/, ebt/, kite/) implements.

Observation: dict of numpy arrays for ONE time step (low-dim keys by name, `<cam>_rgb` HxWx3 uint8,
`<cam>_depth` HxW float32 metres). The policy keeps its own observation history (To steps) and
its RTI warm start; `reset()` clears both at episode start.
Action chunk: np.ndarray (T, action_dim) float32 in env units, described by `self.action_space`.
"""
from __future__ import annotations

import abc

import numpy as np
import torch

from policy_stack.spaces import ActionSpace, FeatureSpec


class Policy(abc.ABC):
    action_space: ActionSpace
    obs_spec: dict[str, FeatureSpec]   # the keys act() needs, with shapes and dtypes

    @abc.abstractmethod
    def reset(self) -> None:
        """New episode: clear observation history and warm start."""

    @abc.abstractmethod
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One control tick: push obs into history, return an action chunk (Ta, action_dim)."""

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
    def info(self) -> dict:
        """Last tick's diagnostics (latency_ms, sampler, steps, uncertainty) for status topics."""
        return {}
