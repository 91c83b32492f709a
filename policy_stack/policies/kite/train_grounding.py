"""Training the grounding model (and the skill head) on a grounding dataset.

The project's main trainer (policy_stack/train) reads LeRobot episode datasets of action chunks; the
grounding model learns from single labelled images instead, so it has this small loop: AdamW from
the policy config's optimizer preset, linear warmup + cosine decay (train/schedule.py), random
translation and colour jitter, a tqdm progress bar, one JSON line per `log_every` steps.

Text embeddings are computed once per unique instruction (the encoder is frozen), so an epoch costs
only the image network.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from policy_stack.policies.kite.data import GroundingData
from policy_stack.policies.kite.grounding import decode_keypoint, heatmap_loss, image_tensor
from policy_stack.train.schedule import set_lr


def random_zoom(images: torch.Tensor, kp_uv: torch.Tensor, max_scale: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample zoom by a factor s, log-uniform in [1/max_scale, max_scale], about a random point of
    the image (edges replicated when zooming out); the keypoint moves with the image:
    uv' = c + s (uv - c). What for: a cube's size in pixels then no longer tells its size class (the
    two classes differ by 1.3x in the scene, less than the zoom range), so "large"/"small" can only be
    read relative to the other cubes of the frame, and a colour's look is seen at every pixel size.
    The labels stay true: the same cube is the answer, only the image is magnified."""
    b, _, h, w = images.shape
    log_s = (torch.rand(b, generator=generator) * 2 - 1) * math.log(max_scale)
    s = torch.exp(log_s)
    centre = torch.rand(b, 2, generator=generator) * 2 - 1        # normalised (x, y) in [-1, 1]
    # pixel (u, v) <-> normalised x = (2u + 1) / w - 1 (align_corners=False)
    size = torch.tensor([w, h], dtype=torch.float32)
    kp_n = (2 * kp_uv.float() + 1) / size - 1
    moved = centre + s[:, None] * (kp_n - centre)
    # a zoom that would push the keypoint out of the image (or onto its border) is not applied
    margin = 2 * 2.0 / size
    keep = ((moved > -1 + margin) & (moved < 1 - margin)).all(1)
    s = torch.where(keep, s, torch.ones_like(s))
    # grid_sample maps each output point to the input point c + (x_out - c) / s
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1 / s
    theta[:, 1, 1] = 1 / s
    theta[:, :, 2] = centre * (1 - 1 / s)[:, None]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    kp_n = centre + s[:, None] * (kp_n - centre)
    return out, (kp_n + 1) * size / 2 - 0.5


