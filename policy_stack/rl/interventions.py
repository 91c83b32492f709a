"""Scripted human interventions for sessions in simulation (benchmarks and tests): HIL-SERL's operator,
played by a script, through the same replay code a ROS session uses.

`InterventionEnv` wraps a per-step env (reset / step(action) -> obs, reward, done, info) as a chunk env
(`accepts_chunks`, docs/rl.md env protocol). Per control step it asks `takes_over(episode, t, obs)`
whether the operator holds the deadman; if so the operator's action is executed instead of the
agent's. It reports what was executed (info["executed_actions"], info["interventions"]) and follows
the rule the ROS env follows (ros_nodes/rl_env.py): a decision ends before the first step whose flag
differs from its first step's, so a replay row is all the agent's or all the operator's. The agent's
actions left over when the operator takes over mid-chunk were never executed and are not reported.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np


class InterventionEnv:
    accepts_chunks = True

    def __init__(self, env, operator: Callable, takes_over: Callable[[int, int, dict], bool]):
        """operator: obs -> action (A,), with an optional reset() called at the start of every takeover
        (a scripted expert plans from the state it is handed); takes_over(episode, t, obs) -> bool."""
        self.env, self.operator, self.takes_over = env, operator, takes_over
        self.episode, self.t = -1, 0
        self.intervention_steps = 0
        self._obs, self._engaged = None, False

    def reset(self, seed: int | None = None):
        self.episode += 1
        self.t, self._engaged = 0, False
        takes_seed = "seed" in inspect.signature(self.env.reset).parameters
        self._obs = self.env.reset(seed=seed) if takes_seed else self.env.reset()
        return self._obs

    def step(self, chunk):
        chunk = np.asarray(chunk, np.float32).reshape(-1, np.shape(chunk)[-1])
        observations, rewards, executed, flags = [], [], [], []
        obs, done, info = self._obs, False, {}
        for action in chunk:
            human = bool(self.takes_over(self.episode, self.t, self._obs))
            if flags and human != flags[0]:
                break                        # the switch opens the next decision
            if human and not self._engaged and hasattr(self.operator, "reset"):
                self.operator.reset()
            self._engaged = human
            if human:
                action = np.asarray(self.operator(self._obs), np.float32)
                self.intervention_steps += 1
            obs, reward, done, info = self.env.step(action)
            self._obs = obs
            self.t += 1
            observations.append(obs)
            rewards.append(float(reward))
            executed.append(np.asarray(action, np.float32))
            flags.append(human)
            if done:
                break
        return obs, rewards[-1], done, {
            "rewards": rewards, "observations": observations, "steps": len(rewards),
            "success": bool(info.get("success", False)), "truncated": bool(info.get("truncated", False)),
            "executed_actions": np.stack(executed), "interventions": flags}

    def close(self) -> None:
        if hasattr(self.env, "close"):
            self.env.close()
