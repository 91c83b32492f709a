"""Capture / restore every random stream as uint8 tensors, so resume state is safetensors, not pickle.

Streams: torch CPU (and CUDA when used), numpy's legacy global MT19937 and Python's `random`.
Each capture is a dict of fixed-shape uint8 tensors; the same shapes on every rank, so DDP can
all_gather them to rank 0 without all_gather_object (which pickles).
"""
from __future__ import annotations

import random

import numpy as np
import torch


def _as_u8(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array).view(np.uint8).copy())


def capture_rng(device: torch.device | None = None) -> dict[str, torch.Tensor]:
    out = {"torch_cpu": torch.get_rng_state().clone()}
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
    return out


def restore_rng(state: dict[str, torch.Tensor], device: torch.device | None = None) -> None:
    def arr(key, dtype):
        return state[key].numpy().view(dtype)

    torch.set_rng_state(state["torch_cpu"].to(torch.uint8))
    if device is not None and device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"].to(torch.uint8), device)
    pos, has_gauss = (int(v) for v in arr("numpy_meta", np.int64))
    np.random.set_state(("MT19937", arr("numpy_keys", np.uint32).copy(), pos, has_gauss,
                         float(arr("numpy_gauss", np.float64)[0])))
    flag, gauss = arr("python_gauss", np.float64)
    random.setstate((int(arr("python_version", np.int64)[0]),
                     tuple(int(v) for v in arr("python_state", np.uint32)), gauss if flag else None))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
