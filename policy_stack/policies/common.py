"""What every chunk-predicting policy family shares: observation history, action post-processing,
eval-mode switching, device and tensor helpers. Diffusion and EBT both mix in `ChunkPolicyMixin`."""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from policy_stack.nn.preprocess import ObsPreprocessor, validate_observation
from policy_stack.normalize import ACTION_KEY, Normalizer
from policy_stack.spaces import ActionSpace, FeatureSpec


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_tensor(value, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    return torch.as_tensor(np.asarray(value), device=device)


def default_obs_spec(config, normalizer: Normalizer, raw_lowdim_keys: list[str]) -> dict[str, FeatureSpec]:
    """Obs spec implied by the config and stats, for callers that do not pass one."""
    spec = {k: FeatureSpec([normalizer.dim(k)], "float32", "lowdim") for k in raw_lowdim_keys}
    for cam in config.cameras:
        spec[f"{cam}_rgb"] = FeatureSpec([*config.image_shape, 3], "uint8", "rgb")
        if config.use_depth:
            spec[f"{cam}_depth"] = FeatureSpec(list(config.image_shape), "float32", "depth")
    return spec


class DeviceTracking:
    """`device` follows the parameters through `.to(...)` (mixed in before nn.Module)."""

    @property
    def device(self) -> torch.device:
        return self.device_

    def to(self, *args, **kwargs):
        out = super().to(*args, **kwargs)
        param = next(self.parameters(), None)
        if param is not None:
            self.device_ = param.device
        return out


class ChunkPolicyMixin(DeviceTracking):
    """Mixed in before nn.Module. `_init_observation_side` sets config, action_space, normalizer,
    preprocessor, obs_spec, action_dim; subclasses add self._history (deque, maxlen To),
    self.discrete_dims and self.device_."""

    def _init_observation_side(self, config, stats: dict | Normalizer, action_space: ActionSpace,
                               obs_spec: dict[str, FeatureSpec] | None) -> None:
        self.config = config
        self.action_space = action_space
        self.normalizer = stats if isinstance(stats, Normalizer) else Normalizer(stats, depth_max_m=config.depth_max_m)
        self.preprocessor = ObsPreprocessor(self.normalizer, config.lowdim_keys, config.derived_features,
                                            config.cameras, config.use_depth, config.image_shape)
        self.obs_spec = self._check_obs_spec(obs_spec)
        self.action_dim = action_space.dim
        self._observed_since_act = 0     # observe() calls since the last act(): executed steps
        if not self.normalizer.has(ACTION_KEY):
            raise ValueError(f"normalization stats lack {ACTION_KEY!r}")
        if self.normalizer.dim(ACTION_KEY) != self.action_dim:
            raise ValueError(f"action stats have {self.normalizer.dim(ACTION_KEY)} dims, action space has {self.action_dim}")

    def _check_obs_spec(self, obs_spec) -> dict[str, FeatureSpec]:
        required = self.preprocessor.required_keys
        if obs_spec is None:
            return default_obs_spec(self.config, self.normalizer, self.preprocessor.raw_lowdim_keys)
        missing = [k for k in required if k not in obs_spec]
        if missing:
            raise ValueError(f"obs_spec lacks key(s) the policy needs: {missing}")
        spec = {k: obs_spec[k] if isinstance(obs_spec[k], FeatureSpec) else FeatureSpec(**obs_spec[k]) for k in required}
        for k in self.preprocessor.raw_lowdim_keys:
            if int(np.prod(spec[k].shape)) != self.normalizer.dim(k):
                raise ValueError(f"obs_spec {k!r} shape {spec[k].shape} disagrees with its stats ({self.normalizer.dim(k)} dims)")
        return spec

    @property
    def info(self) -> dict:
        """Last tick's diagnostics (latency_ms, sampler, steps, ...)."""
        return dict(self._info)

    def preprocess(self, raw_obs: dict) -> dict[str, torch.Tensor]:
        """Raw histories {k: (B, To, ...)} (numpy or torch) -> normalized inputs on the policy device."""
        return self.preprocessor({k: as_tensor(raw_obs[k], self.device) for k in self.preprocessor.required_keys
                                  if k in raw_obs})

    def observe(self, obs: dict[str, np.ndarray]) -> None:
        """Record an observation without planning (a step executed from the current chunk), so the
        history the next act() sees holds consecutive frames, as the training windows do."""
        self._push_observation(obs)
        self._observed_since_act += 1

    def _executed_since_act(self) -> int:
        """Actions executed since the last act(): one per observation received (observe() + this act)."""
        return self._observed_since_act + 1

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
