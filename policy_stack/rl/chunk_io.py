"""How the RL code reads any `Policy`'s chunks: horizons, the executed slice, normalization.

The RL algorithms are policy-agnostic: they only call the declared Policy interface: `sample`
(normalized units), `loss` (raw units), `preprocess`, `normalize_action` / `unnormalize_action`.
Replay holds RAW units (what the env produced and what `policy.loss` expects); critics and edits
work in NORMALIZED units, where an edit bound beta means the same thing on every action dimension.
"""
from __future__ import annotations

import numpy as np
import torch

from policy_stack.policies.base import Policy


class ChunkIO:
    """To/Tp/Ta of a policy (overridable) and the conversions the RL agents use."""

    def __init__(self, policy: Policy, obs_horizon: int | None = None, pred_horizon: int | None = None,
                 action_horizon: int | None = None):
        self.policy = policy
        c = policy.config
        self.To = int(obs_horizon or c.n_obs_steps)
        self.Tp = int(pred_horizon or c.horizon)
        self.Ta = int(action_horizon or c.n_action_steps)
        if not 1 <= self.Ta <= self.Tp:
            raise ValueError(f"ChunkIO: action horizon Ta={self.Ta} must be in [1, Tp={self.Tp}]")
        # Index of the first EXECUTED action inside a chunk. Project convention (data/windows.py, the
        # diffusion and EBT act()): a chunk starts at the oldest observation, so execution starts at To - 1.
        self.exec_start = self.To - 1
        if self.exec_start + self.Ta > self.Tp:
            raise ValueError(f"ChunkIO: exec_start {self.exec_start} + Ta {self.Ta} exceeds Tp {self.Tp}")
        self.A = policy.action_space.dim

    # observations -----------------------------------------------------------------------------
    def obs_to_torch(self, obs: dict[str, np.ndarray], device="cpu") -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(np.ascontiguousarray(v), device=device) for k, v in obs.items()}

    def norm_obs(self, obs_raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.policy.preprocess(obs_raw)

    def executed(self, chunk: torch.Tensor) -> torch.Tensor:
        """The Ta executed steps of chunks (..., Tp, A)."""
        return chunk[..., self.exec_start: self.exec_start + self.Ta, :]

    # actions ----------------------------------------------------------------------------------
    def norm_action(self, a: torch.Tensor) -> torch.Tensor:
        return self.policy.normalize_action(a)

    def unnorm_action(self, a: torch.Tensor) -> torch.Tensor:
        return self.policy.unnormalize_action(a)
