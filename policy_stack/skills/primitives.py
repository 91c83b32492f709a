"""Parameterized motion primitives: keypoint (+ yaw) -> OSC_POSE-delta actions, one control step at a time.

Pure numpy (no scipy: the few rotations needed are written out below). The same servo law drives the
scripted experts (sim/experts.py) and the KITE policy, so a keypoint-conditioned skill and the
demonstrations it is compared with move the same way:
  translation a[:3] = clip(POS_GAIN * (target - eef), +-1)        (a = 1 moves the goal 5 cm in one step)
  rotation    a[3:6] = clip(ROT_GAIN * rotvec(R_target R_eef^T), +-1)
  gripper     a[6] = OPEN (-1) or CLOSED (+1)
The hand points straight down; only its yaw changes.

Everything is in the robot base frame (observations `robot0_eef_pos`, `robot0_eef_quat` xyzw,
`robot0_gripper_qpos` as franka_ros2 reports it: both fingers positive metres). A primitive is a small
state machine: `step(obs) -> action (7,)`, then `done` / `failed`. `SkillSequence` runs several, handing
what a pick learned (how the object is held) to the place that follows.
"""
from __future__ import annotations

import numpy as np

OPEN, CLOSED = -1.0, 1.0
POS_GAIN = 10.0          # per metre of error; 10 cm of error saturates the action
ROT_GAIN = 2.0           # per radian of error; commands the whole error (0.5 rad per unit action)
CLOSE_STEPS = 10         # steps to let the fingers close before lifting
OPEN_STEPS = 8           # steps to let the fingers open before retreating
PHASE_TIMEOUT = 80       # steps; a stuck phase moves on rather than hanging the episode
EMPTY_GRIP_M = 0.004     # each finger closer than this to the centre line: nothing between the fingers

# The Panda's hand pointing straight down with yaw 0: fingers close along the base frame's y.
R_DOWN = np.diag([1.0, -1.0, -1.0])


def quat_to_matrix(q_xyzw) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> 3x3 rotation matrix."""
    x, y, z, w = np.asarray(q_xyzw, float) / np.linalg.norm(q_xyzw)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_rotvec(m) -> np.ndarray:
    """3x3 rotation matrix -> rotation vector (axis * angle, angle in [0, pi]), via a quaternion
    (Shepperd's method: stable near 0 and near pi, where the trace formula is not)."""
    m = np.asarray(m, float)
    t = np.trace(m)
    i = int(np.argmax([t, m[0, 0], m[1, 1], m[2, 2]]))
    if i == 0:
        w = 0.5 * np.sqrt(1 + t)
        v = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]) / (4 * w)
    else:
        a, b, c = [(0, 1, 2), (1, 2, 0), (2, 0, 1)][i - 1]
        r = 0.5 * np.sqrt(1 + m[a, a] - m[b, b] - m[c, c])
        v = np.zeros(3)
        v[a] = r
        v[b] = (m[b, a] + m[a, b]) / (4 * r)
        v[c] = (m[c, a] + m[a, c]) / (4 * r)
        w = (m[c, b] - m[b, c]) / (4 * r)
    if w < 0:
        w, v = -w, -v
    n = np.linalg.norm(v)
    return np.zeros(3) if n < 1e-12 else v / n * 2 * np.arctan2(n, w)


def yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_of(quat_xyzw) -> float:
    """Heading of a body's x axis in the xy plane."""
    m = quat_to_matrix(quat_xyzw)
    return float(np.arctan2(m[1, 0], m[0, 0]))


def wrap(angle: float, period: float) -> float:
    """angle mapped into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


def hand_yaw(eef_quat_xyzw) -> float:
    return yaw_of(eef_quat_xyzw)


def nearest_yaw(object_yaw: float, symmetry: float, eef_quat_xyzw) -> float:
    """Among object_yaw + k*symmetry, the yaw closest to the hand's current yaw (least wrist turn)."""
    eef_yaw = hand_yaw(eef_quat_xyzw)
    return eef_yaw + wrap(object_yaw - eef_yaw, symmetry)


