"""The one episode loop: an actor in an env, chunks executed receding-horizon, every step recorded.

Used by `policy-stack eval` and the trainer's evaluation (train/rollout.py), `policy-stack collect`
(scripted experts) and bench/bench_sim.py. It imports no simulator: the caller passes the env, any
object with
    reset(seed=...) -> obs, step(action) -> (obs, reward, done, info{"success"}), horizon,
    action_space (its .dim)

The actor is either
  - a `Policy`: reset() at episode start, act(obs) -> chunk at each plan, and observe(obs) for every
    observation seen while executing the chunk, so its history stays contiguous and its RTI / EBT warm
    start is shifted by the steps actually executed; or
  - a plain callable obs -> action (A,) or chunk (T, A), e.g. a scripted expert bound to its env
    (`sim.experts.make_expert(task).bind(env)`); its reset(), when it has one, runs at episode start.

Chunks run receding-horizon: the first `action_horizon` actions of each chunk (None = the whole chunk)
are executed open loop, then the actor plans again from the newest observation.

Stopping: at the first success plus `steps_after_success` more steps (default 0: robosuite's success
checks are state-based, so frames after it only repeat the end state; robomimic demos also end there),
at the env's `done` (horizon), or after `max_steps` (default: env.horizon).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from policy_stack.policies.base import Policy


def run_episode(env, actor, seed: int | None, max_steps: int | None = None, *,
                steps_after_success: int = 0, action_horizon: int | None = None, record_obs: bool = True,
                on_obs: Callable[[dict], None] | None = None) -> dict:
    """Run one episode and return its record:

      obs: {key: array (T, ...)}, the observation each action was taken from (absent if record_obs=False)
      action (T, A) float32, reward (T,) float32, success (T,) bool (task solved after that step),
      done (T,) bool (True only on the last step), length T, episode_success bool,
      first_success_step int | None (index into the arrays), seed, task (language string), wall_s,
      ticks (plans made), latency_ms [per plan: wall time of act()], policy_steps [per plan:
      denoising / descent steps from the policy's info, 0 for a plain callable].

    on_obs(obs) is called with the first observation and after every step (e.g. a video writer)."""
    is_policy = isinstance(actor, Policy)
    if is_policy:
        plan, observe, reset = actor.act, actor.observe, actor.reset
    elif callable(actor):
        plan, observe, reset = actor, None, getattr(actor, "reset", None)   # scripted actors may keep state
    else:
        raise TypeError(f"run_episode: actor {actor!r} is neither a Policy nor a callable obs -> action")
    max_steps = int(max_steps or env.horizon)
    t0 = time.perf_counter()
    obs = env.reset(seed=seed)
    if reset is not None:
        reset()
    if on_obs is not None:
        on_obs(obs)

    observations, actions, rewards, successes = [], [], [], []
    latency_ms, policy_steps = [], []
    first_success = None
    queue: list[np.ndarray] = []     # remaining actions of the current chunk
    done = False
    while len(actions) < max_steps and not done:
        if queue:
            if observe is not None:
                observe(obs)         # an executed step of the current chunk: no new plan
        else:
            t_plan = time.perf_counter()
            output = plan(obs)
            latency_ms.append((time.perf_counter() - t_plan) * 1e3)
            policy_steps.append(int(actor.info.get("steps", 0) or 0) if is_policy else 0)
            queue = _as_chunk(output, env.action_space.dim, action_horizon)
        action = queue.pop(0)
        if record_obs:
            observations.append(obs)
        obs, reward, done, info = env.step(action)
        if on_obs is not None:
            on_obs(obs)
        actions.append(action)
        rewards.append(reward)
        successes.append(bool(info["success"]))
        if first_success is None and info["success"]:
            first_success = len(actions) - 1
        if first_success is not None and len(actions) - 1 - first_success >= steps_after_success:
            break

    n = len(actions)
    record = {
        "action": np.asarray(actions, dtype=np.float32).reshape(n, -1),
        "reward": np.asarray(rewards, dtype=np.float32),
        "success": np.asarray(successes, dtype=bool),
        "done": np.arange(n) == n - 1,
        "length": n,
        "episode_success": first_success is not None,
        "first_success_step": first_success,
        "seed": seed,
        "task": getattr(env, "task", ""),
        "wall_s": time.perf_counter() - t0,
        "ticks": len(latency_ms),
        "latency_ms": latency_ms,
        "policy_steps": policy_steps,
    }
    if record_obs:
        record["obs"] = {k: np.stack([o[k] for o in observations]) for k in observations[0]} if n else {}
    return record


def _as_chunk(output, action_dim: int, action_horizon: int | None) -> list[np.ndarray]:
    """Actor output (A,) or (T, A) -> list of (A,) float32 actions to execute."""
    arr = np.asarray(output, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != action_dim or arr.shape[0] == 0:
        raise ValueError(f"actor returned shape {np.shape(output)}; expected ({action_dim},) or (T, {action_dim})")
    if action_horizon is not None:
        arr = arr[:max(1, int(action_horizon))]
    return list(arr)
