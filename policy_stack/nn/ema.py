"""Exponential moving average of a model's weights (Diffusion Policy's `EMAModel`).

decay(step) = clamp(1 - (1 + step / inv_gamma) ** -power, min_value, max_value), 0 for step <= 0:
power 3/4 reaches 0.999 at 10k steps and 0.9999 at 215k. Non-floating buffers are copied, not
averaged. Inference and checkpoints use the averaged copy.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class EMAConfig:
    inv_gamma: float = 1.0
    power: float = 0.75
    min_value: float = 0.0
    max_value: float = 0.9999
    update_after_step: int = 0


class EMAModel:
    """Holds `averaged`, a frozen deep copy of the model; call `step(model)` after each optimizer step."""

    def __init__(self, model: nn.Module, config: EMAConfig | None = None):
        self.config = config or EMAConfig()
        self.averaged = copy.deepcopy(model).eval().requires_grad_(False)
        self.optimization_step = 0

    def decay(self, optimization_step: int) -> float:
        c = self.config
        step = max(0, optimization_step - c.update_after_step - 1)
        if step <= 0:
            return 0.0
        value = 1.0 - (1.0 + step / c.inv_gamma) ** -c.power
        return max(c.min_value, min(value, c.max_value))

    @torch.no_grad()
    def step(self, model: nn.Module) -> None:
        decay = self.decay(self.optimization_step)
        averaged = dict(self.averaged.named_parameters())
        for name, param in model.named_parameters():
            target = averaged[name]
            if param.requires_grad and param.is_floating_point():
                target.mul_(decay).add_(param.detach(), alpha=1.0 - decay)
            else:
                target.copy_(param.detach())
        averaged_buffers = dict(self.averaged.named_buffers())
        for name, buf in model.named_buffers():
            averaged_buffers[name].copy_(buf)
        self.optimization_step += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensors (safetensors-friendly): averaged weights plus the step counter."""
        out = {f"ema.{k}": v.detach().clone() for k, v in self.averaged.state_dict().items()}
        out["ema_optimization_step"] = torch.tensor(self.optimization_step, dtype=torch.int64)
        return out

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        weights = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
        self.averaged.load_state_dict(weights)
        self.optimization_step = int(tensors["ema_optimization_step"])
