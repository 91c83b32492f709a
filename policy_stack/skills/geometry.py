"""Pinhole camera geometry in the project's conventions (pure numpy).

Images are stored upright; pixel (u, v) = (column, row), pixel centres at integers, principal point
((W-1)/2, (H-1)/2) as `SimEnv.camera_info` gives it. Camera axes are OpenCV's (x right, y down, z
forward). `T_base_cam` maps camera coordinates to the robot base frame. Depth is metric z along the
optical axis (what the RGB-D observations hold).
"""
from __future__ import annotations

import numpy as np


def project(points_base, K, T_base_cam) -> tuple[np.ndarray, np.ndarray]:
    """Base-frame points (N, 3) -> pixels (N, 2) as (u, v) floats and their depth z (N,) in metres."""
    p = np.atleast_2d(np.asarray(points_base, np.float64))
    T_cam_base = np.linalg.inv(np.asarray(T_base_cam, np.float64))
    cam = p @ T_cam_base[:3, :3].T + T_cam_base[:3, 3]
    z = cam[:, 2]
    K = np.asarray(K, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * cam[:, 0] / z + K[0, 2]
        v = K[1, 1] * cam[:, 1] / z + K[1, 2]
    return np.stack([u, v], axis=1), z


def deproject(uv, depth_m, K, T_base_cam) -> np.ndarray:
    """Pixels (N, 2) (u, v) with metric depths (N,) -> base-frame points (N, 3)."""
    uv = np.atleast_2d(np.asarray(uv, np.float64))
    z = np.asarray(depth_m, np.float64).reshape(-1)
    K = np.asarray(K, np.float64)
    x = (uv[:, 0] - K[0, 2]) * z / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) * z / K[1, 1]
    cam = np.stack([x, y, z], axis=1)
    T = np.asarray(T_base_cam, np.float64)
    return cam @ T[:3, :3].T + T[:3, 3]


def robust_depth(depth, uv, mask=None, radius: int = 2) -> float:
    """Median metric depth in a (2r+1)^2 window around pixel uv, over the mask's pixels where one is
    given (keeps an edge keypoint from taking the background's depth); NaN if nothing valid."""
    h, w = depth.shape
    u, v = int(round(float(uv[0]))), int(round(float(uv[1])))
    r0, r1, c0, c1 = max(0, v - radius), min(h, v + radius + 1), max(0, u - radius), min(w, u + radius + 1)
    window = np.asarray(depth[r0:r1, c0:c1], np.float64)
    ok = np.isfinite(window) & (window > 0)
    if mask is not None:
        ok &= np.asarray(mask[r0:r1, c0:c1]) > 0
    return float(np.median(window[ok])) if ok.any() else float("nan")


def mask_points(mask, depth, K, T_base_cam) -> np.ndarray:
    """Base-frame 3-D points (M, 3) of the pixels where mask > 0 (and depth is valid)."""
    rows, cols = np.nonzero(np.asarray(mask) > 0)
    d = np.asarray(depth, np.float64)[rows, cols]
    ok = np.isfinite(d) & (d > 0)
    return deproject(np.stack([cols[ok], rows[ok]], axis=1).astype(np.float64), d[ok], K, T_base_cam)


def top_face_yaw(points_base, symmetry: float = np.pi / 2, band: float = 0.008, steps: int = 90) -> float:
    """Yaw of a box's top face from its 3-D points: the points within `band` of the highest are the top
    face; the yaw (in [0, symmetry)) whose axis-aligned bounding box of those points is smallest is the
    face's heading. A skill lines its fingers up with it (what a grasp needs from the object's shape)."""
    p = np.asarray(points_base, np.float64)
    if len(p) < 3:
        return 0.0
    top = p[p[:, 2] > p[:, 2].max() - band][:, :2]
    top = top - top.mean(axis=0)
    best, best_area = 0.0, np.inf
    for yaw in np.linspace(0.0, symmetry, steps, endpoint=False):
        c, s = np.cos(yaw), np.sin(yaw)
        local = top @ np.array([[c, -s], [s, c]])        # rotate the points by -yaw
        area = np.prod(local.max(axis=0) - local.min(axis=0))
        if area < best_area:
            best, best_area = float(yaw), area
    return best
