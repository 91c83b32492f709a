"""Training-run configuration: one dataclass, JSON round-trip, stored with every snapshot so a resumed
run can check it is continuing the same experiment."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

# Fields that may differ between the killed run and its resume without invalidating the state
# (where to log, how often to evaluate, how many loader workers, the step budget to reach).
RESUME_MUTABLE = {"out", "steps", "eval_every", "eval_episodes", "eval_workers", "workers", "log_every",
                  "ckpt_every", "keep", "progress", "device", "env", "eval_max_steps", "resume",
                  "find_unused_parameters", "time_budget_s"}

OBS_MODES = ("lowdim", "rgbd", "rgb")


@dataclass
class TrainConfig:
    policy: str = "diffusion"            # policy family for make_policy: diffusion | ebt
    data: str = ""                       # LeRobot v3 dataset root
    out: str = ""                        # output folder (checkpoint + tb/ + snapshots)
    obs: str = "lowdim"                  # lowdim | rgbd | rgb: which observation keys the policy gets
    cameras: list = field(default_factory=lambda: ["agentview", "robot0_eye_in_hand"])
    lowdim_keys: list = field(default_factory=list)   # [] = every low-dim key the dataset has
    steps: int = 20000                   # optimizer steps (summed over ranks they are the same steps)
    # Wall-clock budget for the optimizer loop in seconds (0 = none). The trainer times its first
    # steps (inside the LR warmup, whose LR does not depend on the total) and then lowers `steps` so
    # the run, cosine decay included, ends inside the budget: "train as well as you can in 2 hours".
    time_budget_s: float = 0.0
    batch: int = 256                     # per-rank batch size (DP: 256 state, 64 image)
    # Optimizer: None = the policy config's value (its optimizer_preset(); DP: AdamW 1e-4, betas
    # (0.95, 0.999), wd 1e-6, warmup 500, no clipping; EBT clips at 1.0; docs/background.md). A value
    # given here is written into the policy config, so the checkpoint states what the training ran with.
    # Cosine decay to 0 at `steps` after the warmup.
    lr: float | None = None
    betas: list | None = None
    weight_decay: float | None = None
    warmup: int | None = None
    grad_clip: float | None = None       # max gradient norm, 0 = off
    seed: int = 0
    ckpt_every: int = 1000
    keep: int = 2                        # snapshots kept under OUT/checkpoints
    eval_every: int = 0                  # 0 = only the final evaluation (when an env is known)
    eval_episodes: int = 10
    eval_workers: int = 1
    eval_max_steps: int = 0              # 0 = env default horizon
    env: str | None = None               # env for rollouts; None = from dataset metadata if present
    workers: int = 0                     # DataLoader worker processes
    log_every: int = 10
    device: str = "auto"                 # auto | cpu | cuda
    find_unused_parameters: bool = False # DDP: set for policies whose loss skips some weights
    progress: bool = True
    resume: str = "auto"                 # auto: continue if OUT holds a run | never: refuse non-empty OUT
    policy_overrides: dict = field(default_factory=dict)   # policy config fields (--set key=value)
    init: str = ""                       # fine-tune: start from this checkpoint's weights and normalization

    def __post_init__(self):
        if self.obs not in OBS_MODES:
            raise ValueError(f"--obs {self.obs!r}: choose from {OBS_MODES}")
        if self.steps < 1 or self.batch < 1:
            raise ValueError(f"--steps ({self.steps}) and --batch ({self.batch}) must be >= 1")
        if self.resume not in ("auto", "never"):
            raise ValueError(f"resume mode {self.resume!r}: choose auto or never")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def incompatible_with(self, saved: dict) -> list[str]:
        """Fields that changed in a way that makes resuming wrong (e.g. another policy or dataset)."""
        mine = json.loads(json.dumps(self.to_dict()))  # tuples -> lists, as in the saved JSON
        return [k for k, v in mine.items() if k not in RESUME_MUTABLE and k in saved and saved[k] != v]
