"""EBTConfig: every knob of the EBT-Policy family, JSON-serialisable (checkpoint config.json).

Observation, horizon, training and runtime fields come from PolicyConfig, shared with DiffusionConfig,
so the trainer, CLI and checkpoint code treat both families alike.

Algorithm defaults follow EBT-Policy's paper-time config (ZhiChengAIR/benchmarks @ c5f5464, docs/background.md):
To/Tp/Ta 2/16/8, Nesterov mu 0.9, Langevin sigma 0.2 -> 0.002, step-size randomisation x1.5, 2 inference
steps, gradient clipping 1.0. Sizes are shrunk for CPU (d_model 128 and 2 decoder layers instead of
256 and 8; 3+U{0..2} training steps instead of 6+U{0..4}). The step size alpha differs from the paper's
1000 because alpha only matters times exp(E) and the gradient scale of this network; 10 gives energies
near 0 at the operating point (measured on a toy task), far from the exp cap.
"""
from __future__ import annotations

from dataclasses import dataclass

from policy_stack.policies.config import PolicyConfig


@dataclass
class EBTConfig(PolicyConfig):
    # observation, horizon, training and runtime fields: PolicyConfig

    # ---- energy network ----
    d_model: int = 128
    n_layers: int = 2          # action decoder blocks (self-attn + cross-attn to the obs tokens + MLP)
    obs_layers: int = 1        # temporal self-attention blocks over the To observation tokens
    n_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0       # paper: attention dropout 0.3 on image tasks

    # ---- energy descent (training and inference) ----
    step_size: float = 10.0            # alpha at init; the step is alpha * exp(E) / energy_temp * dE/da
    step_size_learnable: bool = True   # alpha is a module parameter (optimizer, EMA, checkpoint)
    energy_temp: float = 1.0           # T_E
    energy_exp_max: float = 5.0        # exp(E) uses min(E, this), so the energy-scaled step cannot explode
    max_step_change: float = 0.5       # soft per-element cap on one update (normalized units): c*tanh(u/c)
    momentum: float = 0.9              # Nesterov mu

    # ---- training through the unrolled optimization ----
    train_steps: int = 3               # descent steps per sample (paper: 6) ...
    train_steps_random: int = 2        # ... plus U{0..this} (paper: 4)
    step_size_random_scale: float = 1.5   # per-sample alpha ~ U[alpha/s, alpha*s]
    langevin_sigma_max: float = 0.2    # cosine-annealed noise added before each step: step 0 ...
    langevin_sigma_min: float = 0.002  # ... -> last step
    detach_between_steps: bool = True  # True: each step's loss trains only that step (reference code)
    loss_every_step: bool = True       # mean reconstruction over all steps; False: the final step only

    # ---- inference ----
    infer_steps: int = 2               # cap on descent steps per act()/sample() (paper-time json: 2)
    min_grad: float = 1e-3             # early stop when every sample's ||dE/da|| is below this ...
    min_energy_delta: float = 1e-4     # ... or every sample's |E_i - E_(i-1)| is
    warm_start: bool = True            # act(): start from the previous chunk shifted by Ta (RTI), else noise

    # ---- training: PolicyConfig's, but EBT-Policy clips gradients at 1.0 (second-order terms make
    # spikes likely) ----
    grad_clip: float = 1.0

    SIZE_LIMITS = {**PolicyConfig.SIZE_LIMITS, "d_model": 8192, "n_layers": 64, "obs_layers": 64, "n_heads": 128,
                   "train_steps": 100, "infer_steps": 100}

    def __post_init__(self):
        super().__post_init__()
        if self.d_model % self.n_heads:
            raise ValueError(f"EBTConfig.d_model {self.d_model} not divisible by n_heads {self.n_heads}")
        if self.infer_steps < 1 or self.train_steps < 1 or self.train_steps_random < 0:
            raise ValueError("EBTConfig: infer_steps and train_steps must be >= 1, train_steps_random >= 0")
        for name in ("step_size", "energy_temp", "max_step_change", "step_size_random_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EBTConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.step_size_random_scale < 1:
            raise ValueError("EBTConfig.step_size_random_scale must be >= 1")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"EBTConfig.momentum must be in [0, 1), got {self.momentum}")
