"""Grounding datasets (what `policy-stack collect --grounding` writes) and the grounding metrics.

A grounding dataset is a folder with
  grounding.safetensors: rgb uint8 [N,H,W,3], depth float32 [N,H,W] (m), kp_px float32 [N,2] (u, v in
      the stored image), target_mask uint8 [N,H,W], K float32 [N,3,3], T_base_cam float32 [N,4,4],
      kp_base float32 [N,3];
  grounding.json: {"instructions": [N], "template_ids": [N], "split": [N], "task": [N], "target": [N],
      "env": str, "seed": int}.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from policy_stack.policies.kite.geometry import keypoint_to_base

TENSORS_FILE = "grounding.safetensors"
LABELS_FILE = "grounding.json"
TENSOR_KEYS = ("rgb", "depth", "kp_px", "target_mask", "K", "T_base_cam", "kp_base")


@dataclass
class GroundingData:
    rgb: torch.Tensor            # uint8 (N, H, W, 3)
    depth: torch.Tensor          # float32 (N, H, W) metres
    kp_px: torch.Tensor          # float32 (N, 2) (u, v)
    target_mask: torch.Tensor    # uint8 (N, H, W)
    K: torch.Tensor              # float32 (N, 3, 3)
    T_base_cam: torch.Tensor     # float32 (N, 4, 4)
    kp_base: torch.Tensor        # float32 (N, 3)
    instructions: list[str]
    task: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.rgb.shape[0])

    def subset(self, index) -> "GroundingData":
        idx = torch.as_tensor(index, dtype=torch.long)
        pick = lambda seq: [seq[i] for i in idx.tolist()] if seq else []
        n = len(self)
        meta = {k: pick(v) if isinstance(v, list) and len(v) == n else v for k, v in self.meta.items()}  # per-row lists
        return GroundingData(self.rgb[idx], self.depth[idx], self.kp_px[idx], self.target_mask[idx], self.K[idx],
                             self.T_base_cam[idx], self.kp_base[idx], pick(self.instructions), pick(self.task),
                             pick(self.split), meta)

    def save(self, folder: str | os.PathLike) -> Path:
        from policy_stack.file_modes import save_safetensors

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_safetensors({k: getattr(self, k).contiguous() for k in TENSOR_KEYS}, folder / TENSORS_FILE)
        labels = dict(self.meta, instructions=self.instructions, task=self.task, split=self.split)
        (folder / LABELS_FILE).write_text(json.dumps(labels))
        return folder


def concat_grounding(parts: list[GroundingData]) -> GroundingData:
    """Several grounding collections as one (rows in order). Per-row meta lists are joined; other meta
    values (env, camera, summary) come from the first part. Parts must share the image size."""
    if len(parts) == 1:
        return parts[0]
    shapes = {tuple(p.rgb.shape[1:]) for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"grounding collections differ in image shape: {sorted(shapes)}")
    cat = lambda k: torch.cat([getattr(p, k) for p in parts])
    join = lambda k: [x for p in parts for x in getattr(p, k)] if all(getattr(p, k) for p in parts) else []
    meta = dict(parts[0].meta)
    for k, v in parts[0].meta.items():
        if isinstance(v, list) and len(v) == len(parts[0]):
            if all(isinstance(p.meta.get(k), list) and len(p.meta[k]) == len(p) for p in parts):
                meta[k] = [x for p in parts for x in p.meta[k]]
            else:
                meta.pop(k)
    return GroundingData(*(cat(k) for k in TENSOR_KEYS), join("instructions"), join("task"), join("split"), meta)


def load_grounding(folder: str | os.PathLike) -> GroundingData:
    """Read and check a grounding folder; errors name the file and the offending field."""
    from safetensors.torch import load_file

    folder = Path(folder)
    tpath, jpath = folder / TENSORS_FILE, folder / LABELS_FILE
    for p in (tpath, jpath):
        if not p.is_file():
            raise FileNotFoundError(f"grounding dataset file missing: {p}")
    tensors = load_file(str(tpath))
    missing = [k for k in TENSOR_KEYS if k not in tensors]
    if missing:
        raise ValueError(f"{tpath} lacks tensor(s) {missing}")
    labels = json.loads(jpath.read_text())
    n = int(tensors["rgb"].shape[0])
    for k in TENSOR_KEYS:
        if int(tensors[k].shape[0]) != n:
            raise ValueError(f"{tpath}: {k} has {tensors[k].shape[0]} rows, rgb has {n}")
    if tensors["rgb"].dtype != torch.uint8 or tensors["rgb"].ndim != 4 or tensors["rgb"].shape[-1] != 3:
        raise ValueError(f"{tpath}: rgb must be uint8 (N, H, W, 3), got {tensors['rgb'].dtype} {tuple(tensors['rgb'].shape)}")
    instructions = labels.get("instructions")
    if not isinstance(instructions, list) or len(instructions) != n:
        raise ValueError(f"{jpath}: 'instructions' must be a list of {n} strings")
    meta = {k: v for k, v in labels.items() if k not in ("instructions", "task", "split")}
    as_list = lambda key: [str(x) for x in labels.get(key, [])] if len(labels.get(key, [])) == n else []
    return GroundingData(tensors["rgb"], tensors["depth"].float(), tensors["kp_px"].float(),
                         tensors["target_mask"], tensors["K"].float(), tensors["T_base_cam"].float(),
                         tensors["kp_base"].float(), [str(s) for s in instructions], as_list("task"),
                         as_list("split"), meta)


# ------------------------------------------------------------------------------------------ metrics
def argmax_pixels(pred_uv: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted (u, v) -> the integer pixel (column, row) it falls in: rounded, clipped to the image."""
    pred_uv = np.asarray(pred_uv, dtype=np.float64)
    return (np.clip(np.rint(pred_uv[:, 0]).astype(int), 0, w - 1),
            np.clip(np.rint(pred_uv[:, 1]).astype(int), 0, h - 1))


