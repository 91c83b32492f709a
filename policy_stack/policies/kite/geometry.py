"""Keypoint pixel + metric depth -> 3-D point in the robot base frame (and the inverse, for tests
and metrics).

Camera convention (as `SimEnv.camera_info` and realsense-ros give it): OpenCV pinhole, x right, y down,
z forward; K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] for pixel (u=column, v=row) of the stored image;
`T_base_cam` (4x4) maps camera-frame points into the base frame.

Robust depth: a single pixel's depth is fragile at a keypoint on an object edge (it may read the table
behind it) and at holes (0 / NaN / inf in real depth). `robust_depth` takes the median of the valid
depths in a small window, restricted to the NEAR mode: pixels within `near_band_m` of the window's
nearest valid depth, because the object a keypoint sits on is in front of whatever its edge pixels
also see.
"""
from __future__ import annotations

import numpy as np


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
    """Pixel (u, v) at depth z (m, along the optical axis) -> (3,) point in the camera frame."""
    K = np.asarray(K, dtype=np.float64)
    x = (float(u) - K[0, 2]) * z / K[0, 0]
    y = (float(v) - K[1, 2]) * z / K[1, 1]
    return np.array([x, y, z], dtype=np.float64)


def project(p_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(3,) camera-frame point -> (2,) pixel (u, v)."""
    K = np.asarray(K, dtype=np.float64)
    p = np.asarray(p_cam, dtype=np.float64)
    return np.array([K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]])


def transform(T: np.ndarray, p: np.ndarray) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    return T[:3, :3] @ np.asarray(p, dtype=np.float64) + T[:3, 3]


def keypoint_to_base(u: float, v: float, depth: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray,
                     window: int = 2) -> np.ndarray | None:
    """Pixel keypoint -> (3,) base-frame point using the robust depth; None when no valid depth."""
    z = robust_depth(depth, u, v, window)
    if z is None:
        return None
    return transform(T_base_cam, deproject(u, v, z, K))


def base_to_pixel(p_base: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray) -> np.ndarray:
    """(3,) base-frame point -> (2,) pixel (u, v) (the inverse of keypoint_to_base on the surface)."""
    T = np.asarray(T_base_cam, dtype=np.float64)
    R, t = T[:3, :3], T[:3, 3]
    return project(R.T @ (np.asarray(p_base, dtype=np.float64) - t), K)
