"""How the RL code talks to any `Policy` (Diffusion, EBT, ...): horizons and (un)normalization.

The RL algorithms are policy-agnostic: they only call `policy.sample` (normalized units),
`policy.loss` (raw units) and the three conversions below. Replay holds RAW units (what the env
produced and what `policy.loss` expects); critics and edits work in NORMALIZED units, where an edit
bound beta means the same thing on every action dimension.
"""
from __future__ import annotations

import numpy as np
import torch

from policy_stack.policies.base import Policy

_TO = ("n_obs_steps", "obs_horizon", "To")
_TP = ("horizon", "pred_horizon", "n_pred_steps", "Tp")
_TA = ("n_action_steps", "action_horizon", "Ta")


def _attr(obj, names, default=None):
    for holder in (obj, getattr(obj, "config", None), getattr(obj, "cfg", None)):
        if holder is None:
            continue
        for n in names:
            v = holder.get(n) if isinstance(holder, dict) else getattr(holder, n, None)
            if v is not None:
                return int(v)
    return default


class PolicyIO:
    """Resolves To/Tp/Ta and the normalization of a policy.

    Observation normalization uses `policy.preprocess(obs)` (the hook named in the Policy interface).
    Action normalization uses `policy.normalize_action` / `policy.unnormalize_action` when the policy
    has them, else the linear map of `action_space` [low, high] onto [-1, 1] (the convention every
    policy here trains with for bounded actions).
    """

    def __init__(self, policy: Policy, obs_horizon: int | None = None, pred_horizon: int | None = None,
                 action_horizon: int | None = None):
        self.policy = policy
        self.To = obs_horizon or _attr(policy, _TO, 1)
        self.Tp = pred_horizon or _attr(policy, _TP, 1)
        self.Ta = action_horizon or _attr(policy, _TA, self.Tp)
        if not 1 <= self.Ta <= self.Tp:
            raise ValueError(f"PolicyIO: action horizon Ta={self.Ta} must be in [1, Tp={self.Tp}]")
        # Index of the first EXECUTED action inside a chunk. Project convention (data/windows.py, the
        # diffusion and EBT act()): a chunk starts at the oldest observation, so execution starts at
        # To - 1. A policy with another convention sets `exec_start`.
        self.exec_start = _attr(policy, ("exec_start",), self.To - 1)
        if self.exec_start + self.Ta > self.Tp:
            raise ValueError(f"PolicyIO: exec_start {self.exec_start} + Ta {self.Ta} exceeds Tp {self.Tp}")
        space = policy.action_space
        self.A = space.dim
        self._low = torch.as_tensor(space.low, dtype=torch.float32)
        self._high = torch.as_tensor(space.high, dtype=torch.float32)

    # observations -----------------------------------------------------------------------------
    def obs_to_torch(self, obs: dict[str, np.ndarray], device="cpu") -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(np.ascontiguousarray(v), device=device) for k, v in obs.items()}

    def norm_obs(self, obs_raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pre = getattr(self.policy, "preprocess", None)
        if pre is None:
            return {k: v.float() if v.dtype != torch.uint8 else v for k, v in obs_raw.items()}
        with torch.no_grad():
            return pre(obs_raw)

    def executed(self, chunk: torch.Tensor) -> torch.Tensor:
        """The Ta executed steps of chunks (..., Tp, A)."""
        return chunk[..., self.exec_start: self.exec_start + self.Ta, :]

    # actions ----------------------------------------------------------------------------------
    def norm_action(self, a: torch.Tensor) -> torch.Tensor:
        fn = getattr(self.policy, "normalize_action", None)
        if fn is not None:
            return fn(a)
        lo, hi = self._low.to(a.device), self._high.to(a.device)
        return (a - lo) / (hi - lo) * 2.0 - 1.0

    def unnorm_action(self, a: torch.Tensor) -> torch.Tensor:
        fn = getattr(self.policy, "unnormalize_action", None)
        if fn is not None:
            return fn(a)
        lo, hi = self._low.to(a.device), self._high.to(a.device)
        return (a + 1.0) * 0.5 * (hi - lo) + lo
