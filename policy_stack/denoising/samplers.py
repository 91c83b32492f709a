"""Reverse-diffusion samplers over a denoiser `eps_fn(x, t, cond) -> ε` (torch or ONNX Runtime behind it).

- DDPMSampler: ancestral sampling over `num_steps` evenly spaced levels (100 = full DP).
- DDIMSampler: deterministic DDIM with `num_steps` network evaluations.
- RTISampler: RTI-DP warm start (Duan et al. 2025; docs/background.md). The previous chunk,
  shifted by the executed steps and padded with its last action, is used AS x_{K'} without re-noising
  (the paper's code never adds the noise it builds); each listed level t then gets one DDPM posterior
  step t -> t-1 (so the level list is the set of noise levels the network sees, as in the paper code with
  diffusers' step ratio 1). The first call of an episode (or after reset) runs the full `initial`
  sampler instead.

Noise is drawn on the CPU from the caller's torch.Generator and then moved to the device, so a seed
gives the same samples on CPU, CUDA and ONNX Runtime backends.
"""
from __future__ import annotations

import abc
from typing import Callable

import torch

from policy_stack.denoising.schedule import NoiseSchedule

EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
SAMPLERS = ("ddpm", "ddim", "rti")


def randn(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)


def evenly_spaced_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """diffusers' set_timesteps (leading spacing, steps_offset=0): e.g. 100/10 -> [90, 80, ..., 0]."""
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"num_steps must be in [1, {num_train_timesteps}], got {num_steps}")
    ratio = num_train_timesteps // num_steps
    return [i * ratio for i in reversed(range(num_steps))]


RTI_STEP_MODES = ("jump", "paper")


def rti_timesteps(start_level: int, steps: int, step_mode: str = "paper") -> list[int]:
    """Noise levels for `steps` RTI network evaluations starting at K' = start_level, ending at 0.

    paper: evenly spaced from K' down to 1, then 0: (3, 3) -> [3, 1, 0], (7, 5) -> [7, 5, 3, 1, 0], the
    paper's lists for Lift/Can. jump: evenly spaced from K' down to 0: (10, 3) -> [10, 5, 0].
    steps == 1 gives [0] (a single x0 estimate from the guess)."""
    if steps < 1:
        raise ValueError(f"rti steps must be >= 1, got {steps}")
    if step_mode not in RTI_STEP_MODES:
        raise ValueError(f"rti step mode {step_mode!r} not in {RTI_STEP_MODES}")
    if steps == 1:
        return [0]
    if step_mode == "jump":
        if start_level < steps - 1:
            raise ValueError(f"rti start level {start_level} too low for {steps} distinct levels")
        return sorted({round(start_level * (1 - i / (steps - 1))) for i in range(steps)}, reverse=True)
    if start_level < steps - 1:
        raise ValueError(f"rti start level {start_level} too low for {steps} distinct levels")
    if steps == 2:
        return [start_level, 0]
    span = start_level - 1
    return [round(start_level - i * span / (steps - 2)) for i in range(steps - 1)] + [0]


