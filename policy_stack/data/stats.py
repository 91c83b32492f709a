"""Statistics: LeRobot-style feature stats (meta/stats.json) and normalization stats for training.

Two shapes of the same idea:
- Feature stats, keyed by dataset feature name, the way LeRobot 0.4.4 writes them: min, max, mean,
  std, count and quantiles q01/q10/q50/q90/q99, computed per episode (stored in the episodes table as
  `stats/<feature>/<stat>`) and aggregated over episodes (min of mins, count-weighted mean, pooled
  variance, count-weighted average of quantiles, as LeRobot's aggregate_stats does). Images are per
  channel in [0, 1] with shape (3, 1, 1); depth (H, W) millimetres is per image column, shape (W,),
  which is what LeRobot computes for a 2-D numeric feature (so LeRobot and we can append to each
  other's datasets: aggregating needs equal shapes).
- Normalization stats, keyed by env observation key (and "action"), `{key: {"min","max","mean","std"}}`
  with lists in JSON (docs/CONVENTIONS.md), optionally with "count" so two sets can be merged.
  Depth is in metres there, matching what the window sampler yields.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from policy_stack.persist import write_json_atomic

from .features import MM_PER_METRE, env_key

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(round(q * 100)):02d}" for q in QUANTILES)
MAX_IMAGE_FRAMES_PER_EPISODE = 100   # LeRobot samples <= ~100 frames per short episode for image stats


# ---------------------------------------------------------------- per-episode feature stats (LeRobot)

def array_stats(values: np.ndarray) -> dict:
    """Stats over axis 0 of (N, ...) values (vectors: per dimension)."""
    values = np.asarray(values)
    as_float = values.astype(np.float64)
    out = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": as_float.mean(axis=0),
        "std": as_float.std(axis=0),
        "count": np.array([values.shape[0]], np.int64),
    }
    for name, q in zip(QUANTILE_KEYS, np.quantile(as_float, QUANTILES, axis=0)):
        out[name] = q
    return out


def image_stats(frames: np.ndarray) -> dict:
    """Per-channel stats of (T, H, W, 3) uint8 frames, in [0, 1], shaped (3, 1, 1) as LeRobot wants."""
    t = frames.shape[0]
    picked = frames[np.linspace(0, t - 1, min(t, MAX_IMAGE_FRAMES_PER_EPISODE)).round().astype(int)]
    pixels = picked.reshape(-1, 3).astype(np.float64) / 255.0
    out = array_stats(pixels)
    out["count"] = np.array([picked.shape[0]], np.int64)   # LeRobot counts sampled frames, not pixels
    return {k: (v if k == "count" else np.asarray(v, np.float64).reshape(3, 1, 1)) for k, v in out.items()}


def depth_stats(values: np.ndarray) -> dict:
    """Stats of (T, H, W) depth in LeRobot's shape for a 2-D numeric feature: frames and rows pooled,
    one entry per image column, (W,). `count` is frames, as LeRobot counts it."""
    values = np.asarray(values)
    out = array_stats(values.reshape(-1, values.shape[-1]))
    out["count"] = np.array([values.shape[0]], np.int64)
    return out


def pooled_scalar(stats: dict) -> dict:
    """min/max/mean/std of per-column stats pooled to one number each (the columns have equal counts)."""
    mean = np.asarray(stats["mean"], np.float64).reshape(-1)
    std = np.asarray(stats["std"], np.float64).reshape(-1)
    pooled_mean = mean.mean()
    return {"min": np.asarray(stats["min"], np.float64).reshape(-1).min(keepdims=True),
            "max": np.asarray(stats["max"], np.float64).reshape(-1).max(keepdims=True),
            "mean": np.array([pooled_mean]),
            "std": np.array([np.sqrt(np.mean(std ** 2 + (mean - pooled_mean) ** 2))])}


def scalar_stats(values: np.ndarray) -> dict:
    """One number per stat over every element (depth maps, scalar columns): shape (1,)."""
    flat = np.asarray(values).reshape(values.shape[0], -1)
    out = array_stats(flat.reshape(-1, 1))
    out["count"] = np.array([values.shape[0]], np.int64)
    return out


def aggregate_stats(per_episode: list[dict]) -> dict:
    """Combine per-episode stats of one feature (LeRobot compute_stats.aggregate_feature_stats)."""
    counts = np.array([float(np.asarray(s["count"]).reshape(-1)[0]) for s in per_episode])
    total = counts.sum()
    w = counts / total
    means = np.stack([np.asarray(s["mean"], np.float64) for s in per_episode])
    stds = np.stack([np.asarray(s["std"], np.float64) for s in per_episode])
    wshape = (-1,) + (1,) * (means.ndim - 1)
    mean = (means * w.reshape(wshape)).sum(axis=0)
    var = ((stds ** 2 + (means - mean) ** 2) * w.reshape(wshape)).sum(axis=0)   # pooled variance
    out = {
        "min": np.min(np.stack([np.asarray(s["min"]) for s in per_episode]), axis=0),
        "max": np.max(np.stack([np.asarray(s["max"]) for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(total)], np.int64),
    }
    for q in QUANTILE_KEYS:
        if all(q in s for s in per_episode):
            qs = np.stack([np.asarray(s[q], np.float64) for s in per_episode])
            out[q] = (qs * w.reshape(wshape)).sum(axis=0)
    return out


def to_jsonable(stats: dict) -> dict:
    return {k: (to_jsonable(v) if isinstance(v, dict) else np.asarray(v).tolist()) for k, v in stats.items()}


# ---------------------------------------------------------------- normalization stats (training)

def compute_stats(arrays: dict[str, np.ndarray]) -> dict:
    """Normalization stats from (N, ...) arrays keyed by env key.

    `<cam>_rgb` (N, H, W, 3) uint8 -> per channel, in [0, 1]; `<cam>_depth` (N, H, W) -> one scalar;
    anything else -> per dimension over axis 0.
    """
    out = {}
    for key, values in arrays.items():
        values = np.asarray(values)
        if key.endswith("_rgb"):
            flat = values.reshape(-1, values.shape[-1]).astype(np.float64) / 255.0
        elif key.endswith("_depth"):
            flat = values.reshape(-1, 1).astype(np.float64)
        else:
            flat = values.reshape(values.shape[0], -1).astype(np.float64)
        out[key] = {"min": flat.min(0), "max": flat.max(0), "mean": flat.mean(0), "std": flat.std(0),
                    "count": np.array([flat.shape[0]], np.int64)}
    return out


def merge_stats(a: dict, b: dict) -> dict:
    """Exact merge of two normalization-stat sets that both carry "count" (pooled mean and variance)."""
    out = {}
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            out[key] = a.get(key, b.get(key))
            continue
        for side, s in (("first", a[key]), ("second", b[key])):
            if "count" not in s:
                raise ValueError(f"merge_stats: {key!r} in the {side} set has no 'count'; cannot weight it")
        out[key] = aggregate_stats([a[key], b[key]])
        out[key] = {k: out[key][k] for k in ("min", "max", "mean", "std", "count")}
    return out


def normalization_stats_from_meta(meta_stats: dict) -> dict:
    """Turn meta/stats.json (dataset keys, LeRobot shapes) into env-keyed normalization stats.

    Images (3, 1, 1) -> (3,); depth millimetres -> metres, pooled to one number (stats.json holds one
    per image column, or one in datasets written before that); bookkeeping columns are dropped.
    """
    out = {}
    for key, s in meta_stats.items():
        if key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
            continue
        ek = env_key(key)
        is_depth = key.startswith("observation.depth.")
        scale = 1.0 / MM_PER_METRE if is_depth else 1.0
        source = pooled_scalar(s) if is_depth else s
        entry = {name: (np.asarray(source[name], np.float64).reshape(-1) * scale) for name in ("min", "max", "mean", "std")}
        if "count" in s:
            entry["count"] = np.asarray(s["count"], np.int64).reshape(-1)
        out[ek] = entry
    return out


def save_stats(path: str | Path, stats: dict) -> None:
    write_json_atomic(Path(path), to_jsonable(stats), indent=2)


def load_stats(path: str | Path) -> dict:
    """JSON -> {key: {stat: float32 ndarray}}; errors name the key missing a required stat."""
    path = Path(path)
    raw = json.loads(path.read_text())
    out = {}
    for key, s in raw.items():
        missing = [name for name in ("min", "max", "mean", "std") if name not in s]
        if missing:
            raise ValueError(f"{path}: stats for {key!r} lack {missing}")
        out[key] = {name: np.asarray(v, np.float32 if name != "count" else np.int64) for name, v in s.items()}
    return out
