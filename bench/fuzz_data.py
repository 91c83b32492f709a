"""Tiny datasets for the fuzzing benchmark and test/robustness (no robosuite needed).

Small on purpose (3 episodes of a few frames, one 16x16 camera): each hostile case copies one and
breaks it, so a case costs milliseconds, not seconds.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from policy_stack.data.writer import DatasetWriter

FPS = 10
FEATURES = {"robot0_eef_pos": (3,), "agentview_rgb": (16, 16, 3), "action": (4,),
            "reward": (), "success": (), "done": ()}
LENGTHS = (6, 8, 5)
TASKS = ("lift the cube", "lift it higher", "lift the cube")


def episode(length: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float32)[:, None, None]
    yy, xx = np.mgrid[0:16, 0:16].astype(np.float32)
    rgb = np.stack([128 + 100 * np.sin(xx / 5 + t / 3 + seed), 128 + 100 * np.cos(yy / 4 - t / 2),
                    np.broadcast_to(128 + 0 * xx, (length, 16, 16))], -1).astype(np.uint8)
    success = np.zeros(length, bool)
    success[-1] = seed % 2 == 0
    return {"robot0_eef_pos": rng.normal(size=(length, 3)).astype(np.float32), "agentview_rgb": rgb,
            "action": rng.uniform(-1, 1, (length, 4)).astype(np.float32), "reward": success.astype(np.float32),
            "success": success, "done": np.arange(length) == length - 1}


def make_dataset(root: Path) -> Path:
    with DatasetWriter(root, FPS, FEATURES) as w:
        for i, (n, task) in enumerate(zip(LENGTHS, TASKS)):
            w.add_episode(episode(n, seed=i), task)
    return root


def dataset_copy(template: Path, dst: Path) -> Path:
    shutil.copytree(template, dst, ignore=shutil.ignore_patterns(".writer.lock"))
    return dst


def episode_files(root: Path) -> list[Path]:
    """Data parquets and MP4s, sorted (what a committed episode consists of)."""
    return sorted(p for sub in ("data", "videos") for p in (root / sub).rglob("*") if p.is_file())
