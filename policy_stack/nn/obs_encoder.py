"""Observation encoder: normalized histories {key: (B, To, ...)} -> global condition (B, To * per_step_dim).

Per time step: concatenated low-dim features (plain + derived, already normalized by ObsPreprocessor)
followed by one RGBDEncoder feature vector per camera. Features are computed once per decision, not
once per denoising step (DP §3.2).
"""
from __future__ import annotations

import torch
from torch import nn

from policy_stack.nn.preprocess import depth_key, rgb_key
from policy_stack.nn.vision import RGBDEncoder


class ObservationEncoder(nn.Module):
    def __init__(self, lowdim_dims: dict[str, int], n_obs_steps: int, cameras: list[str] = (),
                 use_depth: bool = True, crop_shape: tuple[int, int] | None = (76, 76),
                 vision_channels: tuple[int, int, int] = (32, 64, 128), num_keypoints: int = 32,
                 camera_feature_dim: int = 64):
        super().__init__()
        self.lowdim_keys = list(lowdim_dims)
        self.lowdim_dim = sum(lowdim_dims.values())
        self.cameras = list(cameras)
        self.use_depth = use_depth
        self.n_obs_steps = n_obs_steps
        self.camera_encoders = nn.ModuleDict({
            cam: RGBDEncoder(use_depth, crop_shape, vision_channels, num_keypoints, camera_feature_dim)
            for cam in self.cameras})
        self.per_step_dim = self.lowdim_dim + len(self.cameras) * camera_feature_dim
        self.output_dim = n_obs_steps * self.per_step_dim

    @property
    def input_keys(self) -> list[str]:
        """Fixed input order, used by ONNX export (positional inputs)."""
        keys = list(self.lowdim_keys)
        for cam in self.cameras:
            keys.append(rgb_key(cam))
            if self.use_depth:
                keys.append(depth_key(cam))
        return keys

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [obs[k] for k in self.lowdim_keys]
        batch, steps = parts[0].shape[:2] if parts else obs[rgb_key(self.cameras[0])].shape[:2]
        for cam, encoder in self.camera_encoders.items():
            rgb = obs[rgb_key(cam)].flatten(0, 1)
            depth = obs[depth_key(cam)].flatten(0, 1) if self.use_depth else None
            parts.append(encoder(rgb, depth).reshape(batch, steps, -1))
        return torch.cat(parts, dim=-1).reshape(batch, -1)


class PositionalObservationEncoder(nn.Module):
    """ObservationEncoder with positional inputs in `input_keys` order (what ONNX export needs)."""

    def __init__(self, encoder: ObservationEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.encoder(dict(zip(self.encoder.input_keys, inputs)))
