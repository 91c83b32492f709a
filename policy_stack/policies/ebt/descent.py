"""Energy descent on the action chunk: EBT's "thinking" loop, for inference and for training.

One step (Nesterov momentum, energy-scaled step, as EBT-Policy's `_energy_step`):
    look = x + mu * v                       # Nesterov look-ahead
    E    = energy(cond, look)               # (B,)
    g    = dE/d look
    u    = alpha * exp(min(E, e_max)) / T_E * g      # energy-scaled step, per sample
    u    = c * tanh(u / c)                  # soft per-element cap (EBT's max_change clamp, kept differentiable)
    v    = mu * v - u;   x = x + v

Training (`unroll`) adds cosine-annealed Langevin noise before each step, randomises alpha per sample
and the number of steps, and keeps the graph of dE/da (create_graph=True) so the reconstruction loss on
each step's output trains the energy's gradient field. Between steps the iterate and velocity are
detached by default (as the reference code does), so memory does not grow with the number of steps and a
step's loss never back-propagates through earlier, noisier steps (docs/background.md).

Inference (`optimize`) runs without create_graph, clamps every iterate to [-1, 1], and stops early when
every sample's gradient norm or energy change falls below a threshold (EBT's dynamic compute).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

EnergyFn = Callable[[torch.Tensor], torch.Tensor]   # actions (B, Tp, A) -> energies (B,)


def langevin_sigma(step: int, n_steps: int, sigma_min: float, sigma_max: float) -> float:
    """Cosine annealing from sigma_max (step 0) towards sigma_min (EBT-Policy's scheduler)."""
    return sigma_min + 0.5 * (sigma_max - sigma_min) * (1.0 + math.cos(math.pi * step / max(n_steps, 1)))


@dataclass
class DescentTrace:
    actions: torch.Tensor                     # final iterate (B, Tp, A)
    predictions: list[torch.Tensor] = field(default_factory=list)   # output of every step (training: graph kept)
    energies: list[torch.Tensor] = field(default_factory=list)      # E at each step's look-ahead point (B,)
    grad_norms: list[torch.Tensor] = field(default_factory=list)    # ||dE/da|| per sample at each step (B,)
    steps: int = 0
    stopped_early: bool = False
    nonfinite: bool = False


class EnergyDescent(nn.Module):
    """Holds the (learnable) step size, so alpha is a real parameter: optimised, EMA'd and checkpointed.

    (In EBT-Policy alpha lived outside `self.nets`, so `mcmc_step_size_learnable` silently did nothing.)"""

    def __init__(self, step_size: float, learnable: bool, energy_temp: float, energy_exp_max: float,
                 max_step_change: float, momentum: float):
        super().__init__()
        # log-parametrised: alpha stays positive without EBT's clamp(min=1e-4), which kills its gradient
        self.log_step_size = nn.Parameter(torch.tensor(math.log(step_size)), requires_grad=learnable)
        self.energy_temp, self.energy_exp_max = float(energy_temp), float(energy_exp_max)
        self.max_step_change, self.momentum = float(max_step_change), float(momentum)

    @property
    def step_size(self) -> torch.Tensor:
        return self.log_step_size.exp()

    def _step(self, energy_fn: EnergyFn, x: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor,
              create_graph: bool):
        look = x + self.momentum * v
        if not look.requires_grad:           # inference / detached start: differentiate w.r.t. the look point
            look = look.detach().requires_grad_(True)
        energy = energy_fn(look)
        (grad,) = torch.autograd.grad(energy.sum(), look, create_graph=create_graph)
        scale = alpha * torch.exp(energy.clamp(max=self.energy_exp_max)) / self.energy_temp   # (B,)
        update = scale[:, None, None] * grad
        c = self.max_step_change
        update = c * torch.tanh(update / c)
        v = self.momentum * v - update
        return x + v, v, energy, grad

    # ---- inference ---------------------------------------------------------------------------------
    def optimize(self, energy_fn: EnergyFn, x0: torch.Tensor, max_steps: int, min_grad: float,
                 min_energy_delta: float) -> DescentTrace:
        x = x0.detach().clamp(-1.0, 1.0)
        v = torch.zeros_like(x)
        alpha = self.step_size.detach()
        trace = DescentTrace(actions=x)
        prev_energy = None
        with torch.enable_grad():            # the solver needs gradients even when the caller is in no_grad
            for _ in range(max_steps):
                x_new, v_new, energy, grad = self._step(energy_fn, x, v, alpha, create_graph=False)
                energy, grad = energy.detach(), grad.detach()
                if not (torch.isfinite(grad).all() and torch.isfinite(x_new).all()):
                    trace.nonfinite = True    # keep the last finite iterate rather than emit NaN to a robot
                    break
                x, v = x_new.detach().clamp(-1.0, 1.0), v_new.detach()
                trace.steps += 1
                gnorm = grad.flatten(1).norm(dim=1)
                trace.energies.append(energy)
                trace.grad_norms.append(gnorm)
                if bool((gnorm < min_grad).all()) or (
                        prev_energy is not None and bool(((energy - prev_energy).abs() < min_energy_delta).all())):
                    trace.stopped_early = trace.steps < max_steps
                    break
                prev_energy = energy
        trace.actions = x
        return trace

    # ---- training ----------------------------------------------------------------------------------
    def unroll(self, energy_fn: EnergyFn, x0: torch.Tensor, n_steps: int, sigma_min: float, sigma_max: float,
               step_size_random_scale: float, detach_between_steps: bool) -> DescentTrace:
        B = x0.shape[0]
        x, v = x0.detach(), torch.zeros_like(x0)
        s = float(step_size_random_scale)
        trace = DescentTrace(actions=x)
        for i in range(n_steps):
            alpha = self.step_size.expand(B)
            if s != 1.0:   # per-sample alpha ~ U[alpha/s, alpha*s]: robustness to the step size (EBT)
                alpha = alpha * (1.0 / s + torch.rand(B, device=x.device) * (s - 1.0 / s))
            sigma = langevin_sigma(i, n_steps, sigma_min, sigma_max)
            if detach_between_steps:
                x, v = x.detach(), v.detach()
                # start each step inside the box inference works in; the Langevin kick explores around it
                x = (x.clamp(-1.0, 1.0) + sigma * torch.randn_like(x)).requires_grad_(True)
            else:
                x = x + sigma * torch.randn_like(x)
            x, v, energy, grad = self._step(energy_fn, x, v, alpha, create_graph=True)
            if not torch.isfinite(grad).all():
                raise FloatingPointError(f"EBT: non-finite energy gradient at descent step {i}")
            trace.predictions.append(x)
            trace.energies.append(energy)
            trace.grad_norms.append(grad.detach().flatten(1).norm(dim=1))
            trace.steps += 1
        trace.actions = x
        return trace
