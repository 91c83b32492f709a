"""Policy checkpoints: a FOLDER, never a pickle.

    <folder>/config.json              policy_type, config fields, action_space, obs_spec, meta (training info)
    <folder>/model.safetensors        weights act() runs with (the trainer passes its EMA copy)
    <folder>/normalization.json       Normalizer.to_dict()
    <folder>/train_state.safetensors  optional: raw weights, optimizer, EMA state... for resuming

Writes are atomic (policy_stack.persist.write_dir_atomic): everything goes to a temporary sibling
folder, is fsynced and renamed into place, so a crash never leaves a half-written checkpoint where a
reader looks. Loading uses safetensors and JSON
only (no torch.load); every missing or corrupt file is reported by name.

Format versions: 2 states every field of the policy config explicitly, and loading refuses a version-2
config that lacks one, so a later change of a default can never silently change a saved policy.
Version 1 files (written before that rule) still load: a field they lack takes the current default.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from policy_stack.file_modes import save_safetensors

from policy_stack.normalize import Normalizer
from policy_stack.persist import write_dir_atomic
from policy_stack.spaces import ActionSpace, obs_spec_from_dict, obs_spec_to_dict

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAIN_STATE_FILE = "train_state.safetensors"
NORMALIZATION_FILE = "normalization.json"
SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINT = SHIPPED_DIR / "diffusion_lowdim_lift"


def shipped_checkpoints() -> list[str]:
    """Names of the checkpoints inside the package (usable wherever a checkpoint folder is asked for)."""
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / CONFIG_FILE).is_file()) if SHIPPED_DIR.is_dir() else []


def resolve_checkpoint(folder: str | os.PathLike) -> Path:
    """A folder path as given, or the name of a shipped checkpoint (`diffusion_lowdim_can`) when no
    such folder exists."""
    folder = Path(folder)
    if not folder.is_dir() and len(folder.parts) == 1 and (SHIPPED_DIR / folder.name / CONFIG_FILE).is_file():
        return SHIPPED_DIR / folder.name
    return folder


# ---------------------------------------------------------------------------------------- configs
def config_to_dict(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples -> lists, JSON-clean


def _check_scalar_type(owner: str, name: str, default, value) -> None:
    """A JSON value must have its field's scalar type (an int may stand for a float, None for an optional
    field whose default is None): a list where a seed belongs fails here, in one line, not in torch."""
    if value is None or default is None or default is dataclasses.MISSING:
        return
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,), list: (list,),
             tuple: (list, tuple)}.get(type(default))
    if kinds is None:
        return
    if not isinstance(value, kinds) or (type(default) is not bool and isinstance(value, bool)):
        raise ValueError(f"{owner}.{name} = {str(value)[:60]!r}: expected {type(default).__name__}")


def config_from_dict(config_cls: type, data: dict, complete: bool = False):
    """Rebuild a config dataclass; unknown fields are an error (a typo must not be silently ignored),
    and with complete=True so is a missing one (a checkpoint states every field)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{config_cls.__name__}: unknown field(s) {unknown}")
    # fields the class added after some checkpoints were written (their defaults keep the old behaviour)
    missing = sorted(set(fields) - set(data) - set(getattr(config_cls, "LATER_FIELDS", ())))
    if complete and missing:
        raise ValueError(f"{config_cls.__name__}: field(s) {missing} not stated")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = config_from_dict(type(default), value)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        _check_scalar_type(config_cls.__name__, name, default, value)
        kwargs[name] = value
    return config_cls(**kwargs)


# ------------------------------------------------------------------------------------------- save
def save_checkpoint(policy, folder: str | os.PathLike, extra_tensors: dict[str, torch.Tensor] | None = None,
                    meta: dict | None = None) -> Path:
    """Write `policy` (pass the EMA copy when training) to `folder`, replacing it atomically.

    extra_tensors -> train_state.safetensors (resume state); meta -> config.json["meta"] (JSON only:
    step, epoch, dataset, optimizer param groups...)."""
    folder = Path(folder)
    meta = dict(meta or {})
    try:
        json.dumps(meta)
    except TypeError as exc:
        raise ValueError(f"checkpoint meta must be JSON-serialisable: {exc}") from exc
    from policy_stack import __version__

    config = {
        "format_version": FORMAT_VERSION,
        "policy_type": policy.policy_type,
        "policy_stack_version": __version__,
        "config": config_to_dict(policy.config),
        "action_space": policy.action_space.to_dict(),
        "obs_spec": obs_spec_to_dict(policy.obs_spec),
        "meta": meta,
    }

    def write(tmp: Path) -> None:
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        save_safetensors(_cpu_contiguous(policy.state_dict()), tmp / WEIGHTS_FILE, metadata={"format": "pt"})
        policy.normalizer.save_json(tmp / NORMALIZATION_FILE)
        if extra_tensors:
            save_safetensors(_cpu_contiguous(extra_tensors), tmp / TRAIN_STATE_FILE, metadata={"format": "pt"})
    write_dir_atomic(folder, write)
    return folder


