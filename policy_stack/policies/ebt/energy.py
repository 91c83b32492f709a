"""The EBT energy network: E(observation, action chunk) -> one scalar per sample.

    obs histories --ObservationEncoder (shared)--> (B, To, F) --Linear + step embedding
                  --temporal self-attention--> To condition tokens (B, To, d)           [once per decision]
    action chunk (B, Tp, A) in [-1, 1] --MLP embed + fixed sin-cos position--> Tp action tokens
    action tokens --N x [self-attn, cross-attn to condition tokens, MLP]--> per-token linear head
                  --> mean over tokens = energy (B,)

This is EBT-Policy's layout (ObsTemporalEncoder + decoder with cross-attention to the observation tokens,
`E = output.mean(...)`), shrunk for CPU. The condition tokens do not depend on the actions, so the descent
computes them once and only re-runs the action decoder per step.

The shared TransformerBlock writes attention out explicitly, which keeps dE/da twice-differentiable
(training differentiates it w.r.t. the weights). Normalisation is per sample (LayerNorm over features),
never over the batch: EBT-Policy's RMSNorm over the whole tensor made the energy depend on the batch it
was computed in (docs/background.md).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from policy_stack.nn.transformer import TransformerBlock


def sincos_position(n: int, d: int) -> torch.Tensor:
    """Fixed (n, d) sin-cos position table."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * i / d)
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return table


class ConditionTokens(nn.Module):
    """Per-step observation features (B, To, F) -> condition tokens (B, To, d)."""

    def __init__(self, feature_dim: int, n_obs_steps: int, d_model: int, n_heads: int, n_layers: int,
                 dropout: float):
        super().__init__()
        self.proj = nn.Linear(feature_dim, d_model)
        self.step_embed = nn.Parameter(torch.zeros(n_obs_steps, d_model))
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, dropout=dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.proj(features) + self.step_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class ActionEnergyDecoder(nn.Module):
    """E(cond tokens (B, Nc, d), actions (B, Tp, A)) -> (B,). The part the descent differentiates."""

    def __init__(self, action_dim: int, horizon: int, d_model: int, n_layers: int, n_heads: int,
                 mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.action_dim, self.horizon = action_dim, horizon
        # GELU (smooth) rather than ReLU: a piecewise-linear energy would have a piecewise-constant
        # action-gradient, a poor vector field to descend.
        self.embed = nn.Sequential(nn.Linear(action_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.register_buffer("position", sincos_position(horizon, d_model), persistent=False)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, n_heads, mlp_ratio, dropout, cross_attention=True) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)

    def forward(self, cond: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if tuple(actions.shape[-2:]) != (self.horizon, self.action_dim):
            raise ValueError(f"energy: actions must be (B, {self.horizon}, {self.action_dim}), got {tuple(actions.shape)}")
        x = self.embed(actions) + self.position
        for block in self.blocks:
            x = block(x, context=cond)
        return self.head(self.norm(x)).mean(dim=(1, 2))
