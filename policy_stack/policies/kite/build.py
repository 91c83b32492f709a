"""From a grounding dataset to a KITE checkpoint: the policy built with the data's camera and skills,
trained, its instruction embeddings frozen in, saved (safetensors + JSON via policy_stack.checkpoint).

    policy-stack train --policy kite --data /path/multi_cube_train --out runs/kite --steps 3000

`--data` is a grounding folder (grounding.safetensors + grounding.json); `--val` (optional) another
one whose metrics are logged during training and written to the summary.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from policy_stack.policies.kite.config import KiteConfig
from policy_stack.policies.kite.data import GroundingData, grounding_metrics, load_grounding
from policy_stack.policies.kite.train_grounding import predict, train_grounding


def build_policy(data: GroundingData, config: KiteConfig | dict | None = None, action_space=None):
    """An untrained KitePolicy fitted to the data: image size, skills and the (fixed) camera."""
    from policy_stack.policies.kite.policy import action_stats
    from policy_stack.policies.registry import make_policy
    from policy_stack.spaces import ActionSpace

    if action_space is None:
        action_space = ActionSpace(["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"], [-1.0] * 7, [1.0] * 7,
                                   "eef_delta", [6])
    fields = dict(config or {}) if not isinstance(config, KiteConfig) else {}
    h, w = int(data.rgb.shape[1]), int(data.rgb.shape[2])
    fields.setdefault("image_shape", [h, w])
    if data.task:
        fields.setdefault("skills", sorted(set(data.task)))
    camera = data.meta.get("camera") or (data.meta.get("summary") or {}).get("camera")
    if camera:
        fields.setdefault("cameras", [camera])
    K, T = data.K.numpy(), data.T_base_cam.numpy()
    if np.allclose(K, K[:1], atol=1e-4) and np.allclose(T, T[:1], atol=1e-4):
        fields.setdefault("camera_K", K[0].tolist())
        fields.setdefault("camera_T_base_cam", T[0].tolist())
    config = config if isinstance(config, KiteConfig) else fields
    return make_policy("kite", config, action_stats(action_space), action_space)


def train_kite(data_dir: str, out: str, steps: int, batch: int = 32, seed: int = 0, overrides: dict | None = None,
               device: str = "auto", val_dir: str | None = None, val_every: int = 500, progress: bool = True) -> dict:
    from policy_stack.checkpoint import save_checkpoint
    from policy_stack.rng import seed_everything

    seed_everything(seed)
    data = load_grounding(data_dir)
    val = load_grounding(val_dir) if val_dir else None
    policy = build_policy(data, dict(overrides or {}, device=device))
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    result = train_grounding(policy, data, steps, batch=batch, seed=seed, log_path=out_path / "train_log.jsonl",
                             progress=progress, val=val, val_every=val_every if val is not None else 0)
    if val is not None:
        result["val"] = grounding_metrics(predict(policy, val), val, policy.config.depth_window)
    policy.freeze_instruction_cache()
    cfg = policy.config
    meta = {"data": str(Path(data_dir).resolve()), "rows": len(data), "final_loss": result["final_loss"],
            "wall_s": result["wall_s"], "env": data.meta.get("env"),
            "train_config": {"steps": steps, "batch": batch, "seed": seed, "loss": cfg.loss, "lr": cfg.lr,
                             "weight_decay": cfg.weight_decay, "warmup": cfg.lr_warmup_steps,
                             "grad_clip": cfg.grad_clip, "device": str(policy.device)}}
    save_checkpoint(policy.to("cpu"), out_path / "checkpoint", meta=meta)
    summary = {k: v for k, v in result.items() if k != "history"}
    summary.update(checkpoint=str(out_path / "checkpoint"), rows=len(data))
    (out_path / "train_summary.json").write_text(json.dumps(summary, indent=1))
    return summary
