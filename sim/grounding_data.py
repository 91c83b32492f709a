"""Grounding data: (image, sub-instruction) -> keypoint labels, written for the KITE grounding model.

One folder per split:
  grounding.safetensors  rgb uint8 [N,H,W,3], depth float32 [N,H,W] (m), kp_px float32 [N,2] (u, v in the
                         stored upright image), target_mask uint8 [N,H,W], K float32 [N,3,3],
                         T_base_cam float32 [N,4,4], kp_base float32 [N,3] (robot base frame, m)
  grounding.json         {"instructions": [N], "template_ids": [N], "split": [N], "task": [N] (skill:
                         pick | place), "target": [N] (object name), "env", "seed", plus per row
                         "episode_seed", "frame" (reset | arm), "target_colour", "target_size";
                         and "summary" (counts, visibility rate)}
Rows share rendered frames: each frame (an episode's first observation, and the arm moved to a random
pose above the table) is rendered once and labelled for every object whose keypoint is visible there
(segmentation and depth agree, sim/keypoint_labels.py); occluded ones are counted, not written.
heldout_attributes rows target only the held-out (size, colour) combinations.
"""
from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import numpy as np

from sim.instructions import HELDOUT_COMBOS, grounding_queries

CAMERA = "grounding"
ARM_STEPS = 25          # control steps toward a random hand pose before the second frame


# Where the open hand goes for the second frame (robosuite world, m; x, y, z ranges): over the cubes'
# table; an env may say otherwise (`arm_frame_box`, e.g. pick_place_multi: over both bins).
ARM_BOX = ((-0.18, 0.15), (-0.2, 0.2), (0.88, 1.1))


def _arm_frame(env, rng: np.random.Generator) -> dict:
    """Move the open hand toward a random point 8-30 cm above the table for ARM_STEPS steps (the arm then
    occludes part of the scene, as it does when a policy grounds its next sub-instruction)."""
    box = getattr(env, "arm_frame_box", ARM_BOX)
    target_world = np.array([rng.uniform(*box[0]), rng.uniform(*box[1]), rng.uniform(*box[2])])
    obs = None
    for _ in range(ARM_STEPS):
        cur = env.privileged_state()["raw_obs"]
        a = np.zeros(7)
        a[:3] = np.clip(10 * (target_world - cur["robot0_eef_pos"]), -1, 1)
        a[6] = -1.0
        obs, _, _, _ = env.step(a)
    return obs


def collect_grounding(env_name: str, split: str, episodes: int, seed: int, out, image_size: int = 128,
                      queries_per_object: int = 1, arm_frames: int = 1, log=None) -> dict:
    from safetensors.numpy import save_file

    from sim.envs import make_env
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = make_env(env_name, cameras=(CAMERA,), image_size=image_size, depth=True, instruction_split=split)
    arrays = {k: [] for k in ("rgb", "depth", "kp_px", "target_mask", "K", "T_base_cam", "kp_base")}
    meta = {k: [] for k in ("instructions", "template_ids", "split", "task", "target", "episode_seed",
                            "frame", "target_colour", "target_size")}
    seen = visible = 0
    t0 = time.perf_counter()
    try:
        for k in range(episodes):
            ep_seed = seed + k
            rng = random.Random(f"grounding:{split}:{ep_seed}")
            np_rng = np.random.default_rng(ep_seed + 7_000_003)
            # Label each frame in the state it was rendered in: the segmentation is rendered from the
            # current sim state, so a frame labelled after the arm moved on would get the wrong masks.
            obs = env.reset(seed=ep_seed)
            ep_split = env.episode.split          # "heldout" draws one of the three per episode
            labelled = [("reset", obs, env.ground_truth(camera=CAMERA, obs=obs))]
            for _ in range(arm_frames):
                obs = _arm_frame(env, np_rng)
                labelled.append(("arm", obs, env.ground_truth(camera=CAMERA, obs=obs)))
            for frame_name, obs, gt in labelled:
                for name, o in gt["objects"].items():
                    if ep_split == "heldout_attributes" and (o["size"], o["colour"]) not in HELDOUT_COMBOS:
                        continue
                    seen += 1
                    if not o["visible"]:
                        continue
                    visible += 1
                    if hasattr(env, "grounding_queries"):     # an env with its own grammar (pick_place_multi)
                        queries = env.grounding_queries(rng, ep_split, name, queries_per_object)
                    else:
                        queries = grounding_queries(rng, ep_split, env.episode.layout, name, queries_per_object)
                    for tid, skill, text in queries:
                        arrays["rgb"].append(obs[f"{CAMERA}_rgb"])
                        arrays["depth"].append(obs[f"{CAMERA}_depth"])
                        arrays["kp_px"].append(o["kp_px"])
                        arrays["target_mask"].append(o["mask"])
                        arrays["K"].append(gt["camera"]["K"])
                        arrays["T_base_cam"].append(gt["camera"]["T_base_cam"])
                        arrays["kp_base"].append(o["kp_base"])
                        for key, val in (("instructions", text), ("template_ids", tid), ("split", ep_split),
                                         ("task", skill), ("target", name), ("episode_seed", ep_seed),
                                         ("frame", frame_name), ("target_colour", o["colour"]),
                                         ("target_size", o["size"])):
                            meta[key].append(val)
            if log is not None and (k + 1) % 25 == 0:
                log(f"grounding {split}: {k + 1}/{episodes} episodes, {len(meta['target'])} rows, "
                    f"{time.perf_counter() - t0:.0f} s")
    finally:
        env.close()
    if not meta["target"]:
        raise RuntimeError(f"no visible keypoint in {episodes} episodes of {env_name} ({split})")
    dtypes = {"rgb": np.uint8, "depth": np.float32, "kp_px": np.float32, "target_mask": np.uint8,
              "K": np.float32, "T_base_cam": np.float32, "kp_base": np.float32}
    tensors = {k: np.ascontiguousarray(np.stack(v).astype(dtypes[k])) for k, v in arrays.items()}
    summary = {"rows": len(meta["target"]), "episodes": episodes, "frames": episodes * (1 + arm_frames),
               "keypoints_checked": seen, "keypoints_visible": visible,
               "visibility_rate": visible / max(seen, 1), "wall_s": round(time.perf_counter() - t0, 1),
               "image_size": image_size, "camera": CAMERA}
    meta.update(env=env_name, seed=seed, summary=summary)
    # write both files beside their final names, then rename: a reader never sees half a dataset
    tmp_st, tmp_js = out / ".grounding.safetensors.tmp", out / ".grounding.json.tmp"
    save_file(tensors, str(tmp_st))
    tmp_js.write_text(json.dumps(meta))
    os.chmod(tmp_st, 0o644)    # safetensors writes 0600; the trainer may run as another user
    os.replace(tmp_st, out / "grounding.safetensors")
    os.replace(tmp_js, out / "grounding.json")
    return summary


def load_grounding(folder) -> tuple[dict, dict]:
    """(tensors as numpy arrays, metadata) of a grounding-data folder."""
    from safetensors.numpy import load_file
    folder = Path(folder)
    return load_file(str(folder / "grounding.safetensors")), json.loads((folder / "grounding.json").read_text())
