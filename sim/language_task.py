"""The part every language task shares (multi_cube, pick_place_multi, nut_assembly_both).

Success is "the instruction is done and nothing failed" (a wrong object touched or moved); the
instruction travels in the observation as `instruction`, like any other key. Each task supplies
`self.task` (the instruction), `_update_failure()` (sets `self._failure` to a reason or None) and
`_instruction_done()`.
"""
from __future__ import annotations

from sim.envs import SimEnv


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
