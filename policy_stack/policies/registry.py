"""The policy registry: policy type name (as stored in a checkpoint's config.json) -> (ConfigClass,
PolicyClass). A family registers itself one way, by decorating its policy class:

    @register_policy("diffusion", DiffusionConfig)
    class DiffusionPolicy(ChunkPolicyMixin, nn.Module, Policy): ...

Built-in families are imported on first lookup (`BUILTIN_MODULES`), so loading an EBT checkpoint works
without the caller importing policy_stack.policies.ebt first.

Contract for a PolicyClass (what make_policy / checkpoints rely on):
  PolicyClass(config, stats_or_normalizer, action_space, obs_spec) -> an nn.Module + Policy with
  attributes `config` (a PolicyConfig), `normalizer` (policy_stack.normalize.Normalizer),
  `action_space`, `obs_spec`, and `policy_type` (its registry name, set by the decorator).
"""
from __future__ import annotations

import dataclasses
import importlib

from policy_stack.policies.base import Policy

REGISTRY: dict[str, tuple[type, type]] = {}
BUILTIN_MODULES = {"diffusion": "policy_stack.policies.diffusion", "ebt": "policy_stack.policies.ebt",
                   "kite": "policy_stack.policies.kite"}


def register_policy(name: str, config_cls: type):
    """Class decorator: register the decorated Policy subclass under `name` with its config class."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"register_policy({name!r}): config class {config_cls.__name__} is not a dataclass")

    def decorate(policy_cls: type) -> type:
        if not issubclass(policy_cls, Policy):
            raise TypeError(f"register_policy({name!r}): {policy_cls.__name__} does not subclass Policy")
        existing = REGISTRY.get(name)
        if existing is not None and existing != (config_cls, policy_cls):
            raise ValueError(f"policy type {name!r} already registered with {existing[1].__name__}")
        policy_cls.policy_type = name
        REGISTRY[name] = (config_cls, policy_cls)
        return policy_cls
    return decorate


def get_policy_classes(name: str) -> tuple[type, type]:
    """(ConfigClass, PolicyClass) for a policy type, importing a built-in family on demand."""
    if name not in REGISTRY and name in BUILTIN_MODULES:
        importlib.import_module(BUILTIN_MODULES[name])
    if name not in REGISTRY:
        raise ValueError(f"unknown policy type {name!r}; registered: {sorted(set(REGISTRY) | set(BUILTIN_MODULES))}")
    return REGISTRY[name]


def make_policy(policy_type: str, config=None, stats=None, action_space=None, obs_spec=None):
    """Build an untrained policy. config: the family's config dataclass, a dict of its fields, or None
    (defaults); stats: normalization stats dict or a Normalizer; obs_spec: {key: FeatureSpec} or None."""
    from policy_stack.checkpoint import config_from_dict  # (no import cycle at module load)

    config_cls, policy_cls = get_policy_classes(policy_type)
    if config is None:
        config = config_cls()
    elif isinstance(config, dict):
        config = config_from_dict(config_cls, config)
    elif not isinstance(config, config_cls):
        raise TypeError(f"make_policy({policy_type!r}): config must be {config_cls.__name__} or dict, got {type(config).__name__}")
    if stats is None or action_space is None:
        raise ValueError(f"make_policy({policy_type!r}) needs normalization stats and an action_space")
    return policy_cls(config, stats, action_space, obs_spec)
