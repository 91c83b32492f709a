"""DDPM noise schedule and the two reverse-step rules (DDPM posterior, deterministic DDIM).

Matches diffusers' DDPMScheduler/DDIMScheduler as Diffusion Policy configures them:
num_train_timesteps=100, squaredcos_cap_v2 betas, epsilon prediction, fixed_small variance,
clip_sample=True (x0 estimate clipped to [-1, 1]), DDIM with set_alpha_to_one=True, steps_offset=0.
"""
from __future__ import annotations

import math

import torch

BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")


class NoiseSchedule:
    def __init__(self, num_train_timesteps: int = 100, beta_schedule: str = "squaredcos_cap_v2",
                 beta_start: float = 1e-4, beta_end: float = 0.02, clip_sample: bool = True):
        if beta_schedule == "squaredcos_cap_v2":
            betas = _betas_for_alpha_bar(num_train_timesteps)
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        else:
            raise ValueError(f"beta_schedule {beta_schedule!r} not in {BETA_SCHEDULES}")
        self.num_train_timesteps = num_train_timesteps
        self.clip_sample = clip_sample
        # float64 for the products, stored as float32 like diffusers
        self.betas = betas.to(torch.float32)
        self.alphas = (1.0 - betas).to(torch.float32)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).to(torch.float32)

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t, with ᾱ_{-1} = 1 (a fully denoised sample)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Forward process q(x_t | x_0): sqrt(ᾱ_t) x0 + sqrt(1-ᾱ_t) ε, timesteps (B,) int."""
        ab = self.alphas_cumprod.to(x0.device)[timesteps].to(x0.dtype)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return ab.sqrt().reshape(shape) * x0 + (1.0 - ab).sqrt().reshape(shape) * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        ab = self.alpha_bar(t)
        x0 = (x_t - math.sqrt(1.0 - ab) * eps) / math.sqrt(ab)
        return x0.clamp(-1.0, 1.0) if self.clip_sample else x0

    def ddpm_step(self, x_t: torch.Tensor, eps: torch.Tensor, t: int, prev_t: int,
                  noise: torch.Tensor | None) -> torch.Tensor:
        """Posterior sample x_{prev_t} ~ q(x_prev | x_t, x0_hat) (fixed_small variance); no noise at t == 0."""
        ab_t, ab_prev = self.alpha_bar(t), self.alpha_bar(prev_t)
        beta_prod_t, beta_prod_prev = 1.0 - ab_t, 1.0 - ab_prev
        current_alpha = ab_t / ab_prev
        current_beta = 1.0 - current_alpha
        x0 = self.predict_x0(x_t, eps, t)
        mean = (math.sqrt(ab_prev) * current_beta / beta_prod_t) * x0 \
            + (math.sqrt(current_alpha) * beta_prod_prev / beta_prod_t) * x_t
        if t > 0 and noise is not None:
            variance = max(beta_prod_prev / beta_prod_t * current_beta, 1e-20)
            mean = mean + math.sqrt(variance) * noise
        return mean

    def ddim_step(self, x_t: torch.Tensor, eps: torch.Tensor, t: int, prev_t: int) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) jump t -> prev_t, reusing the network's ε (diffusers' default)."""
        ab_prev = self.alpha_bar(prev_t)
        x0 = self.predict_x0(x_t, eps, t)
        return math.sqrt(ab_prev) * x0 + math.sqrt(1.0 - ab_prev) * eps


def _betas_for_alpha_bar(num_steps: int, max_beta: float = 0.999) -> torch.Tensor:
    """iDDPM squared-cosine schedule ('squaredcos_cap_v2')."""
    def alpha_bar(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta) for i in range(num_steps)]
    return torch.tensor(betas, dtype=torch.float64)
