"""Diffusion Policy family (ConditionalUnet1D noise predictor; DDPM / DDIM / RTI sampling)."""
from policy_stack.policies.diffusion.config import DiffusionConfig
from policy_stack.policies.diffusion.policy import DiffusionPolicy, resolve_device

__all__ = ["DiffusionConfig", "DiffusionPolicy", "resolve_device"]
