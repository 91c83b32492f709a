"""Keypoint -> primitive: what a pick or place needs besides the keypoint, read from the RGB-D view.

KITE's grounding model gives one pixel; its skills need more: the object's heading (the fingers must
close across a cube's faces) and its height (how far below the keypoint to grasp). Both come from the
metric depth around the deprojected keypoint, with no object mask:
  - top face: the 3-D points within `radius` (horizontally) of the keypoint and within `band` of its
    height; their smallest bounding square gives the yaw (geometry.top_face_yaw);
  - support: the surface the object stands on, the lower points in a ring just outside the object;
    height = keypoint z - support z.
Pure numpy, base frame, the conventions of geometry.py. The multi-cube oracle and the KITE policy can
both build their primitives here, so they differ only in where the keypoint comes from.
"""
from __future__ import annotations

import numpy as np

from policy_stack.skills.geometry import deproject, robust_depth, top_face_yaw
from policy_stack.skills.primitives import Pick, Place, nearest_yaw

TOP_RADIUS_M = 0.035       # a 5.2 cm cube's top face lies within 3.7 cm of its centre (corners)
TOP_BAND_M = 0.006
RING_M = (0.045, 0.075)    # outside the object, inside the 10 cm minimum spacing of the next one
DEFAULT_HEIGHT_M = 0.04


def depth_points(depth, K, T_base_cam) -> np.ndarray:
    """Every valid pixel of a metric depth image as a base-frame point, (H*W', 3)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    d = np.asarray(depth, np.float64).reshape(-1)
    ok = np.isfinite(d) & (d > 0)
    uv = np.stack([u.reshape(-1), v.reshape(-1)], axis=1)[ok].astype(np.float64)
    return deproject(uv, d[ok], K, T_base_cam)


def keypoint_to_base(kp_px, depth, K, T_base_cam, radius: int = 1) -> np.ndarray:
    """A keypoint pixel (u, v) -> base-frame point, with a median depth over a small window."""
    d = robust_depth(depth, kp_px, radius=radius)
    return deproject(np.asarray(kp_px, np.float64)[None], [d], K, T_base_cam)[0]


def object_geometry(kp_base, depth, K, T_base_cam) -> dict:
    """{'yaw': top-face heading in [0, pi/2), 'height': m (keypoint above its support), 'top_points': n}."""
    pts = depth_points(depth, K, T_base_cam)
    kp = np.asarray(kp_base, np.float64)
    dist = np.linalg.norm(pts[:, :2] - kp[:2], axis=1)
    top = pts[(dist < TOP_RADIUS_M) & (np.abs(pts[:, 2] - kp[2]) < TOP_BAND_M)]
    ring = pts[(dist > RING_M[0]) & (dist < RING_M[1])]
    height = DEFAULT_HEIGHT_M
    if len(ring):
        support = float(np.percentile(ring[:, 2], 20))   # the table, not a neighbour's top or the arm
        if 0.005 < kp[2] - support < 0.25:
            height = kp[2] - support
    return {"yaw": top_face_yaw(top) if len(top) >= 3 else 0.0, "height": float(height), "top_points": len(top)}


def pick_at(kp_base, depth, K, T_base_cam, eef_quat_xyzw) -> Pick:
    """A Pick on the object under the keypoint, fingers across its faces (least wrist turn)."""
    g = object_geometry(kp_base, depth, K, T_base_cam)
    return Pick(kp_base, nearest_yaw(g["yaw"], np.pi / 2, eef_quat_xyzw), object_height=g["height"])


def place_at(kp_base, depth, K, T_base_cam, eef_quat_xyzw, held: dict | None = None) -> Place:
    """A Place onto the object under the keypoint, the held object turned to line up with it (the pick
    aligned the hand with the held object's faces, so lining the hand up with the target's does it)."""
    g = object_geometry(kp_base, depth, K, T_base_cam)
    return Place(kp_base, nearest_yaw(g["yaw"], np.pi / 2, eef_quat_xyzw), held=held)
