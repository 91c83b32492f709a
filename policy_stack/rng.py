"""Capture / restore every random stream as uint8 tensors, so resume state is safetensors, not pickle.

The one RNG capture used by supervised training (train/trainer.py) and online RL (rl/session.py).
Streams: torch CPU, the CUDA generator of `device` when it is a CUDA device, numpy's legacy global
MT19937, Python's `random`, and optionally one numpy `Generator` (the RL session's own stream).
The default streams are fixed-shape uint8 tensors, the same shapes on every rank, so DDP can
all_gather them to rank 0 without all_gather_object (which pickles). The numpy Generator's state
(PCG64 holds 128-bit integers) is stored as JSON bytes; only single-process RL uses it.
"""
from __future__ import annotations

import json
import random

import numpy as np
import torch


def _as_u8(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array).view(np.uint8).copy())


def _json_u8(obj) -> torch.Tensor:
    return torch.frombuffer(bytearray(json.dumps(obj).encode()), dtype=torch.uint8).clone()


def _u8_json(t: torch.Tensor):
    return json.loads(bytes(t.numpy().tobytes()).decode())


def capture_rng(device: torch.device | str | None = None,
                np_generator: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
    out = {"torch_cpu": torch.get_rng_state().clone()}
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        out["torch_cuda"] = torch.cuda.get_rng_state(device).clone()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    assert name == "MT19937"
    out["numpy_keys"] = _as_u8(np.asarray(keys, dtype=np.uint32))
    out["numpy_meta"] = _as_u8(np.array([pos, has_gauss], dtype=np.int64))
    out["numpy_gauss"] = _as_u8(np.array([cached], dtype=np.float64))
    version, internal, gauss_next = random.getstate()
    out["python_state"] = _as_u8(np.asarray(internal, dtype=np.uint32))
    out["python_gauss"] = _as_u8(np.array([gauss_next is not None, gauss_next or 0.0], dtype=np.float64))
    out["python_version"] = _as_u8(np.array([version], dtype=np.int64))
    if np_generator is not None:
        out["numpy_generator"] = _json_u8(np_generator.bit_generator.state)
    return out


def restore_rng(state: dict[str, torch.Tensor], device: torch.device | str | None = None,
                np_generator: np.random.Generator | None = None) -> None:
    def arr(key, dtype):
        return state[key].numpy().view(dtype)

    device = torch.device(device) if device is not None else None
    torch.set_rng_state(state["torch_cpu"].to(torch.uint8))
    # a run resumed on another device (device may change on resume) keeps its freshly seeded CUDA stream
    if device is not None and device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"].to(torch.uint8), device)
    pos, has_gauss = (int(v) for v in arr("numpy_meta", np.int64))
    np.random.set_state(("MT19937", arr("numpy_keys", np.uint32).copy(), pos, has_gauss,
                         float(arr("numpy_gauss", np.float64)[0])))
    flag, gauss = arr("python_gauss", np.float64)
    random.setstate((int(arr("python_version", np.int64)[0]),
                     tuple(int(v) for v in arr("python_state", np.uint32)), gauss if flag else None))
    if np_generator is not None:
        if "numpy_generator" not in state:
            raise ValueError("restore_rng: the saved state has no numpy Generator stream")
        np_generator.bit_generator.state = _u8_json(state["numpy_generator"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