def augment(images: torch.Tensor, kp_uv: torch.Tensor, shift_px: int, color: float,
            generator: torch.Generator, zoom: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random per-sample zoom (zoom > 1: see random_zoom), translation (edge-replicated; the keypoint
    moves with the image) and brightness/contrast jitter of the colour channels (depth, if present, is
    left alone by the jitter). A zoom resamples a depth channel like the image without changing its
    values (not a physically consistent camera move), so it is meant for RGB-only grounding inputs, the
    default (depth_input false: depth is used only to lift the keypoint, never augmented there)."""
    b, c, h, w = images.shape
    out, kp = images, kp_uv.clone()
    if zoom > 1.0:
        out, kp = random_zoom(out, kp, zoom, generator)
    if shift_px > 0:
        padded = F.pad(out, (shift_px,) * 4, mode="replicate")
        shifts = torch.randint(-shift_px, shift_px + 1, (b, 2), generator=generator)
        out = torch.stack([padded[i, :, shift_px - int(dy): shift_px - int(dy) + h,
                                  shift_px - int(dx): shift_px - int(dx) + w] for i, (dx, dy) in enumerate(shifts)])
        kp = kp + shifts.float()
    if color > 0:
        gain = 1 + (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * color
        bias = (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * color
        rgb = ((out[:, :3] - 0.5) * gain + 0.5 + bias).clamp(0, 1)
        out = torch.cat([rgb, out[:, 3:]], dim=1)
    return out, kp


def batch_inputs(policy, data: GroundingData, idx: torch.Tensor) -> torch.Tensor:
    cfg = policy.config
    depth = data.depth[idx] if cfg.depth_input else None
    return image_tensor(data.rgb[idx], depth, cfg.depth_max_m)


@torch.no_grad()
def predict(policy, data: GroundingData, batch: int = 64) -> np.ndarray:
    """(N, 2) predicted (u, v) for every sample."""
    was_training = policy.training
    policy.eval()
    out = []
    emb = policy.text_cache.get(data.instructions)
    for s in range(0, len(data), batch):
        idx = torch.arange(s, min(len(data), s + batch))
        logits = policy.grounding_logits(batch_inputs(policy, data, idx).to(policy.device),
                                         [data.instructions[i] for i in idx.tolist()], emb[idx].to(policy.device))
        out.append(decode_keypoint(logits, policy.config.softargmax_window).cpu())
    policy.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 2), np.float32)


def train_grounding(policy, data: GroundingData, steps: int, batch: int = 32, seed: int = 0,
                    log_every: int = 50, log_path: str | Path | None = None, progress: bool = True,
                    val: GroundingData | None = None, val_every: int = 0) -> dict:
    """Train policy.grounding (and policy.skill_head when the data carry task labels) in place."""
    from tqdm import tqdm

    cfg = policy.config
    preset = cfg.optimizer_preset()
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = preset.build(params)
    gen = torch.Generator().manual_seed(seed)
    emb_all = policy.text_cache.get(data.instructions)          # (N, 384), once
    skill_labels = policy.skill_labels(data.task) if data.task else None
    log = open(log_path, "a") if log_path else None
    policy.train()
    t0, losses, history = time.perf_counter(), [], []
    n = len(data)
    bar = tqdm(range(steps), desc="kite grounding", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for step in bar:
        lr = set_lr(optimizer, preset.lr, step, preset.warmup_steps, steps)
        idx = torch.randint(0, n, (min(batch, n),), generator=gen)
        images, kp = augment(batch_inputs(policy, data, idx), data.kp_px[idx], cfg.augment_shift_px,
                             cfg.augment_color, gen, cfg.augment_zoom)
        emb = emb_all[idx]
        if cfg.augment_text_noise > 0:
            noise = torch.randn(emb.shape, generator=gen) * (cfg.augment_text_noise / math.sqrt(emb.shape[1]))
            emb = F.normalize(emb + noise, dim=1)
        emb = emb.to(policy.device)
        logits = policy.grounding(images.to(policy.device), emb)
        loss = heatmap_loss(logits, kp.to(policy.device), cfg.sigma_px, cfg.loss)
        if skill_labels is not None:
            loss = loss + F.cross_entropy(policy.skill_head(emb), skill_labels[idx].to(policy.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if preset.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, preset.grad_clip)
        optimizer.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"kite grounding: loss became {loss.item()} at step {step}")
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            entry = {"step": step + 1, "loss": float(np.mean(losses[-log_every:])), "lr": lr,
                     "wall_s": round(time.perf_counter() - t0, 1)}
            if val is not None and val_every and ((step + 1) % val_every == 0 or step + 1 == steps):
                from policy_stack.policies.kite.data import grounding_metrics
                m = grounding_metrics(predict(policy, val), val, cfg.depth_window)
                entry.update(val_correct=m["correct_object_rate"], val_px=m["pixel_error_px_median"])
                policy.train()
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.4f}")
            if log:
                log.write(json.dumps(entry) + "\n")
                log.flush()
    if log:
        log.close()
    policy.eval()
    return {"steps": steps, "batch": batch, "final_loss": float(np.mean(losses[-log_every:])) if losses else None,
            "wall_s": round(time.perf_counter() - t0, 1), "history": history}
