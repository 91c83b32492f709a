"""Automatic keypoint labels from sim state: project object keypoints into a camera image and keep a
label only where the image agrees that the point is visible.

A keypoint (e.g. a cube's top-surface centre, in the robot base frame) is projected through the
camera's intrinsics and pose (policy_stack/skills/geometry.py). It is `visible` when, at the nearest
pixel, (1) the segmentation says the object itself is seen there and (2) the rendered metric depth
matches the projected depth within DEPTH_TOL_M; otherwise it is occluded (by the arm, another cube) or
out of view, and the label is not used for training.

robosuite conventions handled here and in sim/envs.py: its renders are bottom-up (OpenGL), so the
segmentation is flipped like the stored RGB-D images; depth is already converted to metres by SimEnv.
"""
from __future__ import annotations

import numpy as np

from policy_stack.skills.geometry import project

DEPTH_TOL_M = 0.01


def segmentation(env, camera: str) -> np.ndarray:
    """Per-pixel MuJoCo body id (upright image, -1 = nothing / not a geom) rendered for `camera`."""
    import mujoco
    rs = env.robosuite_env
    s = env.image_size
    seg = rs.sim.render(camera_name=camera, width=s, height=s, segmentation=True)
    if env._flip_images:
        seg = seg[::-1]
    objtype, objid = seg[..., 0], seg[..., 1]
    body = np.full(objtype.shape, -1, np.int64)
    is_geom = (objtype == int(mujoco.mjtObj.mjOBJ_GEOM)) & (objid >= 0)
    body[is_geom] = np.asarray(rs.sim.model.geom_bodyid)[objid[is_geom]]
    return body


def label_objects(env, camera: str, depth: np.ndarray, kp_base: dict, info: dict) -> dict:
    """For each object name -> {kp_px (2,) float32 (u, v), kp_depth_m, visible, mask (H, W) uint8,
    depth_residual_m}. `depth` is the stored (upright, metric) depth image of the same state."""
    body = segmentation(env, camera)
    h, w = depth.shape
    out = {}
    for name, p in kp_base.items():
        if hasattr(env, "object_mask"):      # an env whose objects are not whole bodies (bin quadrants)
            mask = env.object_mask(name, body, depth, info)
        else:
            mask = (body == env.object_body_id(name)).astype(np.uint8)
        uv, z = project(p[None], info["K"], info["T_base_cam"])
        u, v = uv[0]
        col, row = int(round(u)), int(round(v))
        visible, residual = False, float("nan")
        if 0 <= col < w and 0 <= row < h and z[0] > 0:
            residual = float(depth[row, col] - z[0])
            visible = bool(mask[row, col]) and abs(residual) < DEPTH_TOL_M
        out[name] = {"kp_px": np.array([u, v], np.float32), "kp_depth_m": float(z[0]), "visible": visible,
                     "mask": mask, "depth_residual_m": residual}
    return out
