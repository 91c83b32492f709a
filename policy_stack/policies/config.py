"""PolicyConfig: the fields every chunk-predicting family shares, and its optimizer preset.

Diffusion and EBT configs subclass it and add only their own network and sampling knobs, so the
trainer, the CLI and the checkpoint code read observations, horizons, training and runtime settings by
the same names for every family. The training settings belong to the policy config: the trainer reads
them through `optimizer_preset()` (as LeRobot's `get_optimizer_preset()`), and CLI flags override
them by writing the config field (so a checkpoint states what its training ran with).
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field

import torch

from policy_stack.nn.ema import EMAConfig

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class OptimizerPreset:
    """AdamW with linear warmup then cosine decay to 0 (train/schedule.py), gradient-norm clipping."""
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    warmup_steps: int
    grad_clip: float            # max global gradient norm; 0 = off

    def build(self, params) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)


@dataclass
class PolicyConfig:
    # ---- observations ----
    lowdim_keys: list[str] = field(default_factory=lambda: [
        "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "cube_pos"])
    # "a-b" = a minus b, computed in preprocessing from published keys (gripper-to-object vector)
    derived_features: list[str] = field(default_factory=lambda: ["robot0_eef_pos-cube_pos"])
    cameras: list[str] = field(default_factory=list)      # e.g. ["agentview", "robot0_eye_in_hand"]
    use_depth: bool = True                                 # each camera also feeds <cam>_depth
    image_shape: tuple[int, int] = (84, 84)                # camera images are resized to this (H, W)
    crop_shape: tuple[int, int] | None = (76, 76)          # random crop in training, center crop at eval
    depth_max_m: float = 2.0                               # depth clipped to [0, depth_max_m] then scaled to [0, 1]
    vision_channels: tuple[int, int, int] = (32, 64, 128)
    num_keypoints: int = 32
    camera_feature_dim: int = 64

    # ---- horizons ----
    n_obs_steps: int = 2       # To
    horizon: int = 16          # Tp, predicted chunk length
    n_action_steps: int = 8    # Ta, actions returned by act() (and the warm-start shift per tick)

    binarize_discrete: bool = True         # executed gripper commands are ±1 (action space low/high)

    # ---- training (read by the trainer through optimizer_preset()) ----
    lr: float = 1e-4
    weight_decay: float = 1e-6
    adam_betas: tuple[float, float] = (0.95, 0.999)
    lr_warmup_steps: int = 500
    grad_clip: float = 0.0                 # max gradient norm, 0 = off
    ema: EMAConfig = field(default_factory=EMAConfig)

    # ---- runtime ----
    device: str = "auto"                   # auto = cuda if available else cpu
    seed: int = 0                          # sampling noise generator seed (reset(seed) overrides)

    def optimizer_preset(self) -> OptimizerPreset:
        return OptimizerPreset(lr=float(self.lr), betas=tuple(self.adam_betas), weight_decay=float(self.weight_decay),
                               warmup_steps=int(self.lr_warmup_steps), grad_clip=float(self.grad_clip))

    # Upper bounds of the size fields, checked before anything is built: a config (e.g. a checkpoint's
    # config.json) asking for a 1e9-wide layer must fail in one line, not allocate 140 GB. Generous:
    # ten to a hundred times the largest published Diffusion Policy / EBT-Policy sizes.
    SIZE_LIMITS = {"n_obs_steps": 64, "horizon": 1024, "n_action_steps": 1024, "num_keypoints": 1024,
                   "camera_feature_dim": 8192, "vision_channels": 8192, "image_shape": 4096, "crop_shape": 4096,
                   "lr_warmup_steps": 10_000_000}

    def check_sizes(self) -> None:
        """Every size field (and every entry of a size tuple) an int in [1, its limit]; ValueError naming it."""
        for field_name, limit in self.SIZE_LIMITS.items():
            value = getattr(self, field_name, None)
            if value is None:
                continue
            values = value if isinstance(value, (tuple, list)) else (value,)
            lo = 0 if field_name == "lr_warmup_steps" else 1
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= limit:
                    raise ValueError(f"{type(self).__name__}.{field_name} = {value!r}: each value must be an "
                                     f"integer in [{lo}, {limit}]")
        for field_name in ("lr", "weight_decay", "grad_clip", "depth_max_m"):
            v = getattr(self, field_name, None)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"{type(self).__name__}.{field_name} = {v!r} must be a finite number")

    def __post_init__(self):
        name = type(self).__name__
        if isinstance(self.ema, dict):
            self.ema = EMAConfig(**self.ema)
        self.image_shape = tuple(self.image_shape)
        self.crop_shape = tuple(self.crop_shape) if self.crop_shape else None
        self.vision_channels = tuple(self.vision_channels)
        self.adam_betas = tuple(self.adam_betas)
        self.check_sizes()
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"{name}.device {self.device!r} not in {DEVICES}")
        if self.n_obs_steps < 1 or self.horizon < 1 or self.n_action_steps < 1:
            raise ValueError(f"{name}: n_obs_steps, horizon and n_action_steps must be >= 1")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise ValueError(f"{name}: n_obs_steps-1+n_action_steps ({self.n_obs_steps - 1 + self.n_action_steps})"
                             f" exceeds horizon {self.horizon}")
        if self.crop_shape and any(c > s for c, s in zip(self.crop_shape, self.image_shape)):
            raise ValueError(f"{name}.crop_shape {self.crop_shape} larger than image_shape {self.image_shape}")
        if not self.lowdim_keys and not self.cameras:
            raise ValueError(f"{name} needs at least one low-dim key or camera")
        if self.grad_clip < 0:
            raise ValueError(f"{name}.grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
