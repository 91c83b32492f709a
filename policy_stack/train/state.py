"""Where a training run keeps its snapshots, and how they are published. Safetensors + JSON only.

    OUT/config.json, OUT/model.safetensors, OUT/normalization.json   the usable (EMA) policy, newest
    OUT/checkpoints/step_0000500/    one snapshot per save, written by policy_stack.checkpoint.save_checkpoint:
        config.json (meta: step, epoch, optimizer param groups, train config), model.safetensors (EMA),
        normalization.json, train_state.safetensors (raw weights, EMA, optimizer moments, per-rank RNG)
    OUT/checkpoints/latest           text: the newest complete snapshot's folder name
    OUT/tb/                          TensorBoard events;  OUT/train_log.jsonl: loss per logged step

The snapshot layout (`<root>/<name>/` + `<root>/latest`) is policy_stack.persist's, shared with the
RL session. Crash safety: save_checkpoint writes the snapshot folder atomically, `latest` is replaced
only after that, and the published top-level files are each replaced atomically (persist's commit
protocol: fsync file, rename, fsync folder). A SIGKILL or power loss at any moment leaves `latest`
naming a complete snapshot (the previous or the new one).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from policy_stack import persist
from policy_stack.checkpoint import CONFIG_FILE, NORMALIZATION_FILE, TRAIN_STATE_FILE, WEIGHTS_FILE

CKPT_DIR = "checkpoints"
POLICY_FILES = (CONFIG_FILE, WEIGHTS_FILE, NORMALIZATION_FILE)


def snapshot_dir(out: Path, step: int) -> Path:
    return Path(out) / CKPT_DIR / f"step_{step:07d}"


def commit_snapshot(out: Path, snap: Path, keep: int = 2) -> None:
    """Point `latest` at a finished snapshot, publish its policy files at OUT/, prune old snapshots."""
    persist.publish_snapshot(Path(out) / CKPT_DIR, snap.name, keep)
    for name in POLICY_FILES:          # so `--policy OUT` works while training is still running
        persist.copy_atomic(snap / name, Path(out) / name)


def latest_snapshot(out: Path) -> Path | None:
    """The newest complete snapshot, or None for a fresh OUT. A dangling pointer is a clear error."""
    snap = persist.latest_snapshot_dir(Path(out) / CKPT_DIR)
    if snap is None:
        return None
    pointer = Path(out) / CKPT_DIR / persist.LATEST
    for name in POLICY_FILES + (TRAIN_STATE_FILE,):
        if not (snap / name).is_file():
            raise ValueError(f"resume: {pointer} names {snap}, which lacks {name}; "
                             f"delete {pointer.parent} (or pass a new --out) to start over")
    return snap


def read_snapshot(snap: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(train_state tensors, config.json meta) of a snapshot, with errors that name the file."""
    cfg_path, state_path = snap / CONFIG_FILE, snap / TRAIN_STATE_FILE
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
