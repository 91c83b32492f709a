"""Policy families behind one declared interface (base.py), a shared config (config.py) and one
registry (registry.py). Load a trained policy with `policy_stack.load_policy(path)`."""
from policy_stack.policies.base import Policy
from policy_stack.policies.config import OptimizerPreset, PolicyConfig
from policy_stack.policies.registry import REGISTRY, get_policy_classes, make_policy, register_policy

__all__ = ["REGISTRY", "OptimizerPreset", "Policy", "PolicyConfig", "get_policy_classes", "make_policy",
           "register_policy"]
