"""A tiny stand-in Policy for RL tests: Gaussian around an MLP mean, imitation loss = MSE.

It implements the Policy interface exactly as the RL code uses it (sample in normalized units on
preprocessed observations, loss on raw units) with non-trivial normalization, so unit slips show up.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from policy_stack.policies.base import Policy
from policy_stack.spaces import ActionSpace, FeatureSpec


class TinyPolicy(Policy, nn.Module):
    def __init__(self, To: int = 2, Tp: int = 4, Ta: int = 2, hidden: int = 32, noise: float = 0.3):
        nn.Module.__init__(self)
        self.n_obs_steps, self.horizon, self.n_action_steps = To, Tp, Ta
        self.config = SimpleNamespace(n_obs_steps=To, horizon=Tp, n_action_steps=Ta)
        self.action_space = ActionSpace(names=["dx", "dy"], low=[-0.5, -0.5], high=[0.5, 0.5])
        self.obs_spec = {"pos": FeatureSpec([2], "float32"), "goal": FeatureSpec([2], "float32")}
        self.register_buffer("obs_scale", torch.tensor(2.0))
        self.net = nn.Sequential(nn.Linear(To * 4, hidden), nn.SiLU(), nn.Linear(hidden, Tp * 2))
        self.noise = noise
        self._hist: list = []
        self._generator = torch.Generator().manual_seed(0)   # private noise, like DiffusionPolicy

    def preprocess(self, obs):
        return {k: obs[k].float() / self.obs_scale for k in ("pos", "goal")}

    def mean(self, obs_norm):
        b = obs_norm["pos"].shape[0]
        x = torch.cat([obs_norm["goal"].reshape(b, -1), obs_norm["pos"].reshape(b, -1)], -1)
        return torch.tanh(self.net(x)).reshape(b, self.horizon, 2)

    def sample(self, obs_batch, n):
        m = self.mean(obs_batch)
        noise = torch.randn(m.shape[0], n, *m.shape[1:], generator=self._generator).to(m.device)
        return m[:, None] + self.noise * noise

    def loss(self, batch):
        target = batch["action"].float() / 0.5          # normalize: bounds [-0.5, 0.5] -> [-1, 1]
        obs = self.preprocess(batch["obs"])
        err = ((self.mean(obs) - target) ** 2).mean(-1)
        if "action_is_pad" in batch:
            err = err * (~batch["action_is_pad"]).float()
        return err.mean()

    def reset(self, seed=None):
        self._hist = []

    def observe(self, obs):
        self._hist = (self._hist + [obs])[-self.n_obs_steps:]

    def act(self, obs):
        self._hist = (self._hist + [obs])[-self.n_obs_steps:]
        h = [self._hist[0]] * (self.n_obs_steps - len(self._hist)) + self._hist
        ob = {k: torch.as_tensor(np.stack([o[k] for o in h]))[None] for k in ("pos", "goal")}
        with torch.no_grad():
            s = self.n_obs_steps - 1   # chunk starts at the oldest observation (project convention)
            return (0.5 * self.mean(self.preprocess(ob))[0, s: s + self.n_action_steps]).numpy()
