"""Diffusion samplers: DDPM, DDIM and RTI warm start (torch only; ONNX runs plug in via eps_fn)."""
from policy_stack.sampling.samplers import (SAMPLERS, DDIMSampler, DDPMSampler, EpsFn, RTISampler, Sampler,
                                            evenly_spaced_timesteps, make_sampler, rti_timesteps, shift_and_pad)
from policy_stack.sampling.schedule import NoiseSchedule

__all__ = ["SAMPLERS", "DDIMSampler", "DDPMSampler", "EpsFn", "NoiseSchedule", "RTISampler", "Sampler",
           "evenly_spaced_timesteps", "make_sampler", "rti_timesteps", "shift_and_pad"]
