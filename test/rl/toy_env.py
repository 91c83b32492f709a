"""Pure-numpy 2-D point reaching: move `pos` to `goal`; success (reward 1, terminal) within 0.1."""
from __future__ import annotations

import time

import numpy as np


class PointReach:
    def __init__(self, max_steps: int = 30, step_scale: float = 0.3, sleep_s: float = 0.0):
        self.max_steps, self.step_scale, self.sleep_s = max_steps, step_scale, sleep_s
        self.rng = np.random.default_rng(0)

    def _obs(self):
        return {"pos": self.pos.astype(np.float32).copy(), "goal": self.goal.astype(np.float32).copy()}

    def reset(self, seed: int | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pos = self.rng.uniform(-1, 1, 2)
        self.goal = self.rng.uniform(-1, 1, 2)
        self.t = 0
        return self._obs()

    def step(self, action):
        if self.sleep_s:
            time.sleep(self.sleep_s)
        self.pos = np.clip(self.pos + self.step_scale * np.clip(action, -0.5, 0.5), -1, 1)
        self.t += 1
        success = bool(np.linalg.norm(self.pos - self.goal) < 0.1)
        truncated = self.t >= self.max_steps and not success
        return self._obs(), float(success), success or truncated, {"success": success, "truncated": truncated}


def expert_episode(env: PointReach, seed: int, noise: float = 0.05):
    """Scripted demo: per-step arrays (obs T+1, actions T, rewards T) and whether it ended terminally."""
    rng = np.random.default_rng(seed + 10_000)
    obs = [env.reset(seed=seed)]
    acts, rews, done, info = [], [], False, {}
    while not done:
        a = np.clip((env.goal - env.pos) / env.step_scale + rng.normal(0, noise, 2), -0.5, 0.5).astype(np.float32)
        o, r, done, info = env.step(a)
        obs.append(o)
        acts.append(a)
        rews.append(r)
    stacked = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    return stacked, np.stack(acts), np.array(rews, np.float32), bool(info.get("success"))