def servo_action(eef_pos, eef_quat_xyzw, target_pos, yaw: float, gripper: float) -> np.ndarray:
    """One step of the proportional servo toward (target_pos, hand down at `yaw`), gripper command."""
    action = np.zeros(7)
    action[:3] = np.clip(POS_GAIN * (np.asarray(target_pos, float) - np.asarray(eef_pos, float)), -1, 1)
    r_target = yaw_matrix(yaw) @ R_DOWN
    r_eef = quat_to_matrix(eef_quat_xyzw)
    action[3:6] = np.clip(ROT_GAIN * matrix_to_rotvec(r_target @ r_eef.T), -1, 1)
    action[6] = gripper
    return action


class Primitive:
    """Phase bookkeeping shared by the primitives."""
    name = "primitive"

    def __init__(self):
        self.phase = 0
        self.phase_steps = 0
        self.done = False
        self.failed = False

    def _next(self) -> None:
        self.phase += 1
        self.phase_steps = 0

    def _timed_out(self) -> bool:
        return self.phase_steps > PHASE_TIMEOUT

    def step(self, obs: dict) -> np.ndarray:
        self.phase_steps += 1
        eef, quat = np.asarray(obs["robot0_eef_pos"], float), np.asarray(obs["robot0_eef_quat"], float)
        return np.clip(self._plan(obs, eef, quat), -1, 1).astype(np.float32)

    def _plan(self, obs, eef, quat) -> np.ndarray:
        raise NotImplementedError


class Pick(Primitive):
    """Grasp the object whose top-surface keypoint is `keypoint` (base frame), then lift it.

    Phases: 0 hover `hover` above the grasp point with the fingers at `yaw`, 1 descend, 2 close,
    3 lift by `lift`. The grasp point is `grasp_depth` below the keypoint (half the object's height,
    capped): the finger pads close across the object's middle. After the lift `failed` is set when the
    fingers closed on nothing (gripper width, an observation a real robot has too).
    `held` (after the grasp): what a following Place needs, the eef height above the object's bottom.
    `rise_first`: in phase 0, climb straight up to the hover height before moving across (tall objects
    stand between the hand and its target, e.g. in the PickPlace bin).
    """
    name = "pick"

    def __init__(self, keypoint, yaw: float, object_height: float = 0.04, hover: float = 0.10,
                 lift: float = 0.10, grasp_offset=(0.0, 0.0), rise_first: bool = False):
        super().__init__()
        self.keypoint = np.asarray(keypoint, float).copy()
        self.yaw = float(yaw)
        self.object_height = float(object_height)
        self.grasp_depth = min(0.5 * self.object_height, 0.025)
        self.hover, self.lift = float(hover), float(lift)
        self.grasp_offset = np.array([*grasp_offset, 0.0], float)
        self.held = None
        self._grasp_eef = None
        self.rise_first = bool(rise_first)

    def grasp_point(self) -> np.ndarray:
        return self.keypoint - [0.0, 0.0, self.grasp_depth] + self.grasp_offset

    def update_keypoint(self, keypoint) -> None:
        """Closed loop before the grasp (the object may be nudged): only while approaching."""
        if self.phase <= 1:
            self.keypoint = np.asarray(keypoint, float).copy()

    def _plan(self, obs, eef, quat):
        if self.phase == 0:   # hover above the grasp point, fingers lined up
            target = self.grasp_point() + [0.0, 0.0, self.hover]
            if self.rise_first and eef[2] < target[2] - 0.02:
                return servo_action(eef, quat, [eef[0], eef[1], target[2]], self.yaw, OPEN)
            yaw_err = abs(wrap(self.yaw - hand_yaw(quat), 2 * np.pi))
            if (np.linalg.norm(target - eef) < 0.01 and yaw_err < 0.05) or self._timed_out():
                self._next()
            return servo_action(eef, quat, target, self.yaw, OPEN)
        if self.phase == 1:   # descend onto it
            target = self.grasp_point()
            err = target - eef
            if (np.linalg.norm(err[:2]) < 0.01 and abs(err[2]) < 0.008) or self._timed_out():
                self._grasp_eef = eef.copy()
                self._next()
            return servo_action(eef, quat, target, self.yaw, OPEN)
        if self.phase == 2:   # close in place
            if self.phase_steps >= CLOSE_STEPS:
                # eef height above the object's bottom while held (the object rested on its bottom)
                bottom = self.keypoint[2] - self.object_height
                self.held = {"eef_above_bottom": float(self._grasp_eef[2] - bottom),
                             "object_height": self.object_height, "yaw_at_grasp": hand_yaw(quat)}
                self._next()
            return servo_action(eef, quat, self._grasp_eef, self.yaw, CLOSED)
        target = self._grasp_eef + [0.0, 0.0, self.lift]
        if abs(target[2] - eef[2]) < 0.015 or self._timed_out():   # 3: lifted
            fingers = np.asarray(obs["robot0_gripper_qpos"], float)
            self.failed = bool(np.all(np.abs(fingers) < EMPTY_GRIP_M))
            self.done = True
        return servo_action(eef, quat, target, self.yaw, CLOSED)


