"""Where a training run keeps its snapshots, and how they are published. Safetensors + JSON only.

    OUT/config.json, OUT/model.safetensors, OUT/normalization.json   the usable (EMA) policy, newest
    OUT/checkpoints/step_0000500/    one snapshot per save, written by policy_stack.checkpoint.save_checkpoint:
        config.json (meta: step, epoch, optimizer param groups, train config), model.safetensors (EMA),
        normalization.json, train_state.safetensors (raw weights, EMA, optimizer moments, per-rank RNG)
    OUT/checkpoints/latest           text: the newest complete snapshot's folder name
    OUT/tb/                          TensorBoard events;  OUT/train_log.jsonl: loss per logged step

Crash safety: save_checkpoint writes a temp folder and renames it into place, `latest` is replaced
with os.replace only after that, and the published top-level files are each replaced atomically. A
SIGKILL at any moment leaves `latest` naming a complete snapshot (the previous or the new one).
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from safetensors.torch import load_file

CKPT_DIR = "checkpoints"
LATEST = "latest"
TRAIN_STATE_FILE = "train_state.safetensors"
POLICY_FILES = ("config.json", "model.safetensors", "normalization.json")


def snapshot_dir(out: Path, step: int) -> Path:
    return Path(out) / CKPT_DIR / f"step_{step:07d}"


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new unique temp file next to `path`, created like open(..., "w") creates files: mode 0666 less
    the umask (0644 usually). tempfile.mkstemp would make it 0600, so files published by rename would
    differ in mode from the rest of OUT."""
    for _ in range(100):
        tmp = str(Path(path).parent / f".{Path(path).name}.{uuid.uuid4().hex[:8]}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside {path}")


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    fd, tmp = _temp_beside(path)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_copy(src: Path, dst: Path) -> None:
    fd, tmp = _temp_beside(Path(dst))
    os.close(fd)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def commit_snapshot(out: Path, snap: Path, keep: int = 2) -> None:
    """Point `latest` at a finished snapshot, publish its policy files at OUT/, prune old snapshots."""
    out, root = Path(out), Path(out) / CKPT_DIR
    atomic_write_text(root / LATEST, snap.name + "\n")
    for name in POLICY_FILES:          # so `--policy OUT` works while training is still running
        _atomic_copy(snap / name, out / name)
    snaps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))
    for old in snaps[:-keep] if keep > 0 else []:
        if old != snap:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".step_*"):   # temp folders of a run killed mid-save
        shutil.rmtree(leftover, ignore_errors=True)


def latest_snapshot(out: Path) -> Path | None:
    """The newest complete snapshot, or None for a fresh OUT. A dangling pointer is a clear error."""
    pointer = Path(out) / CKPT_DIR / LATEST
    if not pointer.is_file():
        return None
    snap = pointer.parent / pointer.read_text().strip()
    for name in POLICY_FILES + (TRAIN_STATE_FILE,):
        if not (snap / name).is_file():
            raise ValueError(f"resume: {pointer} names {snap}, which lacks {name}; "
                             f"delete {pointer.parent} (or pass a new --out) to start over")
    return snap


def read_snapshot(snap: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(train_state tensors, config.json meta) of a snapshot, with errors that name the file."""
    cfg_path, state_path = snap / "config.json", snap / TRAIN_STATE_FILE
    try:
        meta = json.loads(cfg_path.read_text()).get("meta", {})
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"resume: cannot read {cfg_path}: {exc}") from exc
    try:
        tensors = load_file(str(state_path))
    except Exception as exc:  # safetensors raises its own error type on truncated files
        raise ValueError(f"resume: {state_path} is corrupt or not safetensors: {exc}") from exc
    if "step" not in meta:
        raise ValueError(f"resume: {cfg_path} has no meta.step; not a training snapshot")
    return tensors, meta


def sub_dict(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
