"""The learned keypoint-conditioned skill: KITE's grounding + a Diffusion Policy conditioned on 3-D keypoints.

KITE's second stage acts around the grounded keypoint. Besides the parameterized primitives
(policy_stack/skills/), this is the learned variant closest to the paper: the project's Diffusion Policy,
trained on the same expert demos, conditioned (as low-dim observation keys, `SKILL_KEYS`) on
  - `kp_pick_pos` (3): the base-frame keypoint of the object to pick (its top-face centre),
  - `kp_place_pos` (3): the keypoint of the object to place it on (= kp_pick_pos for a plain pick),
  - `kite_skill` (2): the skill id, one-hot (pick, stack),
  - `kite_heading` (4): cos/sin of 4x each object's top-face yaw (a cube looks the same every 90 deg),
plus the robot's own state. It never sees the other cubes or any colour: the instruction reaches it only
through the keypoints, as in KITE. In training the keypoints are the labelled ones (the objects' top
centres at the episode's first frame, scripts/kite_dp_demos.py); at test time they come from the grounding
model on the first images and the heading is measured from the metric depth around each keypoint
(`object_geometry`, as the primitives do).

`KiteLearnedSkillPolicy` wraps a KITE checkpoint (grounding) and a keypoint-conditioned diffusion
checkpoint: tick 0 grounds the first sub-instruction, tick 1 the second (if any), both on the start
images (the arm has not moved), and from then on the diffusion policy acts; it executes its chunks one
action per call (the remaining actions of a chunk are fed to `observe`), so its observation history holds
consecutive frames as in training. It exposes the attributes `evaluate_kite`'s recorder reads (`info`
groundings / keypoint_px / keypoint_base / sub_index, `instruction_parser`, `keypoint_source`).
"""
from __future__ import annotations

import time

import numpy as np

SKILL_KINDS = ("pick", "stack")
SKILL_KEYS = ("kp_pick_pos", "kp_place_pos", "kite_skill", "kite_heading")


def skill_features(kp_pick, kp_place, kind: str, yaw_pick: float, yaw_place: float) -> dict[str, np.ndarray]:
    """The conditioning observation keys of the learned skill (float32)."""
    if kind not in SKILL_KINDS:
        raise ValueError(f"learned skill kind {kind!r} not in {SKILL_KINDS}")
    onehot = np.zeros(len(SKILL_KINDS), np.float32)
    onehot[SKILL_KINDS.index(kind)] = 1.0
    heading = [np.cos(4 * yaw_pick), np.sin(4 * yaw_pick), np.cos(4 * yaw_place), np.sin(4 * yaw_place)]
    return {"kp_pick_pos": np.asarray(kp_pick, np.float32).reshape(3),
            "kp_place_pos": np.asarray(kp_place if kp_place is not None else kp_pick, np.float32).reshape(3),
            "kite_skill": onehot, "kite_heading": np.asarray(heading, np.float32)}


def yaw_of_quat_xyzw(q) -> float:
    """Heading (rad) of a body whose z axis points up: the yaw of its x axis."""
    x, y, z, w = np.asarray(q, np.float64)
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def kind_of_steps(skills: list[str]) -> str:
    """Sub-instruction skills -> the learned skill's id: [pick] -> pick, [pick, place] -> stack."""
    if list(skills) == ["pick"]:
        return "pick"
    if list(skills) == ["pick", "place"]:
        return "stack"
    raise ValueError(f"the learned skill runs a pick or a pick-then-place, not {skills}")


