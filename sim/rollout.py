"""One episode of any actor in a SimEnv, recorded step by step (used by `policy-stack collect` and eval).

The actor is anything that maps an observation to an action:
  - a callable `obs -> (7,)` action, or `obs -> (T, 7)` action chunk;
  - or an object with `act(obs)` (a Policy) used the same way.
`act` is preferred when present. If the actor has `reset()`, that is called after the env reset
(clears warm starts, picks expert flaws). A scripted expert (sim.experts) is bound to the env for you.

Chunks run receding-horizon: the first `action_horizon` actions of each chunk are executed open loop
(None = the whole chunk), then the actor is queried again with the newest observation.

Stopping: at the first success plus `steps_after_success` more steps (default 0: robosuite's success
checks are state-based, so frames after it only repeat the end state; robomimic demos also end there),
at the env's `done` (horizon), or after `max_steps`. The last recorded step has done=True.
"""
from __future__ import annotations

import time

import numpy as np


def run_episode(env, actor, seed: int | None, max_steps: int | None = None, *,
                steps_after_success: int = 0, action_horizon: int | None = None,
                record_obs: bool = True) -> dict:
    """Run one episode and return its record.

    Returns a dict:
      obs: {key: array (T, ...)}, the observation each action was taken from (absent if record_obs=False)
      action (T, 7) float32, reward (T,) float32, success (T,) bool (task solved after that step),
      done (T,) bool (True only on the last step), length T, episode_success bool,
      first_success_step int | None (index into the arrays), seed, wall_s, task (language string).
    """
    if hasattr(actor, "bind"):          # an unbound scripted expert: it reads privileged state from env
        actor = actor.bind(env)
    # Prefer .act: a Policy may also be callable (e.g. an nn.Module's forward), which is not an action.
    act_fn = getattr(actor, "act", None) or (actor if callable(actor) else None)
    if act_fn is None:
        raise TypeError(f"run_episode: actor {actor!r} is neither callable nor has .act(obs)")
    max_steps = int(max_steps or env.horizon)
    t0 = time.perf_counter()
    obs = env.reset(seed=seed)
    if hasattr(actor, "reset"):
        actor.reset()

    observations, actions, rewards, successes = [], [], [], []
    first_success = None
    queue: list[np.ndarray] = []     # remaining actions of the current chunk
    done = False
    while len(actions) < max_steps and not done:
        if not queue:
            queue = _as_chunk(act_fn(obs), env.action_space.dim, action_horizon)
        action = queue.pop(0)
        if record_obs:
            observations.append(obs)
        obs, reward, done, info = env.step(action)
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
