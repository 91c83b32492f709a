"""Diffusion denoising loops ("samplers": DDPM, DDIM and the RTI warm start; torch only, ONNX runs plug
in via eps_fn) and the noise schedule."""
from policy_stack.denoising.samplers import (SAMPLERS, DDIMSampler, DDPMSampler, EpsFn, RTISampler, Sampler,
                                             evenly_spaced_timesteps, make_sampler, rti_timesteps, shift_and_pad)
from policy_stack.denoising.schedule import NoiseSchedule

__all__ = ["SAMPLERS", "DDIMSampler", "DDPMSampler", "EpsFn", "NoiseSchedule", "RTISampler", "Sampler",
           "evenly_spaced_timesteps", "make_sampler", "rti_timesteps", "shift_and_pad"]
