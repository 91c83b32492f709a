"""Files this stack writes get the mode open(path, "w") would give them: 0666 less the umask (0644 usually).

safetensors' save_file creates its file with mode 0600, so a checkpoint folder used to mix 0600
weights with 0644 JSON files: another user or a container with a different uid could read the config
but not the weights. save_safetensors writes through save_file and then sets the usual mode.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def umask() -> int:
    """The process umask, read without changing it (Linux /proc); elsewhere by a set-and-restore."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    return 0o666 & ~umask()


def save_safetensors(tensors: dict, path, metadata: dict | None = None) -> None:
    """safetensors save_file (torch tensors; numpy arrays go through safetensors.numpy), usual mode."""
    if tensors and all(isinstance(v, np.ndarray) for v in tensors.values()):
        from safetensors.numpy import save_file
    else:
        from safetensors.torch import save_file
    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, default_file_mode())
