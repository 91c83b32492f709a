"""ConditionalUnet1D noise predictor (Chi et al., Diffusion Policy; `conditional_unet1d.py`).

Temporal 1-D U-Net over the action chunk (B, Tp, A) with FiLM conditioning on
[diffusion-step embedding, global observation features]. Residual blocks: Conv1d(k=5) -> GroupNorm(8)
-> Mish, FiLM scale+bias, Conv1d block, 1x1 residual. Each of `len(down_dims)-1` levels halves the
time axis, so Tp must be divisible by 2**(len(down_dims)-1).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000) / (half - 1)))
        angles = t.to(torch.float32)[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Conv1dBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, n_groups: int = 8):
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2),
                                   nn.GroupNorm(n_groups, out_ch), nn.Mish())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks with FiLM (per-channel scale and bias from the condition) in between."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int = 5, n_groups: int = 8):
        super().__init__()
        self.out_ch = out_ch
        self.blocks = nn.ModuleList([Conv1dBlock(in_ch, out_ch, kernel_size, n_groups),
                                     Conv1dBlock(out_ch, out_ch, kernel_size, n_groups)])
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_ch))
        self.residual_conv = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.blocks[0](x)
        film = self.cond_encoder(cond).reshape(cond.shape[0], 2, self.out_ch, 1)
        out = film[:, 0] * out + film[:, 1]
        out = self.blocks[1](out)
        return out + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    def __init__(self, action_dim: int, global_cond_dim: int, down_dims: tuple[int, ...] = (64, 128, 256),
                 step_embed_dim: int = 128, kernel_size: int = 5, n_groups: int = 8):
        super().__init__()
        all_dims = [action_dim, *down_dims]
        in_out = list(zip(all_dims[:-1], all_dims[1:]))
        cond_dim = step_embed_dim + global_cond_dim
        self.time_downsample_factor = 2 ** (len(down_dims) - 1)

        self.step_encoder = nn.Sequential(SinusoidalPosEmb(step_embed_dim), nn.Linear(step_embed_dim, 4 * step_embed_dim),
                                          nn.Mish(), nn.Linear(4 * step_embed_dim, step_embed_dim))

        def res(i, o):
            return ConditionalResidualBlock1D(i, o, cond_dim, kernel_size, n_groups)

        self.down_modules = nn.ModuleList()
        for level, (d_in, d_out) in enumerate(in_out):
            is_last = level == len(in_out) - 1
            self.down_modules.append(nn.ModuleList([
                res(d_in, d_out), res(d_out, d_out),
                nn.Conv1d(d_out, d_out, 3, stride=2, padding=1) if not is_last else nn.Identity()]))
        mid = all_dims[-1]
        self.mid_modules = nn.ModuleList([res(mid, mid), res(mid, mid)])
        self.up_modules = nn.ModuleList()
        for d_in, d_out in reversed(in_out[1:]):
            self.up_modules.append(nn.ModuleList([
                res(2 * d_out, d_in), res(d_in, d_in), nn.ConvTranspose1d(d_in, d_in, 4, stride=2, padding=1)]))
        self.final_conv = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
                                        nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        """sample (B, Tp, A), timestep (B,) int/float, global_cond (B, C) -> predicted noise (B, Tp, A)."""
        x = sample.transpose(1, 2)
        timestep = timestep.reshape(-1).expand(x.shape[0])  # a scalar step applies to the whole batch
        cond = torch.cat([self.step_encoder(timestep), global_cond], dim=-1)
        skips = []
        for res1, res2, down in self.down_modules:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = down(x)
        for block in self.mid_modules:
            x = block(x, cond)
        for res1, res2, up in self.up_modules:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(res2(res1(x, cond), cond))
        return self.final_conv(x).transpose(1, 2)
