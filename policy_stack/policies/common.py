"""What every chunk-predicting policy family shares: observation history, action post-processing,
eval-mode switching, device and tensor helpers. Diffusion and EBT both mix in `ChunkPolicyMixin`."""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from policy_stack.nn.preprocess import validate_observation


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_tensor(value, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    return torch.as_tensor(np.asarray(value), device=device)


class ChunkPolicyMixin:
    """Needs: self.preprocessor, self.obs_spec, self.config (n_obs_steps, binarize_discrete),
    self._history (deque, maxlen To), self.action_space, self.discrete_dims, nn.Module's training/eval."""

    def observe(self, obs: dict[str, np.ndarray]) -> None:
        """Record an observation without planning (a step executed from the current chunk), so the
        history the next act() sees holds consecutive frames, as the training windows do."""
        self._push_observation(obs)
        self._observed_since_act = getattr(self, "_observed_since_act", 0) + 1

    def _executed_since_act(self) -> int:
        """Actions executed since the last act(): one per observation received (observe() + this act)."""
        return getattr(self, "_observed_since_act", 0) + 1

    def _push_observation(self, obs: dict[str, np.ndarray]) -> None:
        keys = self.preprocessor.required_keys
        validate_observation(obs, self.obs_spec, keys)
        step = {k: torch.as_tensor(np.array(obs[k])) for k in keys}  # copy: callers reuse their buffers
        if not self._history:
            self._history.extend([step] * self.config.n_obs_steps)
        else:
            self._history.append(step)

    def _history_batch(self) -> dict[str, torch.Tensor]:
        keys = self.preprocessor.required_keys
        return {k: torch.stack([h[k] for h in self._history])[None] for k in keys}

    def _postprocess(self, actions: np.ndarray) -> np.ndarray:
        """Binary dims (gripper) snapped to their bounds, everything clipped to the action space."""
        low = np.asarray(self.action_space.low, np.float32)
        high = np.asarray(self.action_space.high, np.float32)
        if self.config.binarize_discrete and self.discrete_dims:
            d = self.discrete_dims
            actions[:, d] = np.where(actions[:, d] >= (low[d] + high[d]) / 2, high[d], low[d])
        return self.action_space.clip(actions).astype(np.float32)

    @contextlib.contextmanager
    def _eval_mode(self):
        """act()/sample() always use eval behaviour (no dropout, center crop), even mid-training."""
        was_training = self.training
        if was_training:
            self.eval()
        try:
            yield
        finally:
            if was_training:
                self.train()