def _cpu_contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


# ------------------------------------------------------------------------------------------- load
@dataclass
class Checkpoint:
    policy: Any
    folder: Path
    meta: dict
    train_state: dict[str, torch.Tensor] | None  # only with load_train_state=True and the file present


def read_config(folder: str | os.PathLike) -> dict:
    path = resolve_checkpoint(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file missing: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"checkpoint file {path} is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"checkpoint file {path} is not a JSON object")
    for field in ("policy_type", "config", "action_space", "obs_spec"):
        if field not in data:
            raise ValueError(f"checkpoint file {path} lacks field {field!r}")
    kinds = {"policy_type": str, "config": dict, "action_space": dict, "obs_spec": dict}
    wrong = [f"{field} ({type(data[field]).__name__})" for field, kind in kinds.items() if not isinstance(data[field], kind)]
    if wrong:
        raise ValueError(f"checkpoint file {path}: fields of the wrong type: {', '.join(wrong)}")
    version = data.get("format_version", 1)
    if version not in READABLE_VERSIONS:
        raise ValueError(f"checkpoint file {path} has format_version {version!r}; this policy_stack reads "
                         f"{READABLE_VERSIONS} (a newer policy_stack wrote it?)")
    return data


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file missing: {path}")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"checkpoint file {path} is corrupt or not safetensors: {exc}") from exc


def load_checkpoint(folder: str | os.PathLike, device: str = "auto", load_train_state: bool = False) -> Checkpoint:
    """Rebuild the policy stored in `folder` on `device` ("auto" = cuda if available else cpu)."""
    from policy_stack.policies import get_policy_classes, make_policy

    folder = resolve_checkpoint(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {folder} (shipped checkpoints, usable by name: "
                                f"{', '.join(shipped_checkpoints()) or 'none'})")
    data = read_config(folder)
    config_cls, _ = get_policy_classes(data["policy_type"])
    try:
        config_fields = dict(data["config"])
        config_fields["device"] = device      # where to run is the caller's choice, not the file's
        config = config_from_dict(config_cls, config_fields, complete=data.get("format_version", 1) >= 2)
        action_space = ActionSpace.from_dict(data["action_space"])
        obs_spec = obs_spec_from_dict(data["obs_spec"])
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        raise ValueError(f"checkpoint file {folder / CONFIG_FILE} is malformed: {exc}") from exc
    normalizer = Normalizer.load_json(folder / NORMALIZATION_FILE)
    weights = _load_tensors(folder / WEIGHTS_FILE)
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            # NaN weights give NaN actions (refused per chunk) and an export whose parity check "passes"
            # on NaN == NaN: refuse them once, at load, by name.
            raise ValueError(f"checkpoint file {folder / WEIGHTS_FILE}: tensor {name!r} contains NaN/Inf")

    policy = make_policy(data["policy_type"], config, normalizer, action_space, obs_spec)
    try:
        result = policy.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise ValueError(f"checkpoint file {folder / WEIGHTS_FILE} does not fit the config: {exc}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"checkpoint file {folder / WEIGHTS_FILE} does not fit the config: "
                         f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    policy.eval()
    train_state = None
    if load_train_state and (folder / TRAIN_STATE_FILE).is_file():
        train_state = _load_tensors(folder / TRAIN_STATE_FILE)
    return Checkpoint(policy=policy, folder=folder, meta=data.get("meta", {}), train_state=train_state)


def load_policy(path: str | os.PathLike | None = None, device: str = "auto"):
    """A ready-to-act policy from a checkpoint folder; no argument = the shipped default (Lift, low-dim)."""
    if path is None:
        if not (DEFAULT_CHECKPOINT / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"the shipped default policy is missing: {DEFAULT_CHECKPOINT} "
                                    "(train it with `policy-stack train` or pass a checkpoint folder)")
        path = DEFAULT_CHECKPOINT
    return load_checkpoint(path, device).policy


# ------------------------------------------------------------------ optimizer state <-> safetensors
def optimizer_state_to_tensors(optimizer: torch.optim.Optimizer, prefix: str = "optim.") -> tuple[dict, dict]:
    """(tensors, json_meta): per-parameter tensors for train_state.safetensors, the rest (param groups,
    scalar state) for checkpoint meta. Inverse: optimizer_state_from_tensors."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}{param_id}.{name}"] = value
            else:
                scalars[f"{param_id}.{name}"] = value
    return tensors, json.loads(json.dumps({"param_groups": state["param_groups"], "scalars": scalars}))


def optimizer_state_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict, json_meta: dict,
                                 prefix: str = "optim.") -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            param_id, name = key[len(prefix):].split(".", 1)
            state.setdefault(int(param_id), {})[name] = value
    for key, value in json_meta.get("scalars", {}).items():
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in json_meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
