"""Shared fixtures for RL tests: tiny policy, toy env, demo replay, small agent configs."""
from __future__ import annotations

import numpy as np
import torch

from policy_stack.rl.replay import Replay, transitions_from_episode

from .tiny_policy import TinyPolicy
from .toy_env import PointReach, expert_episode

SMALL = {"batch_size": 16, "num_qs": 4, "num_min_qs": 2, "critic_hidden": (32, 32)}
SMALL_AGENT = {
    "expo": dict(SMALL, edit_hidden=(32,), n_base=4, n_edit=4),
    "pa-rl": dict(SMALL, n_global=8, n_keep=3, n_local_steps=2, cql_n_actions=3),
    "sac": dict(SMALL, actor_hidden=(32,)),
    "best_of_n": dict(SMALL, n_base=4),
}


def demo_replay(n_episodes: int = 6, policy: TinyPolicy | None = None) -> Replay:
    p = policy or TinyPolicy()
    env, rep = PointReach(), Replay(5000, 5000)
    for i in range(n_episodes):
        o, a, r, term = expert_episode(env, i)
        rep.add_offline(transitions_from_episode(o, a, r, term, p.n_obs_steps, p.horizon, p.n_action_steps, 0.99,
                                                 rep.new_episode_id()))
    return rep


def quadratic_q(center: torch.Tensor, exec_start: int, Ta: int, num_qs: int):
    """A stand-in critic q(): Q = -||executed actions - center||^2, same for every member."""
    def q(feat, act, target=False):
        a = act[..., exec_start:exec_start + Ta, :]
        val = -((a - center) ** 2).flatten(-2).sum(-1)
        return val.unsqueeze(0).expand(num_qs, *val.shape)
    return q


def seed_all(seed: int = 0):
    torch.manual_seed(seed)
    np.random.seed(seed)