def on_target(pred_uv: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per row: the predicted pixel lies inside that row's instructed-object mask (N, H, W): the
    correct-object test of every grounding score."""
    ui, vi = argmax_pixels(pred_uv, *masks.shape[1:])
    return masks[np.arange(len(masks)), vi, ui] > 0


def rows_by_frame(meta: dict, n: int) -> dict[tuple, list[int]]:
    """(episode_seed, frame) -> the rows (one per labelled object) asked on that same image."""
    frames: dict[tuple, list[int]] = {}
    for i in range(n):
        frames.setdefault((meta["episode_seed"][i], meta["frame"][i]), []).append(i)
    return frames


def grounding_metrics(pred_uv: np.ndarray, data: GroundingData, depth_window: int = 2) -> dict:
    """correct_object_rate: the predicted pixel (rounded) lies inside the instructed object's mask;
    pixel_error_px: |pred - label| (median, p90); error_3d_mm: the predicted pixel lifted with the
    robust depth vs the labelled base-frame keypoint (median, p90); no_depth: predictions without any
    valid depth near them (counted, excluded from the 3-D error)."""
    pred_uv = np.asarray(pred_uv, dtype=np.float64)
    n = len(data)
    inside = on_target(pred_uv, data.target_mask.numpy())
    px_err = np.linalg.norm(pred_uv - data.kp_px.numpy().astype(np.float64), axis=1)
    err3d, no_depth = [], 0
    depth, K, T, kp_base = data.depth.numpy(), data.K.numpy(), data.T_base_cam.numpy(), data.kp_base.numpy()
    for i in range(n):
        p = keypoint_to_base(pred_uv[i, 0], pred_uv[i, 1], depth[i], K[i], T[i], depth_window)
        if p is None:
            no_depth += 1
            continue
        err3d.append(float(np.linalg.norm(p - kp_base[i])) * 1e3)
    q = lambda a, p: float(np.percentile(a, p)) if len(a) else float("nan")
    by_wording: dict[str, list] = {}
    for text, ok in zip(data.instructions, inside.tolist()):
        by_wording.setdefault(wording(text), []).append(ok)
    return {"samples": n, "correct_object_rate": float(inside.mean()) if n else float("nan"),
            "pixel_error_px_median": q(px_err, 50), "pixel_error_px_p90": q(px_err, 90),
            "error_3d_mm_median": q(err3d, 50), "error_3d_mm_p90": q(err3d, 90), "no_depth": no_depth,
            # which phrasings fail: {wording: [correct, rows]}, worst first
            "correct_by_wording": dict(sorted(((k, [sum(v), len(v)]) for k, v in by_wording.items()),
                                              key=lambda kv: (kv[1][0] / kv[1][1], kv[0])))}


# "retrieve the small yellow cube" -> "retrieve the {x}": the object phrase of any of the language tasks
# (a cube, or "one", with optional size and colour; "the <words> nut|can|carton|..." is left whole: no attributes)
_CUBE_PHRASE = re.compile(r"\bthe (?:(?:small|large) )?(?:\w+ )?(?:cube|one)\b")


def wording(instruction: str) -> str:
    return _CUBE_PHRASE.sub("the {x}", instruction)
