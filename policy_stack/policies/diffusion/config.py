"""DiffusionConfig: every knob of the Diffusion Policy family, JSON-serialisable (checkpoint config.json).

Defaults: low-dim Lift (To=2, Tp=16, Ta=8 as DP), a CPU-sized UNet (64, 128, 256) ≈ 4.5 M parameters
(~38 ms DDIM-10 torch, ~14 ms ONNX Runtime at batch 1 on 2 CPU cores: docs/background.md), DDIM-10 at
inference. Optimizer values follow DP's code (AdamW 1e-4, betas (0.95, 0.999), wd 1e-6).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from policy_stack.nn.ema import EMAConfig
from policy_stack.sampling import SAMPLERS

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class DiffusionConfig:
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
    n_action_steps: int = 8    # Ta, actions returned by act() (and the RTI shift per tick)

    # ---- noise predictor ----
    down_dims: tuple[int, ...] = (64, 128, 256)
    step_embed_dim: int = 128
    kernel_size: int = 5
    n_groups: int = 8

    # ---- diffusion / sampling ----
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    clip_sample: bool = True
    sampler: str = "ddim"                  # ddpm | ddim | rti
    sampler_steps: int | None = None       # ddpm/ddim network evaluations; None: ddpm 100, ddim 10
    rti_steps: int = 3                     # network evaluations per warm-started tick
    rti_start_level: int = 10              # K': noise level the warm start is treated as
    rti_step_mode: str = "jump"            # jump: posterior to the next listed level; paper: t -> t-1 (see sampling/samplers.py)
    rti_renoise: bool = False              # forward-diffuse the warm start to K' (not in the paper; see RTISampler)
    rti_timesteps: list[int] | None = None  # explicit level list (overrides the two above), e.g. [3, 1, 0]
    rti_initial_sampler: str = "ddim"      # first tick of an episode: full sample with this...
    rti_initial_steps: int = 10            # ...and this many steps (the paper uses ddpm/100)
    # RTI-DP-clip: discrete dims of the warm start set to ±1/factor (paper: 10 image, 1 low-dim); None = keep
    rti_discrete_factor: float | None = 1.0
    # RTI-DP-scale: discrete action dims divided by this in normalized space for training (paper: 10)
    discrete_action_scale: float = 1.0
    binarize_discrete: bool = True         # executed gripper commands are ±1 (action space low/high)

    # ---- training (read by the trainer) ----
    lr: float = 1e-4
    weight_decay: float = 1e-6
    adam_betas: tuple[float, float] = (0.95, 0.999)
    lr_warmup_steps: int = 500
    ema: EMAConfig = field(default_factory=EMAConfig)

    # ---- runtime ----
    device: str = "auto"                   # auto = cuda if available else cpu
    compile: bool = False                  # torch.compile the denoiser (first act() pays the compile)
    seed: int = 0                          # sampling noise generator seed (reset(seed) overrides)

    def __post_init__(self):
        if isinstance(self.ema, dict):
            self.ema = EMAConfig(**self.ema)
        self.down_dims = tuple(self.down_dims)
        self.image_shape = tuple(self.image_shape)
        self.crop_shape = tuple(self.crop_shape) if self.crop_shape else None
        self.vision_channels = tuple(self.vision_channels)
        self.adam_betas = tuple(self.adam_betas)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"DiffusionConfig.sampler {self.sampler!r} not in {SAMPLERS}")
        if self.rti_initial_sampler not in ("ddpm", "ddim"):
            raise ValueError(f"DiffusionConfig.rti_initial_sampler {self.rti_initial_sampler!r} not in ('ddpm', 'ddim')")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"DiffusionConfig.device {self.device!r} not in {DEVICES}")
        if self.n_obs_steps < 1 or self.horizon < 1 or self.n_action_steps < 1:
            raise ValueError("DiffusionConfig: n_obs_steps, horizon and n_action_steps must be >= 1")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise ValueError(f"DiffusionConfig: n_obs_steps-1+n_action_steps ({self.n_obs_steps - 1 + self.n_action_steps})"
                             f" exceeds horizon {self.horizon}")
        factor = 2 ** (len(self.down_dims) - 1)
        if self.horizon % factor:
            raise ValueError(f"DiffusionConfig.horizon {self.horizon} must be divisible by {factor} "
                             f"for {len(self.down_dims)} down_dims")
        if any(d % self.n_groups for d in self.down_dims):
            raise ValueError(f"DiffusionConfig.down_dims {self.down_dims} must be multiples of n_groups {self.n_groups}")
        if self.crop_shape and any(c > s for c, s in zip(self.crop_shape, self.image_shape)):
            raise ValueError(f"DiffusionConfig.crop_shape {self.crop_shape} larger than image_shape {self.image_shape}")
        if not self.lowdim_keys and not self.cameras:
            raise ValueError("DiffusionConfig needs at least one low-dim key or camera")
        if self.discrete_action_scale <= 0:
            raise ValueError("DiffusionConfig.discrete_action_scale must be > 0")
