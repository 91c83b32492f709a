"""The keypoint-conditioned skill stage: keypoint + the RGB-D around it -> a parameterized primitive
(policy_stack/skills/primitives.py, the same motion code the scripted experts use).

A primitive needs more than the point: the hand's yaw (a cube's faces) and the object's height (how
deep to grasp). KITE's learned skills predict such parameters from the point cloud around the
keypoint; here they are measured from that point cloud directly:
  - the object's points are the pixels in a window around the keypoint whose base-frame height is
    within `band_m` of the keypoint's (the top face; the table and lower neighbours fall away);
  - yaw: orientation of the minimum-area rectangle around those points in the base xy plane
    (cv2.minAreaRect), modulo the 90 degree symmetry of a box;
  - height: the keypoint's height above the table, the table being the lowest mode of the window.
"""
from __future__ import annotations

import numpy as np

from policy_stack.policies.kite.geometry import deproject, transform


def local_point_cloud(depth: np.ndarray, uv, K, T_base_cam, window: int) -> np.ndarray:
    """Base-frame points (M, 3) of the valid pixels in a (2*window+1)^2 window around uv."""
    h, w = depth.shape
    u0, v0 = int(round(float(uv[0]))), int(round(float(uv[1])))
    vs, us = np.mgrid[max(0, v0 - window): min(h, v0 + window + 1), max(0, u0 - window): min(w, u0 + window + 1)]
    z = np.asarray(depth, np.float64)[vs, us]
    ok = np.isfinite(z) & (z > 0.05)
    K = np.asarray(K, np.float64)
    x = (us[ok] - K[0, 2]) * z[ok] / K[0, 0]
    y = (vs[ok] - K[1, 2]) * z[ok] / K[1, 1]
    cam = np.stack([x, y, z[ok]], axis=1)
    T = np.asarray(T_base_cam, np.float64)
    return cam @ T[:3, :3].T + T[:3, 3]


def object_parameters(depth: np.ndarray, uv, keypoint_base: np.ndarray, K, T_base_cam, window: int = 12,
                      band_m: float = 0.01, default_height: float = 0.04) -> dict:
    """{"yaw": rad (box symmetry, in [-pi/4, pi/4)), "height": m, "points": top-face point count}."""
    import cv2

    pts = local_point_cloud(depth, uv, K, T_base_cam, window)
    kz = float(keypoint_base[2])
    top = pts[np.abs(pts[:, 2] - kz) < band_m] if len(pts) else pts
    yaw = 0.0
    if len(top) >= 5:
        (_, _), (_, _), angle = cv2.minAreaRect(top[:, :2].astype(np.float32))
        yaw = float(np.deg2rad(angle))
        yaw = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
    height = default_height
    if len(pts):
        table = float(np.percentile(pts[:, 2], 5))
        if kz - table > 0.01:
            height = kz - table
    return {"yaw": yaw, "height": float(np.clip(height, 0.01, 0.2)), "points": int(len(top))}


def make_primitive(name: str, keypoint_base: np.ndarray, params: dict, eef_quat_xyzw):
    """The primitive for `name` ("pick" | "place") at a base-frame keypoint with measured parameters;
    of the box's four equivalent yaws, the one needing the least wrist turn."""
    from policy_stack.skills import primitives

    yaw = primitives.nearest_yaw(params["yaw"], np.pi / 2, eef_quat_xyzw)
    if name == "pick":
        return primitives.Pick(keypoint_base, yaw, object_height=params["height"])
    if name == "place":
        return primitives.Place(keypoint_base, yaw)      # SkillSequence hands it what the pick holds
    raise ValueError(f"skill {name!r}: the kite policy runs 'pick' and 'place'")
