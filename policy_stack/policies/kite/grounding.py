"""KITE's grounding model: (image, instruction embedding) -> one keypoint heatmap over the image.

A small U-Net (trained from scratch here: no image weights are installable offline) with the frozen
sentence embedding applied by FiLM (per-channel scale and shift, as CLIPort/KITE multiply the language
feature in) at every decoder scale. The input is RGB, optionally with metric depth as a fourth
channel, plus two coordinate channels (CoordConv: a keypoint head must know where it is, and the
encoder's padding alone tells it poorly).

Heatmap losses (config `loss`):
  - "softmax_ce": spatial softmax over all pixels, cross-entropy against a Gaussian target that sums to 1
    (a distribution over where the keypoint is);
  - "bce": KITE's own: per-pixel sigmoid, binary cross-entropy against a Gaussian with peak 1.
Prediction (`decode_keypoint`): the argmax pixel, refined by a soft-argmax (softmax-weighted mean of
pixel coordinates) inside a small window around it, which gives sub-pixel estimates without being
pulled toward a second mode elsewhere in the image.

Pixel convention: (u, v) = (column, row) of the stored (upright) image, pixel centres at integers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("softmax_ce", "bce")


def _block(c_in: int, c_out: int) -> nn.Sequential:
    groups = 8 if c_out % 8 == 0 else 1
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU())


class FiLM(nn.Module):
    """x * (1 + gamma(text)) + beta(text): starts as the identity (zero-initialised projection)."""

    def __init__(self, text_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(text_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(text).chunk(2, dim=-1)
        return x * (1 + gamma[..., None, None]) + beta[..., None, None]


class GroundingUNet(nn.Module):
    """(B, C_in, H, W) image in [0,1] (+ depth), (B, text_dim) embedding -> (B, H, W) heatmap logits."""

    def __init__(self, in_channels: int = 3, channels: tuple[int, ...] = (16, 32, 64, 96), text_dim: int = 384,
                 text_hidden: int = 128, stem_stride: int = 2):
        super().__init__()
        self.in_channels = in_channels
        self.text_mlp = nn.Sequential(nn.Linear(text_dim, text_hidden), nn.SiLU())
        # A strided stem: the U-Net runs at 1/stem_stride resolution (4x fewer operations at stride 2,
        # what makes CPU training affordable) and its logits are upsampled bilinearly to the input size;
        # the soft-argmax refinement recovers sub-pixel positions.
        c_prev = in_channels + 2  # + coordinate channels
        self.stem = nn.Identity() if stem_stride == 1 else nn.Sequential(
            nn.Conv2d(c_prev, channels[0], 3, stride=stem_stride, padding=1), nn.SiLU())
        if stem_stride != 1:
            c_prev = channels[0]
        self.encoders = nn.ModuleList()
        for c in channels:
            self.encoders.append(_block(c_prev, c))
            c_prev = c
        self.bottleneck_film = FiLM(text_hidden, channels[-1])
        self.decoders = nn.ModuleList()
        self.films = nn.ModuleList()
        for c_skip in reversed(channels[:-1]):
            self.decoders.append(_block(c_prev + c_skip, c_skip))
            self.films.append(FiLM(text_hidden, c_skip))
            c_prev = c_skip
        self.head = nn.Conv2d(c_prev, 1, 1)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        b, _, h, w = image.shape
        ys = torch.linspace(-1, 1, h, device=image.device, dtype=image.dtype)
        xs = torch.linspace(-1, 1, w, device=image.device, dtype=image.dtype)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        x = self.stem(torch.cat([image, grid_x.expand(b, 1, h, w), grid_y.expand(b, 1, h, w)], dim=1))
        t = self.text_mlp(text)
        skips = []
        for i, enc in enumerate(self.encoders):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        x = self.bottleneck_film(skips.pop(), t)
        for dec, film in zip(self.decoders, self.films):
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = film(dec(torch.cat([x, skip], dim=1)), t)
        logits = self.head(x)
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        return logits[:, 0]


class GroundingEnsemble(nn.Module):
    """Several grounding U-Nets (e.g. two trainings) whose heatmap logits are summed: a product of their
    spatial distributions. forward() is the sum over all members; `members` gives each one."""

    def __init__(self, members: list[GroundingUNet]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.in_channels = members[0].in_channels

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return sum(m(image, text) for m in self.members)


# ---------------------------------------------------------------------------------- targets and loss
def gaussian_target(kp_uv: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """(B, 2) pixel (u, v) -> (B, H, W) Gaussian with peak 1 at the keypoint."""
    vs = torch.arange(h, device=kp_uv.device, dtype=torch.float32)
    us = torch.arange(w, device=kp_uv.device, dtype=torch.float32)
    du = us[None, None, :] - kp_uv[:, 0, None, None]
    dv = vs[None, :, None] - kp_uv[:, 1, None, None]
    return torch.exp(-(du ** 2 + dv ** 2) / (2.0 * sigma ** 2))


def heatmap_loss(logits: torch.Tensor, kp_uv: torch.Tensor, sigma: float, kind: str) -> torch.Tensor:
    """Mean loss over the batch; logits (B, H, W), kp_uv (B, 2)."""
    b, h, w = logits.shape
    target = gaussian_target(kp_uv, h, w, sigma)
    if kind == "softmax_ce":
        target = target / target.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        logp = F.log_softmax(logits.reshape(b, -1), dim=1)
        return -(target.reshape(b, -1) * logp).sum(1).mean()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    raise ValueError(f"heatmap loss {kind!r}: expected one of {LOSSES}")


def heatmap_probabilities(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, H, W) logits -> what a viewer shows: the spatial softmax (softmax_ce) or the sigmoid (bce),
    rescaled so each map's maximum is 1."""
    if kind == "softmax_ce":
        p = F.softmax(logits.reshape(logits.shape[0], -1), dim=1).reshape(logits.shape)
    else:
        p = torch.sigmoid(logits)
    return p / p.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def decode_keypoint(logits: torch.Tensor, window: int = 2) -> torch.Tensor:
    """(B, H, W) logits -> (B, 2) float (u, v): argmax, then soft-argmax over the (2*window+1)^2
    pixels around it (window=0: the plain argmax)."""
    b, h, w = logits.shape
    flat = logits.reshape(b, -1).argmax(1)
    v0, u0 = flat // w, flat % w
    if window <= 0:
        return torch.stack([u0, v0], 1).float()
    offsets = torch.arange(-window, window + 1, device=logits.device)
    vv = (v0[:, None] + offsets[None]).clamp(0, h - 1)         # (B, k)
    uu = (u0[:, None] + offsets[None]).clamp(0, w - 1)
    patch = logits[torch.arange(b)[:, None, None], vv[:, :, None], uu[:, None, :]]   # (B, k, k)
    weights = F.softmax(patch.reshape(b, -1).double(), dim=1).reshape(patch.shape)
    u = (weights * uu[:, None, :].double()).sum((1, 2))
    v = (weights * vv[:, :, None].double()).sum((1, 2))
    return torch.stack([u, v], 1).float()


def image_tensor(rgb: torch.Tensor, depth: torch.Tensor | None, depth_max_m: float) -> torch.Tensor:
    """uint8 (B, H, W, 3) [+ float (B, H, W) metres] -> float (B, 3|4, H, W) in [0, 1]."""
    x = rgb.permute(0, 3, 1, 2).float() / 255.0
    if depth is not None:
        d = torch.nan_to_num(depth.float(), nan=0.0, posinf=0.0, neginf=0.0).clamp(0.0, depth_max_m) / depth_max_m
        x = torch.cat([x, d[:, None]], dim=1)
    return x
