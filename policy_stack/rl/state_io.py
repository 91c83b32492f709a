"""No-pickle encoding of nested training state (module/optimizer state dicts, RNG states).

Tensors go to one safetensors file, structure and plain values to a JSON file. Call save_state inside
policy_stack.persist.write_dir_atomic, which makes the folder durable and atomic.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from policy_stack.file_modes import save_safetensors


def _encode(obj, tensors: dict, path: str):
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj)).clone()
        return {"__ndarray__": path}
    if isinstance(obj, dict):  # keep key types: optimizer state is keyed by int
        return {"__dict__": [[k, _encode(v, tensors, f"{path}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"state_io: cannot store {type(obj).__name__} at {path!r} (tensors, numbers, str, dict, list only)")


def _decode(obj, tensors: dict):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__dict__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def save_state(obj, folder: Path, name: str) -> None:
    """Write `name.safetensors` + `name.json` into folder (call inside an atomic directory write)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(obj, tensors, name)
    save_safetensors(tensors, Path(folder) / f"{name}.safetensors")
    (Path(folder) / f"{name}.json").write_text(json.dumps(structure))


def load_state(folder: Path, name: str):
    folder = Path(folder)
    for ext in ("safetensors", "json"):
        if not (folder / f"{name}.{ext}").is_file():
            raise FileNotFoundError(f"state_io: missing {folder / f'{name}.{ext}'}")
    tensors = load_file(str(folder / f"{name}.safetensors"))
    return _decode(json.loads((folder / f"{name}.json").read_text()), tensors)
