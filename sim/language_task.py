"""The part every language task shares (multi_cube, pick_place_multi, nut_assembly_both).

Success is "the instruction is done and nothing failed" (a wrong object touched or moved); the
instruction travels in the observation as `instruction`, like any other key. Each task supplies
`self.task` (the instruction), `_update_failure()` (sets `self._failure` to a reason or None) and
`_instruction_done()`.
"""
from __future__ import annotations

import numpy as np

from sim.envs import SimEnv

GROUNDING_CAMERA = "grounding"


class LanguageTaskEnv(SimEnv):
    def step(self, action):
        obs, reward, done, info = super().step(action)
        self._update_failure()
        success = self._failure is None and self._instruction_done()
        info.update(success=success, failure=self._failure, instruction=self.task)
        return obs, float(success), done, info

    def _convert_obs(self, raw: dict) -> dict:
        obs = super()._convert_obs(raw)
        obs["instruction"] = self.task
        return obs

    def ground_truth(self, camera: str = GROUNDING_CAMERA, obs: dict | None = None) -> dict:
        """Ground truth of the current frame for scoring: instruction, split, kind, template_id, seed,
        steps [(skill, target, text)], objects {name: {category, colour, size, kp_base (base frame, m),
        kp_px, visible, mask, depth_residual_m}}, camera {K (3,3), T_base_cam (4,4)}.
        The camera must be one this env renders with depth (obs taken from the current state; if not
        given, the last observation is used)."""
        from sim.keypoint_labels import label_objects
        if camera not in self.cameras or not self.depth:
            raise ValueError(f"ground_truth needs camera {camera!r} rendered with depth; env renders {self.cameras}, depth={self.depth}")
        current = self._convert_obs(self._raw_obs)
        if obs is None:
            obs = current
        elif not np.array_equal(obs["robot0_joint_pos"], current["robot0_joint_pos"]):
            # masks and visibility are rendered from the current state: an older frame would get wrong labels
            raise ValueError("ground_truth: obs is not the observation of the current sim state")
        info = self.camera_info(camera)
        names = self.object_names()
        kp_base = {n: self.base_frame.position(self._label_keypoint_world(n, info)).astype(np.float64) for n in names}
        labels = label_objects(self, camera, obs[f"{camera}_depth"], kp_base, info)
        ep = self.episode
        return {
            "instruction": ep.instruction, "split": ep.split, "kind": ep.kind, "template_id": ep.template_id,
            "seed": self.episode_seed, "steps": [(s.skill, s.target, s.text) for s in ep.steps],
            "objects": {n: dict(**self._object_attributes(n), kp_base=kp_base[n], **labels[n]) for n in names},
            "camera": {"K": np.asarray(info["K"]), "T_base_cam": np.asarray(info["T_base_cam"])},
        }

    def _label_keypoint_world(self, name: str, info: dict) -> np.ndarray:
        """The world point labelled for `name` in the camera `info` describes (default: its keypoint)."""
        return self.keypoint_world(name)

    def _object_attributes(self, name: str) -> dict:
        """What ground_truth reports about `name` besides its labels: category, colour, size."""
        return {"category": name, "colour": "", "size": ""}
