"""`nut_assembly_both`: robosuite NutAssembly with both nuts and both pegs, an instruction naming one nut.

- `NutAssemblyBoth`: robosuite's NutAssembly (square nut + square peg, round nut + round peg; robosuite's
  own placement: each nut on its peg's side of the table) plus a top-down `grounding` camera.
- `NutLanguageEnv`: SimEnv plus a seeded instruction per reset (sim/nut_language.py), success for the
  instructed nut only, wrong-nut failure, and `ground_truth()` labels (sim/keypoint_labels.py).

Task kinds: `grab` ("grab the square nut by its handle": the nut is held 4 cm above where it rested) and
`fit` ("put the round nut on the round peg": robosuite's on_peg test for that nut and peg, and the
gripper lets go). The gripper touching the other nut, or the other nut moving more than 2 cm sideways, fails (robosuite drops
the nuts from 2 cm above the table at reset, so their height settles after the first steps).
Keypoints: a nut's handle (the top face of its handle bar, at robosuite's handle site), a peg's top centre.
"""
from __future__ import annotations

import random

import numpy as np

from sim.envs import TaskInfo
from sim.language_task import LanguageTaskEnv
from sim.multi_cube import _look_at_quat_wxyz
from sim.nut_language import NUTS, draw_episode, grounding_queries, layout_seed, nut_name, peg_name, split_instruction

GROUNDING_CAMERA = "grounding"
WRONG_MOVE_M = 0.02
LIFT_M = 0.04
NUT_HALF_THICKNESS = 0.01          # both nuts' bars are 2 cm thick (square-nut.xml, round-nut.xml)
PEG_HALF_HEIGHT = 0.1              # pegs_arena.xml
# Straight down over the table centre, image up toward the robot; the pegs (x 0.23) and nuts (x -0.11)
# both in view, a pixel about 7 mm on the table at 128 px.
_GROUNDING_POS = np.array([0.05, 0.0, 1.9])
_GROUNDING_LOOK_AT = np.array([0.05, 0.0, 0.82])
_GROUNDING_FOVY = 45.0


def _register_robosuite_env():
    from robosuite.environments.base import REGISTERED_ENVS
    if "NutAssemblyBoth" in REGISTERED_ENVS:
        return REGISTERED_ENVS["NutAssemblyBoth"]
    import xml.etree.ElementTree as ET

    from robosuite.environments.manipulation.nut_assembly import NutAssembly
    from robosuite.utils.mjcf_utils import array_to_string

    class NutAssemblyBoth(NutAssembly):
        def __init__(self, robots, **kwargs):
            kwargs.setdefault("single_object_mode", 0)
            super().__init__(robots, **kwargs)

        def _load_model(self):
            super()._load_model()
            cam = ET.Element("camera", attrib={
                "mode": "fixed", "name": GROUNDING_CAMERA, "pos": array_to_string(_GROUNDING_POS),
                "quat": array_to_string(_look_at_quat_wxyz(_GROUNDING_POS, _GROUNDING_LOOK_AT)),
                "fovy": str(_GROUNDING_FOVY)})
            self.model.worldbody.append(cam)

        def _check_success(self):
            return False

    return NutAssemblyBoth


class NutLanguageEnv(LanguageTaskEnv):
    def __init__(self, task: TaskInfo, *args, split: str = "train", kinds=("grab", "fit"), **kwargs):
        from sim.nut_language import SPLITS
        if split not in SPLITS:
            raise ValueError(f"unknown instruction split {split!r} for {task.name}; valid splits: {list(SPLITS)}")
        _register_robosuite_env()
        self.split, self.kinds = split, tuple(kinds)
        self.episode = None
        self._seed_rng = np.random.default_rng()
        super().__init__(task, *args, **kwargs)
        self.task = ""
        rs = self._env
        self._nut = {nut_name(s): n for s, n in zip(("square", "round"), rs.nuts)}
        self._peg_body = {peg_name("square"): rs.peg1_body_id, peg_name("round"): rs.peg2_body_id}

    parse_instruction = staticmethod(split_instruction)

    def reset(self, seed: int | None = None) -> dict:
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        if seed is None:
            seed = int(self._seed_rng.integers(0, 2**31 - 1))
        self.episode = draw_episode(int(seed), self.split, self.kinds)
        self.task = self.episode.instruction
        self.episode_seed = int(seed)
        obs = super().reset(seed=layout_seed(int(seed), self.split))
        self._start_pos = {n: self._nut_pos(n) for n in self._nut}
        self._failure = None
        return obs

    # ------------------------------------------------------------------ success
    def _nut_pos(self, name: str) -> np.ndarray:
        rs = self._env
        return np.array(rs.sim.data.body_xpos[rs.obj_body_id[self._nut[name].name]])

    def _touching(self, name: str) -> bool:
        rs = self._env
        g = rs.robots[0].gripper
        return any(rs.check_contact(x, self._nut[name]) for x in (g.values() if isinstance(g, dict) else [g]))

    def _update_failure(self) -> None:
        if self._failure is not None:
            return
        for name in self._nut:
            if name == self.episode.objects["a"]:
                continue
            if self._touching(name):
                self._failure = f"gripper touched {name}"
            elif np.linalg.norm(self._nut_pos(name)[:2] - self._start_pos[name][:2]) > WRONG_MOVE_M:
                self._failure = f"{name} moved"

    def _instruction_done(self) -> bool:
        rs = self._env
        nut = self.episode.objects["a"]
        if self.episode.kind == "grab":
            grasped = rs._check_grasp(gripper=rs.robots[0].gripper, object_geoms=self._nut[nut])
            return bool(grasped and self._nut_pos(nut)[2] > self._start_pos[nut][2] + LIFT_M)
        peg_id = rs.nut_to_id[nut.split("_")[0]]
        return bool(rs.on_peg(self._nut_pos(nut), peg_id) and not self._touching(nut))

    # ------------------------------------------------------------------ ground truth
    def object_names(self) -> list[str]:
        return [nut_name(s) for s in NUTS] + [peg_name(s) for s in NUTS]

    def episode_objects(self) -> list[str]:
        return [nut_name(s) for s in NUTS]

    def object_body_id(self, name: str) -> int:
        rs = self._env
        if name in self._peg_body:
            return int(self._peg_body[name])
        return int(rs.obj_body_id[self._nut[name].name])

    def keypoint_world(self, name: str) -> np.ndarray:
        """A nut's handle top (robosuite's handle site raised to the bar's top face), a peg's top centre."""
        rs = self._env
        if name in self._peg_body:
            return np.asarray(rs.sim.data.body_xpos[self._peg_body[name]]) + [0.0, 0.0, PEG_HALF_HEIGHT]
        nut = self._nut[name]
        sid = rs.sim.model.site_name2id(nut.important_sites["handle"])
        up = np.asarray(rs.sim.data.site_xmat[sid]).reshape(3, 3)[:, 2]
        return np.asarray(rs.sim.data.site_xpos[sid]) + up * NUT_HALF_THICKNESS

    def grounding_queries(self, rng: random.Random, split: str, target: str, n: int = 1) -> list[tuple]:
        return grounding_queries(rng, split, target, n)

    arm_frame_box = ((-0.2, 0.25), (-0.25, 0.25), (0.9, 1.15))
