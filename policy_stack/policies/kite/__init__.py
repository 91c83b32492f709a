"""KITE family: language instruction -> grounded keypoint -> keypoint-conditioned skill (docs/kite.md)."""
from policy_stack.policies.kite.config import KiteConfig
from policy_stack.policies.kite.policy import KitePolicy

__all__ = ["KiteConfig", "KitePolicy"]