class KiteLearnedSkillPolicy:
    """KITE grounding (a KitePolicy) + a keypoint-conditioned DiffusionPolicy as the skill."""

    def __init__(self, kite, skill):
        missing = [k for k in SKILL_KEYS if k not in skill.obs_spec]
        if missing:
            raise ValueError(f"the skill checkpoint is not keypoint-conditioned: its observations lack {missing}")
        self.kite, self.skill = kite, skill
        self.config = kite.config                   # grounding camera, image size (what evaluate_kite reads)
        self.action_space = skill.action_space
        self.policy_type = "kite_learned_skill"
        self.instruction_parser = kite.instruction_parser
        self.keypoint_source = None
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.kite.reset()
        self.skill.reset(seed)
        self._instruction = None
        self._steps: list[tuple] = []
        self._grounded: list[dict] = []
        self._features: dict | None = None
        self._queue: list[np.ndarray] = []
        self._info: dict = {}

    @property
    def info(self) -> dict:
        return dict(self._info)

    def _ground(self, index: int, obs: dict) -> dict:
        from policy_stack.policies.kite.geometry import keypoint_to_base
        from policy_stack.skills.keypoint_skills import object_geometry

        cam = self.kite.config.grounding_camera
        skill, sub = self._steps[index]
        depth = np.asarray(obs[f"{cam}_depth"])
        depth = depth.astype(np.float32) / 1000.0 if depth.dtype == np.uint16 else depth.astype(np.float32)
        g = self.kite.ground(obs[f"{cam}_rgb"], depth, sub)
        if self.keypoint_source is not None:
            g["uv"] = np.asarray(self.keypoint_source(index, sub, obs), np.float64)
        K, T = self.kite.camera_K(obs), self.kite.camera_pose()
        p = keypoint_to_base(g["uv"][0], g["uv"][1], depth, K, T, self.kite.config.depth_window)
        yaw = object_geometry(p, depth, K, T)["yaw"] if p is not None else 0.0
        return {"skill": skill or g["skill"], "uv": g["uv"], "base": p, "yaw": yaw, "sub": sub, "index": index}

    def _hold(self, t0: float, reason: str) -> np.ndarray:
        a = np.zeros(self.action_space.dim, np.float32)
        if self.action_space.discrete:
            a[-1] = self.action_space.low[-1]       # open
        self._set_info(t0, reason)
        return a[None]

    def _set_info(self, t0: float, hold: str) -> None:
        last = self._grounded[-1] if self._grounded else None
        self._info = {"latency_ms": (time.perf_counter() - t0) * 1e3, "sampler": "kite_dp", "hold": hold,
                      "steps": self.skill.info.get("steps", 0) if self._features else 0,
                      "groundings": len(self._grounded), "sub_index": last["index"] if last else 0,
                      "keypoint_px": [float(x) for x in last["uv"]] if last else None,
                      "keypoint_base": [float(x) for x in last["base"]] if last and last["base"] is not None else None}

    def act(self, obs: dict) -> np.ndarray:
        """One action (1, A) per call."""
        t0 = time.perf_counter()
        instruction = obs.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            return self._hold(t0, "no instruction")
        if instruction != self._instruction:
            self.reset()
            self._instruction = instruction
            try:
                self._steps = list(self.instruction_parser(instruction))
            except ValueError as exc:
                return self._hold(t0, f"instruction not understood: {exc}")
        if len(self._grounded) < len(self._steps):       # one grounding per tick, on the start images
            g = self._ground(len(self._grounded), obs)
            self._grounded.append(g)
            if g["base"] is None:
                self._grounded.pop()
                return self._hold(t0, f"no valid depth at keypoint ({g['uv'][0]:.1f}, {g['uv'][1]:.1f})")
            return self._hold(t0, "grounding")
        if self._features is None:
            try:
                kind = kind_of_steps([g["skill"] for g in self._grounded])
            except ValueError as exc:
                return self._hold(t0, str(exc))
            a = self._grounded[0]
            b = self._grounded[1] if len(self._grounded) > 1 else a
            self._features = skill_features(a["base"], b["base"], kind, a["yaw"], b["yaw"])
        step_obs = {**obs, **self._features}
        if self._queue:
            self.skill.observe(step_obs)
        else:
            self._queue = list(self.skill.act(step_obs))
        self._set_info(t0, "")
        return self._queue.pop(0)[None]

    def observe(self, obs: dict) -> None:
        """Not used: act() returns one action per tick."""
