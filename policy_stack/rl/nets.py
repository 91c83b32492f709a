"""Small building blocks shared by the RL modules: MLPs, tanh-Gaussian heads, Polyak averaging."""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, layer_norm: bool = True) -> nn.Sequential:
    """Linear -> LayerNorm -> SiLU blocks. LayerNorm keeps Q/actor inputs well scaled when the critic
    extrapolates (RLPD's main stabiliser for high-UTD training)."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h)] + ([nn.LayerNorm(h)] if layer_norm else []) + [nn.SiLU()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class TanhGaussian(nn.Module):
    """pi(u|x) = N(mu(x), sigma(x)); output = scale * tanh(u). Used for EXPO's edit policy (scale = beta)
    and the SAC baseline's actor (scale = 1, normalized action units)."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...], scale: float = 1.0):
        super().__init__()
        self.net = mlp(in_dim, hidden, 2 * out_dim, layer_norm=True)
        self.scale = float(scale)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (sample (..., out_dim) in [-scale, scale], log-prob (...) of the UNIT tanh-Gaussian).

        The log-prob leaves out the constant out_dim * log(scale) of the final scaling, as EXPO's
        reference does (it scales the tanh-Gaussian sample by beta after computing its log-prob). The
        constant does not change any policy gradient, but it decides whether the entropy target is
        reachable: with beta = 0.05 and d = 56 it shifts the entropy by -168 nats, below SAC's -d/2
        target forever, so the temperature grows without bound and the edits become Q-blind noise."""
        mu, log_std = self.net(x).chunk(2, dim=-1)
        log_std = log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)
        std = log_std.exp()
        u = mu if deterministic else mu + std * torch.randn_like(mu)
        t = torch.tanh(u)
        # log N(u) - log|d(tanh u)/du|; the softplus form of log(1 - tanh^2) is the stable one.
        logp_u = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_det = (2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))).sum(-1)
        return self.scale * t, logp_u - log_det


@torch.no_grad()
def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    for pt, ps in zip(target.parameters(), source.parameters()):
        pt.lerp_(ps, tau)
    for bt, bs in zip(target.buffers(), source.buffers()):
        bt.copy_(bs)


@contextlib.contextmanager
def mode(module: nn.Module, training: bool):
    """Temporarily set train/eval mode (sampling in eval: no dropout; loss in train)."""
    was = module.training
    module.train(training)
    try:
        yield module
    finally:
        module.train(was)
