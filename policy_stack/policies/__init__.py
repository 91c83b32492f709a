"""Policy families behind one interface, and the registry that builds/loads them by type name.

REGISTRY maps a policy type (the name stored in a checkpoint's config.json) to (ConfigClass,
PolicyClass). A family registers itself at import with `register_policy`; families listed in
`_BUILTIN_MODULES` are imported on first lookup, so `load_policy` on an EBT checkpoint works without
the caller importing policy_stack.policies.ebt first.

Contract for a PolicyClass (what make_policy / checkpoints rely on):
  PolicyClass(config, stats_or_normalizer, action_space, obs_spec) -> an nn.Module + Policy with
  attributes `config` (a dataclass), `normalizer` (policy_stack.normalize.Normalizer),
  `action_space`, `obs_spec`, and `policy_type` (its registry name).
"""
from __future__ import annotations

import dataclasses
import importlib

from policy_stack.policies.base import Policy

REGISTRY: dict[str, tuple[type, type]] = {}
_BUILTIN_MODULES = {"diffusion": "policy_stack.policies.diffusion", "ebt": "policy_stack.policies.ebt",
                    "kite": "policy_stack.policies.kite"}


def register_policy(name: str, config_cls: type, policy_cls: type) -> None:
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"register_policy({name!r}): config class {config_cls.__name__} is not a dataclass")
    existing = REGISTRY.get(name)
    if existing is not None and existing != (config_cls, policy_cls):
        raise ValueError(f"policy type {name!r} already registered with {existing[1].__name__}")
    policy_cls.policy_type = name
    REGISTRY[name] = (config_cls, policy_cls)


def get_policy_classes(name: str) -> tuple[type, type]:
    """(ConfigClass, PolicyClass) for a policy type, importing a built-in family on demand."""
    if name not in REGISTRY and name in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[name])
        except ModuleNotFoundError as exc:
            raise ValueError(f"policy type {name!r}: its module {_BUILTIN_MODULES[name]} is not available ({exc})") from exc
    if name not in REGISTRY:
        raise ValueError(f"unknown policy type {name!r}; registered: {sorted(REGISTRY)}")
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


def load_policy(path=None, device: str = "auto"):
    from policy_stack.checkpoint import load_policy as _load
    return _load(path, device)


# Built-in family registered eagerly: it is the default policy and costs nothing beyond torch.
from policy_stack.policies.diffusion import DiffusionConfig, DiffusionPolicy  # noqa: E402

register_policy("diffusion", DiffusionConfig, DiffusionPolicy)

__all__ = ["REGISTRY", "Policy", "get_policy_classes", "load_policy", "make_policy", "register_policy"]
