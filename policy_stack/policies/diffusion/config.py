"""DiffusionConfig: every knob of the Diffusion Policy family, JSON-serialisable (checkpoint config.json).

Defaults: low-dim Lift (To=2, Tp=16, Ta=8 as DP), a CPU-sized UNet (64, 128, 256) ≈ 4.5 M parameters
(~38 ms DDIM-10 torch, ~14 ms ONNX Runtime at batch 1 on 2 CPU cores: docs/background.md), DDIM-10 at
inference. Optimizer values follow DP's code (AdamW 1e-4, betas (0.95, 0.999), wd 1e-6, no gradient
clipping): PolicyConfig's defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from policy_stack.policies.config import PolicyConfig
from policy_stack.denoising import SAMPLERS


@dataclass
class DiffusionConfig(PolicyConfig):
    # observation, horizon, training and runtime fields: PolicyConfig

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
    rti_step_mode: str = "jump"            # jump: posterior to the next listed level; paper: t -> t-1 (see denoising/samplers.py)
    rti_renoise: bool = False              # forward-diffuse the warm start to K' (not in the paper; see RTISampler)
    rti_timesteps: list[int] | None = None  # explicit level list (overrides the two above), e.g. [3, 1, 0]
    rti_initial_sampler: str = "ddim"      # first tick of an episode: full sample with this...
    rti_initial_steps: int = 10            # ...and this many steps (the paper uses ddpm/100)
    # RTI-DP-clip: discrete dims of the warm start set to ±1/factor (paper: 10 image, 1 low-dim); None = keep
    rti_discrete_factor: float | None = 1.0
    # RTI-DP-scale: discrete action dims divided by this in normalized space for training (paper: 10)
    discrete_action_scale: float = 1.0

    # ---- language conditioning (diffusion/language.py) ----
    # the instruction (obs["instruction"]; a dataset's task string) enters as extra global conditioning
    # through the frozen MiniLM sentence embedding; instruction_vocab = the training instructions, whose
    # embeddings the checkpoint stores (the trainer fills it from the dataset's tasks)
    language_conditioning: bool = False
    instruction_vocab: list[str] = field(default_factory=list)
    language_dim: int = 64                 # the embedding's projection before fusion
    language_hidden: int = 256             # fusion MLP width (added to the global condition)

    # ---- runtime (besides PolicyConfig's device and seed) ----
    compile: bool = False                  # torch.compile the denoiser (first act() pays the compile)

    # Fields added after checkpoints were first written: a checkpoint from before them may omit them, and
    # their defaults are the behaviour it was trained with (no language input).
    LATER_FIELDS = frozenset({"language_conditioning", "instruction_vocab", "language_dim", "language_hidden"})

    SIZE_LIMITS = {**PolicyConfig.SIZE_LIMITS, "down_dims": 8192, "step_embed_dim": 8192, "kernel_size": 31,
                   "n_groups": 1024, "num_train_timesteps": 10_000, "language_dim": 8192,
                   "language_hidden": 8192}

    def __post_init__(self):
        self.down_dims = tuple(self.down_dims)
        super().__post_init__()
        if self.sampler not in SAMPLERS:
            raise ValueError(f"DiffusionConfig.sampler {self.sampler!r} not in {SAMPLERS}")
        if self.rti_initial_sampler not in ("ddpm", "ddim"):
            raise ValueError(f"DiffusionConfig.rti_initial_sampler {self.rti_initial_sampler!r} not in ('ddpm', 'ddim')")
        factor = 2 ** (len(self.down_dims) - 1)
        if self.horizon % factor:
            raise ValueError(f"DiffusionConfig.horizon {self.horizon} must be divisible by {factor} "
                             f"for {len(self.down_dims)} down_dims")
        if any(d % self.n_groups for d in self.down_dims):
            raise ValueError(f"DiffusionConfig.down_dims {self.down_dims} must be multiples of n_groups {self.n_groups}")
        if self.discrete_action_scale <= 0:
            raise ValueError("DiffusionConfig.discrete_action_scale must be > 0")