class Place(Primitive):
    """Carry the held object over `keypoint` (the top-surface centre of what it goes on, base frame),
    lower it until its bottom is `drop` above that surface, open, retreat up.

    Phases: 0 carry at `clearance` above the release height, 1 lower, 2 open, 3 retreat. `held` comes
    from the Pick before it (eef height above the held object's bottom). `yaw`: the hand's yaw for the
    carry (e.g. lining the held cube up with the one below).
    """
    name = "place"

    def __init__(self, keypoint, yaw: float, held: dict | None = None, clearance: float = 0.06,
                 drop: float = 0.005, retreat: float = 0.12):
        super().__init__()
        self.keypoint = np.asarray(keypoint, float).copy()
        self.yaw = float(yaw)
        self.held = held
        self.clearance, self.drop, self.retreat = float(clearance), float(drop), float(retreat)
        self._release_eef = None

    def release_point(self) -> np.ndarray:
        above = (self.held or {}).get("eef_above_bottom", 0.02)
        return self.keypoint + [0.0, 0.0, above + self.drop]

    def _plan(self, obs, eef, quat):
        release = self.release_point()
        if self.phase == 0:   # carry over the target at a safe height
            target = release + [0.0, 0.0, self.clearance]
            if eef[2] < target[2] - 0.02:       # rise first, then move across (no sweeping into objects)
                return servo_action(eef, quat, [eef[0], eef[1], target[2]], self.yaw, CLOSED)
            if np.linalg.norm(target - eef) < 0.01 or self._timed_out():
                self._next()
            return servo_action(eef, quat, target, self.yaw, CLOSED)
        if self.phase == 1:   # lower to the release height
            if eef[2] < release[2] + 0.004 or self._timed_out():
                self._next()
            return servo_action(eef, quat, release, self.yaw, CLOSED)
        if self.phase == 2:   # let go where we are
            if self.phase_steps >= OPEN_STEPS:
                self._release_eef = eef.copy()
                self._next()
            return servo_action(eef, quat, eef, self.yaw, OPEN)
        target = self._release_eef + [0.0, 0.0, self.retreat]    # 3: retreat straight up
        if abs(target[2] - eef[2]) < 0.02 or self._timed_out():
            self.done = True
        return servo_action(eef, quat, target, self.yaw, OPEN)


class SkillSequence:
    """Primitives run one after another; a Place takes the `held` of the Pick before it.

    Built lazily: `plan(i, obs) -> Primitive` makes step i's primitive when it starts (so its keypoint
    is read then, e.g. after the previous step moved things). A failed pick is retried from its hover
    up to `retries` times. After the last primitive the hand holds still (`done`)."""

    def __init__(self, n_steps: int, plan, retries: int = 2):
        self.n_steps, self.plan, self.retries = int(n_steps), plan, int(retries)
        self.index, self.current, self.held, self.tries = 0, None, None, 0

    @property
    def done(self) -> bool:
        return self.index >= self.n_steps

    def step(self, obs: dict) -> np.ndarray:
        if self.done:
            return servo_action(obs["robot0_eef_pos"], obs["robot0_eef_quat"], obs["robot0_eef_pos"],
                                hand_yaw(obs["robot0_eef_quat"]), OPEN).astype(np.float32)
        if self.current is None:
            self.current = self.plan(self.index, obs)
            if isinstance(self.current, Place) and self.current.held is None:
                self.current.held = self.held
        action = self.current.step(obs)
        if self.current.done:
            if isinstance(self.current, Pick) and self.current.failed and self.tries < self.retries:
                self.tries += 1                       # nothing in hand: open and try the same pick again
                self.current = None
                action[6] = OPEN
                return action
            if isinstance(self.current, Pick):
                self.held = self.current.held
            self.index, self.current, self.tries = self.index + 1, None, 0
        return action
