"""A small pre-LayerNorm transformer block (self-attention, optional cross-attention, MLP).

Attention is written out (softmax(QK^T/sqrt(d)) V) instead of F.scaled_dot_product_attention on
purpose: energy-based policies (EBT) differentiate the energy w.r.t. the action tokens and then train
through that gradient (double backward), which the fused flash/memory-efficient CUDA kernels do not
support. At the sizes used here the explicit version costs nothing noticeable.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0, kv_dim: int | None = None):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} not divisible by n_heads {n_heads}")
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), context (B, S, Dkv) or None (self-attention); mask (T, S) bool, True = may attend."""
        context = x if context is None else context
        b, t, _ = x.shape
        s = context.shape[1]
        q = self.q(x).reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        kv = self.kv(context).reshape(b, s, 2, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]  # indexed, not unpacked: unpacking a tensor confuses the ONNX tracer
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        return self.out((weights @ v).transpose(1, 2).reshape(b, t, -1))


class TransformerBlock(nn.Module):
    """x -> x + SelfAttn(LN x) [-> x + CrossAttn(LN x, context)] -> x + MLP(LN x)."""

    def __init__(self, dim: int, n_heads: int = 4, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 cross_attention: bool = False, context_dim: int | None = None):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, n_heads, dropout)
        self.norm_cross = nn.LayerNorm(dim) if cross_attention else None
        self.cross_attn = MultiHeadAttention(dim, n_heads, dropout, kv_dim=context_dim) if cross_attention else None
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                self_mask: torch.Tensor | None = None, cross_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.norm_self(x), mask=self_mask)
        if self.cross_attn is not None:
            if context is None:
                raise ValueError("TransformerBlock built with cross_attention=True needs a context")
            x = x + self.cross_attn(self.norm_cross(x), context, mask=cross_mask)
        return x + self.mlp(self.norm_mlp(x))


def causal_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, T) bool, True where position t may attend to s <= t."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()
