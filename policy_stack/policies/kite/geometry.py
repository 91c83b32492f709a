"""Keypoint pixel + metric depth -> 3-D point in the robot base frame (and the inverse, for tests
and metrics).

Camera convention (as `SimEnv.camera_info` and realsense-ros give it): OpenCV pinhole, x right, y down,
z forward; K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] for pixel (u=column, v=row) of the stored image;
`T_base_cam` (4x4) maps camera-frame points into the base frame.

The projection math is policy_stack/skills/geometry.py's (one implementation); this module adds the
robust depth KITE needs for a keypoint WITHOUT an object mask (skills.geometry.robust_depth restricts
its window to a mask when one is known, as the label checks do).

Robust depth: a single pixel's depth is fragile at a keypoint on an object edge (it may read the table
behind it) and at holes (0 / NaN / inf in real depth). `robust_depth` takes the median of the valid
depths in a small window, restricted to the NEAR mode: pixels within `near_band_m` of the window's
nearest valid depth, because the object a keypoint sits on is in front of whatever its edge pixels
also see.
"""
from __future__ import annotations

import numpy as np

from policy_stack.skills.geometry import deproject as _deproject, project as _project


def robust_depth(depth: np.ndarray, u: float, v: float, window: int = 2, near_band_m: float = 0.02,
                 min_depth_m: float = 0.05) -> float | None:
    """Median valid depth (m) near pixel (u, v), or None when the window holds no valid depth."""
    h, w = depth.shape
    ui, vi = int(round(float(u))), int(round(float(v)))
    if not (0 <= ui < w and 0 <= vi < h):
        return None
    patch = np.asarray(depth[max(0, vi - window): vi + window + 1, max(0, ui - window): ui + window + 1],
                       dtype=np.float64)
    valid = patch[np.isfinite(patch) & (patch > min_depth_m)]
    if valid.size == 0:
        return None
    near = valid[valid <= valid.min() + near_band_m]
    return float(np.median(near))


def deproject(u: float, v: float, z: float, K: np.ndarray) -> np.ndarray:
    """Pixel (u, v) at depth z -> (3,) point in the camera frame (skills.geometry with the identity pose)."""
    return _deproject(np.array([[u, v]], np.float64), [z], K, np.eye(4))[0]


def project(p_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(3,) camera-frame point -> (2,) pixel (u, v)."""
    return _project(np.asarray(p_cam, np.float64)[None], K, np.eye(4))[0][0]


def keypoint_to_base(u: float, v: float, depth: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray,
                     window: int = 2) -> np.ndarray | None:
    """Pixel keypoint -> (3,) base-frame point using the robust depth; None when no valid depth."""
    z = robust_depth(depth, u, v, window)
    if z is None:
        return None
    return _deproject(np.array([[u, v]], np.float64), [z], K, T_base_cam)[0]


def base_to_pixel(p_base: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray) -> np.ndarray:
    """(3,) base-frame point -> (2,) pixel (u, v) (the inverse of keypoint_to_base on the surface)."""
    return _project(np.asarray(p_base, np.float64)[None], K, T_base_cam)[0][0]
