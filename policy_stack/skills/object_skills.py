"""Keypoint -> primitive for everyday objects and bins (the PickPlace task): what a grasp or a drop into a
bin needs besides the keypoint, read from the metric depth around it (no object mask).

keypoint_skills.py does this for cubes (square top faces, so any of four yaws grasps). Household objects
differ in two ways, handled here:
  - an elongated top (a cereal box, 3 x 10 cm) must be grasped across its narrow side: the principal
    axes of the top-face points give the short axis, and the fingers (which close along the hand's y)
    are turned onto it (symmetry pi); a square-ish top (can, carton, bread) keeps the cube rule (pi/2);
  - tall objects stand 15 cm high, so the support is looked for further out (a ring 7-11 cm away).
A bin's keypoint is the centre of its floor: `place_in_at` carries the held object over it, high enough
to clear the bin walls and anything still standing on the way, and lowers it onto the floor.
Pure numpy, base frame, the conventions of geometry.py.
"""
from __future__ import annotations

import numpy as np

from policy_stack.skills.geometry import top_face_yaw
from policy_stack.skills.keypoint_skills import depth_points
from policy_stack.skills.primitives import Pick, Place, hand_yaw, nearest_yaw

TOP_RADIUS_M = 0.06        # the cereal box's top reaches 5.2 cm from its centre
TOP_BAND_M = 0.01          # a carton's gable: the top's points lie within 1 cm of the keypoint's height
RING_M = (0.07, 0.11)      # the support: outside the object, inside the 13 cm spacing of the next one
ELONGATED = 1.4            # top-face extent ratio above which the grasp goes across the short side
DEFAULT_HEIGHT_M = 0.08
BIN_CLEARANCE_M = 0.20     # carry height above the release point: bin walls (8 cm) and a 15 cm cereal box
PICK_HOVER_M = 0.20        # hover above the grasp point, reached by climbing first: the hand must pass over
                           # the 15 cm milk carton and cereal box on its way to a shorter object


def top_face(kp_base, points) -> np.ndarray:
    kp = np.asarray(kp_base, np.float64)
    dist = np.linalg.norm(points[:, :2] - kp[:2], axis=1)
    return points[(dist < TOP_RADIUS_M) & (np.abs(points[:, 2] - kp[2]) < TOP_BAND_M)]


def grasp_yaw(top_points) -> tuple[float, float]:
    """(hand yaw that closes the fingers across the top's narrow side, symmetry) from top-face points."""
    if len(top_points) < 4:
        return 0.0, np.pi / 2
    xy = top_points[:, :2] - top_points[:, :2].mean(axis=0)
    w, v = np.linalg.eigh(np.cov(xy.T))
    short, long_ = v[:, 0], v[:, 1]
    extent = lambda axis: float(np.ptp(xy @ axis)) + 1e-6
    if extent(long_) > ELONGATED * extent(short):
        return float(np.arctan2(short[1], short[0]) - np.pi / 2), np.pi
    return top_face_yaw(top_points), np.pi / 2


def object_geometry(kp_base, depth, K, T_base_cam) -> dict:
    """{'yaw', 'symmetry', 'height' (m, keypoint above its support), 'top_points'}."""
    pts = depth_points(depth, K, T_base_cam)
    kp = np.asarray(kp_base, np.float64)
    top = top_face(kp, pts)
    yaw, symmetry = grasp_yaw(top)
    dist = np.linalg.norm(pts[:, :2] - kp[:2], axis=1)
    ring = pts[(dist > RING_M[0]) & (dist < RING_M[1])]
    height = DEFAULT_HEIGHT_M
    if len(ring):
        support = float(np.percentile(ring[:, 2], 20))    # the floor, not a neighbour or a wall
        if 0.01 < kp[2] - support < 0.30:
            height = kp[2] - support
    return {"yaw": yaw, "symmetry": symmetry, "height": float(height), "top_points": len(top)}


def pick_object_at(kp_base, depth, K, T_base_cam, eef_quat_xyzw) -> Pick:
    """A Pick on the object under the keypoint: fingers across its narrow side, least wrist turn."""
    g = object_geometry(kp_base, depth, K, T_base_cam)
    return Pick(kp_base, nearest_yaw(g["yaw"], g["symmetry"], eef_quat_xyzw), object_height=g["height"],
                hover=PICK_HOVER_M, rise_first=True)


def place_in_at(kp_base, depth, K, T_base_cam, eef_quat_xyzw, held: dict | None = None) -> Place:
    """A Place into the bin whose floor centre is the keypoint; the hand keeps its yaw (a bin has no
    orientation to match)."""
    return Place(kp_base, hand_yaw(eef_quat_xyzw), held=held, clearance=BIN_CLEARANCE_M)
