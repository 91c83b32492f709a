"""DDPM / DDIM / RTI samplers: schedule values, step counts, seeded determinism, RTI warm start."""
from __future__ import annotations

import math

import pytest
import torch

from policy_stack.denoising import (DDIMSampler, DDPMSampler, NoiseSchedule, RTISampler, evenly_spaced_timesteps,
                                   make_sampler, rti_timesteps, shift_and_pad)

torch.set_num_threads(1)
SHAPE = (2, 8, 3)


class CountingEps:
    """A fake denoiser: records every call; ε = 0.1 * x (deterministic, finite)."""

    def __init__(self):
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, x, t, cond):
        self.calls.append((x.clone(), t.clone()))
        return 0.1 * x + 0.0 * cond.sum()


def test_squaredcos_schedule_matches_formula():
    s = NoiseSchedule(100)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert s.betas.shape == (100,)
    assert float(s.alphas_cumprod[0]) == pytest.approx(f(0.01) / f(0.0), rel=1e-5)
    assert float(s.betas.max()) <= 0.999 + 1e-6  # capped (float32 rounding)
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])


def test_timestep_lists():
    assert evenly_spaced_timesteps(100, 10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert evenly_spaced_timesteps(100, 100)[:3] == [99, 98, 97]
    assert rti_timesteps(3, 3) == [3, 1, 0]          # the paper's Lift/ToolHang scale list
    assert rti_timesteps(7, 5) == [7, 5, 3, 1, 0]    # the paper's Can scale list
    assert rti_timesteps(3, 2) == [3, 0]
    assert rti_timesteps(3, 1) == [0]
    with pytest.raises(ValueError):
        rti_timesteps(1, 4)


@pytest.mark.parametrize("k", [1, 4, 10])
def test_ddim_k_uses_k_network_evals(k):
    eps = CountingEps()
    out = DDIMSampler(NoiseSchedule(100), k).sample(eps, torch.zeros(2, 5), SHAPE, torch.Generator().manual_seed(0))
    assert len(eps.calls) == k
    assert out.shape == SHAPE and torch.isfinite(out).all()
    assert out.abs().max() <= 1.0 + 1e-6


def test_ddpm_full_and_strided_counts():
    for steps in (100, 20):
        eps = CountingEps()
        DDPMSampler(NoiseSchedule(100), steps).sample(eps, torch.zeros(2, 5), SHAPE, torch.Generator().manual_seed(0))
        assert len(eps.calls) == steps
        assert [int(t[0]) for _, t in eps.calls] == evenly_spaced_timesteps(100, steps)


@pytest.mark.parametrize("name", ["ddpm", "ddim"])
def test_seeded_determinism(name):
    sampler = make_sampler(name, NoiseSchedule(100), 10)
    cond = torch.zeros(2, 5)
    a = sampler.sample(CountingEps(), cond, SHAPE, torch.Generator().manual_seed(7))
    b = sampler.sample(CountingEps(), cond, SHAPE, torch.Generator().manual_seed(7))
    c = sampler.sample(CountingEps(), cond, SHAPE, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_shift_and_pad():
    chunk = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    out = shift_and_pad(chunk, 2)
    assert out.shape == chunk.shape
    assert torch.equal(out[:, :4], chunk[:, 2:])                 # advanced by the executed steps
    assert torch.equal(out[:, 4], chunk[:, -1]) and torch.equal(out[:, 5], chunk[:, -1])  # last action repeated
    assert torch.equal(shift_and_pad(chunk, 1)[:, :5], chunk[:, 1:])
    assert torch.equal(shift_and_pad(chunk, 10), chunk[:, -1:].expand(-1, 6, -1))


def _rti(shift=2, discrete_value=None, levels=(3, 1, 0)):
    schedule = NoiseSchedule(100)
    return RTISampler(schedule, list(levels), DDIMSampler(schedule, 10), shift=shift,
                      discrete_dims=[2], discrete_guess_value=discrete_value)


def test_rti_first_tick_full_then_k_steps_and_reset():
    rti = _rti()
    cond = torch.zeros(2, 5)
    gen = torch.Generator().manual_seed(0)
    eps = CountingEps()
    rti.sample(eps, cond, SHAPE, gen)
    assert len(eps.calls) == 10 and not rti.last_was_warm
    for _ in range(3):
        eps = CountingEps()
        rti.sample(eps, cond, SHAPE, gen)
        assert len(eps.calls) == 3 and rti.last_was_warm
        assert [int(t[0]) for _, t in eps.calls] == [3, 1, 0]
    rti.reset()
    eps = CountingEps()
    rti.sample(eps, cond, SHAPE, gen)
    assert len(eps.calls) == 10  # new episode: full sample again


def test_rti_warm_start_is_shifted_previous_chunk_without_renoising():
    rti = _rti(shift=2)
    cond = torch.zeros(2, 5)
    gen = torch.Generator().manual_seed(0)
    first = rti.sample(CountingEps(), cond, SHAPE, gen)
    eps = CountingEps()
    rti.sample(eps, cond, SHAPE, gen)
    first_input, first_t = eps.calls[0]
    assert int(first_t[0]) == 3
    # the network sees exactly shift-and-pad of the last chunk: no noise was added to it
    assert torch.equal(first_input, shift_and_pad(first, 2))
    # a caller that executed fewer actions than planned says so: the shift follows
    second = rti.previous_chunk.clone()
    eps = CountingEps()
    rti.sample(eps, cond, SHAPE, gen, shift=1)
    assert torch.equal(eps.calls[0][0], shift_and_pad(second, 1))


def test_rti_discrete_dims_of_guess_are_scaled():
    rti = _rti(shift=1, discrete_value=0.1)
    prev = torch.tensor([[[0.5, -0.2, 0.9], [0.1, 0.3, -0.7]]])
    guess = rti.warm_start(prev)
    assert torch.allclose(guess[0, :, 2], torch.tensor([-0.1, -0.1]))   # sign kept, magnitude 1/factor
    assert torch.equal(guess[0, 0, :2], prev[0, 1, :2])


def test_rti_rejects_bad_levels():
    schedule = NoiseSchedule(100)
    with pytest.raises(ValueError):
        RTISampler(schedule, [3, 1], DDIMSampler(schedule, 10), shift=1)   # does not end at 0
    with pytest.raises(ValueError):
        RTISampler(schedule, [1, 3, 0], DDIMSampler(schedule, 10), shift=1)
    with pytest.raises(ValueError):
        make_sampler("euler", schedule)


def test_rti_jump_mode_reaches_level_zero_in_k_evaluations():
    """jump: each of the k evaluations takes the posterior to the next listed level, so the chain ends
    at the clean sample; paper: each is a t -> t-1 step (the reference code)."""
    from policy_stack.denoising.samplers import rti_timesteps
    assert rti_timesteps(10, 3, "jump") == [10, 5, 0]
    assert rti_timesteps(3, 3, "paper") == [3, 1, 0]
    with pytest.raises(ValueError):
        rti_timesteps(10, 3, "sideways")
    schedule = NoiseSchedule(100)
    calls = []

    def eps_fn(x, t, cond):
        calls.append(int(t if not torch.is_tensor(t) else t.flatten()[0]))
        return torch.zeros_like(x)

    initial = DDIMSampler(schedule, 5)
    for mode, expected_prev in (("jump", [5, 0, -1]), ("paper", [9, 4, -1])):
        sampler = RTISampler(schedule, [10, 5, 0], initial, shift=1, step_mode=mode)
        sampler.previous_chunk = torch.full((1, 4, 2), 0.5)
        seen = []
        original = schedule.ddpm_step
        schedule.ddpm_step = lambda x, e, t, prev_t, noise, _o=original: seen.append(prev_t) or _o(x, e, t, prev_t, noise)
        calls.clear()
        sampler.sample(eps_fn, torch.zeros(1, 3), (1, 4, 2), torch.Generator().manual_seed(0))
        schedule.ddpm_step = original
        assert calls == [10, 5, 0]
        assert seen == expected_prev


@pytest.mark.parametrize("renoise", [False, True])
def test_rti_renoise_forward_diffuses_the_warm_start(renoise):
    """Default (paper): the clean shifted guess is x_K'. rti_renoise: it is diffused to level K' first,
    x = sqrt(ᾱ)·guess + sqrt(1-ᾱ)·ε with unit-variance ε."""
    schedule = NoiseSchedule(100)
    rti = RTISampler(schedule, [20, 10, 0], DDIMSampler(schedule, 10), shift=1, renoise=renoise)
    shape = (64, 16, 7)
    cond = torch.zeros(64, 5)
    gen = torch.Generator().manual_seed(0)
    rti.sample(CountingEps(), cond, shape, gen)            # cold tick: fills the previous chunk
    guess = rti.warm_start(rti.previous_chunk)
    eps = CountingEps()
    rti.sample(eps, cond, shape, gen)
    first_x, first_t = eps.calls[0]
    assert int(first_t.flatten()[0]) == 20
    if not renoise:
        assert torch.equal(first_x, guess)
    else:
        a = schedule.alpha_bar(20)
        z = (first_x - a ** 0.5 * guess) / (1 - a) ** 0.5
        assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1.0) < 0.05
