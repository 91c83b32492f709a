"""Q ensemble over (low-dim observation history features, executed action chunk).

Q(s, a_{t:t+Ta}) scores one executed chunk as a macro-action (docs/rl.md explains why). The ensemble
is E independent LayerNorm MLPs evaluated as one batched matmul per layer (cheap on CPU). Pessimism
comes from the min over a random subset of `num_min_qs` members (REDQ / RLPD / EXPO).
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    def __init__(self, n: int, d_in: int, d_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)  # nn.Linear's default init, per member
        self.weight = nn.Parameter(torch.empty(n, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (E, B, d_in) -> (E, B, d_out)
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    def __init__(self, n: int, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, d))
        self.bias = nn.Parameter(torch.zeros(n, 1, d))

    def forward(self, x):
        return nn.functional.layer_norm(x, x.shape[-1:]) * self.weight + self.bias


class QEnsemble(nn.Module):
    """E MLPs: (B, in_dim) -> (E, B)."""

    def __init__(self, in_dim: int, num_qs: int = 10, hidden: tuple[int, ...] = (256, 256, 256),
                 layer_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [EnsembleLinear(num_qs, d, h)] + ([EnsembleLayerNorm(num_qs, h)] if layer_norm else []) + [nn.SiLU()]
            d = h
        layers.append(EnsembleLinear(num_qs, d, 1))
        self.net = nn.Sequential(*layers)
        self.num_qs = num_qs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(0).expand(self.num_qs, *x.shape)).squeeze(-1)


class ObsFeatures(nn.Module):
    """Flattens the low-dim keys of a NORMALIZED observation history (B, To, d_k) into (B, F).

    Optionally appends an image encoder's features. The encoder may be the POLICY's own encoder
    (`share_encoder`); it is then held by reference, not as a submodule, so checkpoints do not store it
    twice, and it runs frozen by default: critic gradients would otherwise change the base policy's
    features, which EXPO and PA-RL both assume are shaped by imitation only.
    """

    def __init__(self, lowdim_keys: dict[str, int], obs_horizon: int,
                 image_encoder: Callable[[dict], torch.Tensor] | None = None, image_dim: int = 0,
                 train_image_encoder: bool = False):
        super().__init__()
        self.keys = sorted(lowdim_keys)
        self.key_dims = dict(lowdim_keys)
        self.To = obs_horizon
        self._encoder = [image_encoder] if image_encoder is not None else []
        self.train_image_encoder = train_image_encoder
        self.dim = obs_horizon * sum(self.key_dims.values()) + (image_dim if image_encoder is not None else 0)

    def encoder_parameters(self):
        enc = self._encoder[0] if self._encoder else None
        return list(enc.parameters()) if (enc is not None and self.train_image_encoder and isinstance(enc, nn.Module)) else []

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        missing = [k for k in self.keys if k not in obs]
        if missing:
            raise KeyError(f"ObsFeatures: observation lacks low-dim key(s) {missing}; has {sorted(obs)}")
        b = obs[self.keys[0]].shape[0]
        parts = [obs[k].reshape(b, -1).float() for k in self.keys]
        if self._encoder:
            with torch.set_grad_enabled(self.train_image_encoder and torch.is_grad_enabled()):
                parts.append(self._encoder[0](obs).reshape(b, -1).float())
        return torch.cat(parts, dim=-1)


class Critic(nn.Module):
    """Online + target Q ensembles on shared observation features.

    q(feat, act) accepts chunks (B, Tp, A) -> (E, B) or candidates (B, N, Ta, A) -> (E, B, N); features are
    computed once per state and broadcast over candidates.
    """

    def __init__(self, features: ObsFeatures, action_horizon: int, action_dim: int, num_qs: int = 10,
                 num_min_qs: int = 2, hidden: tuple[int, ...] = (256, 256, 256), layer_norm: bool = True,
                 exec_start: int = 0):
        super().__init__()
        if not 1 <= num_min_qs <= num_qs:
            raise ValueError(f"Critic: num_min_qs={num_min_qs} must be in [1, num_qs={num_qs}]")
        self.features = features
        self.Ta, self.A, self.exec_start = action_horizon, action_dim, exec_start
        self.num_qs, self.num_min_qs = num_qs, num_min_qs
        self.online = QEnsemble(features.dim + action_horizon * action_dim, num_qs, hidden, layer_norm)
        self.target = copy.deepcopy(self.online).requires_grad_(False)

    def parameters_to_train(self):
        return list(self.online.parameters()) + self.features.encoder_parameters()

    def q(self, feat: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor:
        net = self.target if target else self.online
        act = act[..., self.exec_start: self.exec_start + self.Ta, :]   # only the executed steps
        if act.dim() == 3:
            return net(torch.cat([feat, act.reshape(act.shape[0], -1)], -1))
        b, n = act.shape[:2]
        x = torch.cat([feat.unsqueeze(1).expand(b, n, feat.shape[-1]), act.reshape(b, n, -1)], -1)
        return net(x.reshape(b * n, -1)).reshape(self.num_qs, b, n)

    def min_subset(self, q: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Min over a random subset of `num_min_qs` members: (E, ...) -> (...)."""
        if self.num_min_qs == self.num_qs:
            return q.min(0).values
        idx = torch.randperm(self.num_qs, generator=generator)[: self.num_min_qs]
        return q[idx.to(q.device)].min(0).values