class Sampler(abc.ABC):
    name: str

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    @property
    @abc.abstractmethod
    def timesteps(self) -> list[int]:
        """Levels at which the network is evaluated (one evaluation each)."""

    def reset(self) -> None:
        """New episode (stateless samplers: nothing to do)."""

    @abc.abstractmethod
    def sample(self, eps_fn: EpsFn, cond: torch.Tensor, shape: tuple[int, ...],
               generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch of clean samples (shape) conditioned on cond (B, C)."""

    def _eval(self, eps_fn: EpsFn, x: torch.Tensor, t: int, cond: torch.Tensor) -> torch.Tensor:
        return eps_fn(x, torch.full((x.shape[0],), t, dtype=torch.int64, device=x.device), cond)


class _EvenlySpacedSampler(Sampler):
    """num_steps network evaluations at evenly spaced levels (DDPM and DDIM)."""
    default_steps = 10

    def __init__(self, schedule: NoiseSchedule, num_steps: int | None = None):
        super().__init__(schedule)
        num_steps = self.default_steps if num_steps is None else num_steps
        self._timesteps = evenly_spaced_timesteps(schedule.num_train_timesteps, num_steps)
        self.step_ratio = schedule.num_train_timesteps // num_steps

    @property
    def timesteps(self) -> list[int]:
        return list(self._timesteps)


class DDPMSampler(_EvenlySpacedSampler):
    name = "ddpm"
    default_steps = 100

    def sample(self, eps_fn, cond, shape, generator=None):
        x = randn(shape, generator, cond)
        return self.denoise(eps_fn, x, cond, generator)

    def denoise(self, eps_fn, x, cond, generator=None):
        for t in self._timesteps:
            eps = self._eval(eps_fn, x, t, cond)
            noise = randn(x.shape, generator, x) if t > 0 else None
            x = self.schedule.ddpm_step(x, eps, t, t - self.step_ratio, noise)
        return x


class DDIMSampler(_EvenlySpacedSampler):
    name = "ddim"
    default_steps = 10

    def sample(self, eps_fn, cond, shape, generator=None):
        x = randn(shape, generator, cond)
        for t in self._timesteps:
            x = self.schedule.ddim_step(x, self._eval(eps_fn, x, t, cond), t, t - self.step_ratio)
        return x


class RTISampler(Sampler):
    """Stateful: remembers the last chunk (normalized) of the current episode.

    discrete_dims: action dims that are binary (gripper). In the warm start they are set to
    sign(g) * discrete_guess_value (RTI-DP-clip sets ±1/factor, e.g. 1/10 for image policies; with a
    policy trained on scaled discrete actions, RTI-DP-scale, the natural value is already small).
    None leaves them as predicted.
    """
    name = "rti"

    def __init__(self, schedule: NoiseSchedule, timesteps: list[int], initial: Sampler, shift: int,
                 discrete_dims: list[int] = (), discrete_guess_value: float | None = None,
                 step_mode: str = "jump", renoise: bool = False):
        super().__init__(schedule)
        # renoise: forward-diffuse the warm start to K' (x = sqrt(a)·guess + sqrt(1-a)·ε) instead of
        #   feeding the clean guess as x_K' (the paper). Not in RTI-DP: an option for tasks whose plan must
        #   change course (PickPlaceCan's release over the bin), where the clean guess is a fixed point.
        self.renoise = bool(renoise)
        if step_mode not in RTI_STEP_MODES:
            raise ValueError(f"rti step mode {step_mode!r} not in {RTI_STEP_MODES}")
        # jump: each evaluation takes the DDPM posterior from its level to the NEXT listed level, so a
        #   short list ([10, 5, 0]) still travels the whole way from K' to 0.
        # paper: each evaluation is a t -> t-1 posterior step (the RTI reference code, step ratio 1),
        #   so a list is a set of levels to evaluate at; [3, 1, 0] then barely moves the warm start.
        self.step_mode = step_mode
        timesteps = [int(t) for t in timesteps]
        if not timesteps or timesteps[-1] != 0 or any(a <= b for a, b in zip(timesteps, timesteps[1:])):
            raise ValueError(f"rti timesteps must be strictly decreasing and end at 0, got {timesteps}")
        if timesteps[0] >= schedule.num_train_timesteps:
            raise ValueError(f"rti start level {timesteps[0]} >= num_train_timesteps {schedule.num_train_timesteps}")
        if shift < 1:
            raise ValueError(f"rti shift (executed steps per tick) must be >= 1, got {shift}")
        self._timesteps = timesteps
        self.initial = initial
        self.shift = shift
        self.discrete_dims = list(discrete_dims)
        self.discrete_guess_value = discrete_guess_value
        self.previous_chunk: torch.Tensor | None = None
        self.last_was_warm = False

    @property
    def timesteps(self) -> list[int]:
        return list(self._timesteps)

    def reset(self) -> None:
        self.previous_chunk = None
        self.last_was_warm = False

    def warm_start(self, previous_chunk: torch.Tensor, shift: int | None = None) -> torch.Tensor:
        """Initial guess x_{K'}: the chunk advanced by `shift` executed steps, last action repeated."""
        guess = shift_and_pad(previous_chunk, self.shift if shift is None else shift)
        if self.discrete_dims and self.discrete_guess_value is not None:
            dims = self.discrete_dims
            sign = torch.where(guess[..., dims] >= 0, 1.0, -1.0).to(guess.dtype)
            guess[..., dims] = sign * self.discrete_guess_value
        return guess

    def sample(self, eps_fn, cond, shape, generator=None, shift: int | None = None):
        """shift: steps executed since the previous call (default: the constructor's `shift`)."""
        prev = self.previous_chunk
        if prev is None or tuple(prev.shape) != tuple(shape):
            x = self.initial.sample(eps_fn, cond, shape, generator)
            self.last_was_warm = False
        else:
            x = self.warm_start(prev.to(cond.device), shift)
            levels = self._timesteps
            if self.renoise and levels[0] > 0:
                a = self.schedule.alpha_bar(levels[0])
                x = a ** 0.5 * x + (1.0 - a) ** 0.5 * randn(x.shape, generator, x)
            for i, t in enumerate(levels):
                eps = self._eval(eps_fn, x, t, cond)
                if self.step_mode == "jump":
                    prev_t = levels[i + 1] if i + 1 < len(levels) else -1
                else:
                    prev_t = t - 1
                noise = randn(x.shape, generator, x) if prev_t >= 0 else None
                x = self.schedule.ddpm_step(x, eps, t, prev_t, noise)
            self.last_was_warm = True
        self.previous_chunk = x.detach().clone()
        return x


def shift_and_pad(chunk: torch.Tensor, shift: int) -> torch.Tensor:
    """(B, Tp, A) -> (B, Tp, A): drop the first `shift` steps, repeat the last action `shift` times."""
    horizon = chunk.shape[1]
    shift = min(int(shift), horizon)
    if shift <= 0:
        return chunk.clone()
    tail = chunk[:, -1:].expand(-1, shift, -1)
    return torch.cat([chunk[:, shift:], tail], dim=1)


def make_sampler(name: str, schedule: NoiseSchedule, steps: int | None = None, *, rti_steps: int = 3,
                 rti_start_level: int = 3, rti_timesteps_list: list[int] | None = None,
                 rti_initial: str = "ddim", rti_initial_steps: int = 10, shift: int = 1,
                 discrete_dims: list[int] = (), discrete_guess_value: float | None = None,
                 rti_step_mode: str = "jump", rti_renoise: bool = False) -> Sampler:
    """Build a sampler by name. `steps`: network evaluations for ddpm/ddim (default 100 / 10); for rti
    it overrides rti_steps (per-tick evaluations after the first tick)."""
    if name == "ddpm":
        return DDPMSampler(schedule, steps or schedule.num_train_timesteps)
    if name == "ddim":
        return DDIMSampler(schedule, steps or 10)
    if name == "rti":
        if rti_initial == "rti":
            raise ValueError("rti initial sampler must be ddpm or ddim")
        initial = make_sampler(rti_initial, schedule, rti_initial_steps)
        levels = list(rti_timesteps_list) if rti_timesteps_list else \
            rti_timesteps(rti_start_level, steps or rti_steps, rti_step_mode)
        return RTISampler(schedule, levels, initial, shift, discrete_dims, discrete_guess_value, rti_step_mode,
                          rti_renoise)
    raise ValueError(f"sampler {name!r} not in {SAMPLERS}")
