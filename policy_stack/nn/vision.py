"""RGB-D camera encoder: small ResNet-style CNN with GroupNorm and spatial-softmax keypoints.

Follows Diffusion Policy's image stack (robomimic VisualCore: ResNet conv trunk -> SpatialSoftmax ->
Linear, BatchNorm replaced by GroupNorm because BatchNorm + EMA collapses, random crop in training and
center crop at eval) but far smaller, so it trains on a CPU. RGB and depth have their own stems (their
statistics differ), are fused by channel concatenation and share the trunk. One encoder per camera.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    # robomimic's BN->GN swap uses C//16 groups
    return nn.GroupNorm(max(1, channels // 16), channels)


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.norm1 = group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.norm2 = group_norm(out_ch)
        self.shortcut = (nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), group_norm(out_ch))
                         if stride != 1 or in_ch != out_ch else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SpatialSoftmax(nn.Module):
    """Feature map (N, C, H, W) -> expected (x, y) image coordinates of `num_keypoints` soft keypoints."""

    def __init__(self, in_ch: int, num_keypoints: int = 32, temperature: float = 1.0):
        super().__init__()
        self.keypoint_conv = nn.Conv2d(in_ch, num_keypoints, 1)
        self.temperature = temperature
        self.num_keypoints = num_keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.keypoint_conv(x)
        n, k, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        attention = torch.softmax(x.reshape(n, k, h * w) / self.temperature, dim=-1).reshape(n, k, h, w)
        expected_x = (attention.sum(dim=2) * xs).sum(dim=-1)
        expected_y = (attention.sum(dim=3) * ys).sum(dim=-1)
        return torch.cat([expected_x, expected_y], dim=-1)  # (N, 2K)


def crop_images(x: torch.Tensor, crop_hw: tuple[int, int], random: bool,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, ch, cw): independent random crops per image in training, center crop at eval."""
    ch, cw = crop_hw
    n, c, h, w = x.shape
    if (ch, cw) == (h, w):
        return x
    if ch > h or cw > w:
        raise ValueError(f"crop {crop_hw} larger than image {(h, w)}")
    if not random:
        top, left = (h - ch) // 2, (w - cw) // 2
        return x[:, :, top:top + ch, left:left + cw]
    top = torch.randint(0, h - ch + 1, (n,), generator=generator).to(x.device)
    left = torch.randint(0, w - cw + 1, (n,), generator=generator).to(x.device)
    rows = (top[:, None] + torch.arange(ch, device=x.device))[:, :, None]   # (N, ch, 1)
    cols = (left[:, None] + torch.arange(cw, device=x.device))[:, None, :]  # (N, 1, cw)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


class RGBDEncoder(nn.Module):
    """One camera: rgb (N,3,H,W) in [0,1] and optional depth (N,1,H,W) in [0,1] -> features (N, feature_dim)."""

    def __init__(self, use_depth: bool = True, crop_shape: tuple[int, int] | None = (76, 76),
                 channels: tuple[int, int, int] = (32, 64, 128), num_keypoints: int = 32, feature_dim: int = 64):
        super().__init__()
        self.use_depth = use_depth
        self.crop_shape = tuple(crop_shape) if crop_shape else None
        c0, c1, c2 = channels
        depth_ch = c0 // 2 if use_depth else 0
        self.rgb_stem = nn.Sequential(nn.Conv2d(3, c0, 3, 2, 1, bias=False), group_norm(c0), nn.ReLU())
        self.depth_stem = (nn.Sequential(nn.Conv2d(1, depth_ch, 3, 2, 1, bias=False), group_norm(depth_ch), nn.ReLU())
                           if use_depth else None)
        self.trunk = nn.Sequential(BasicBlock(c0 + depth_ch, c1, 2), BasicBlock(c1, c2, 2), BasicBlock(c2, c2, 1))
        self.keypoints = SpatialSoftmax(c2, num_keypoints)
        self.project = nn.Linear(2 * num_keypoints, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor:
        if self.use_depth and depth is None:
            raise ValueError("RGBDEncoder built with use_depth=True needs a depth image")
        x = torch.cat([rgb, depth], dim=1) if self.use_depth else rgb
        if self.crop_shape is not None:  # one crop for rgb and depth: they stay pixel-aligned
            x = crop_images(x, self.crop_shape, random=self.training)
        features = self.rgb_stem(x[:, :3])
        if self.use_depth:
            features = torch.cat([features, self.depth_stem(x[:, 3:4])], dim=1)
        return self.project(self.keypoints(self.trunk(features)))
