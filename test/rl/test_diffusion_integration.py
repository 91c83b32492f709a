"""The RL agents on a tiny REAL DiffusionPolicy: updates run and resume is bit-exact (its private
sampling generator included)."""
import numpy as np
import pytest
import torch

from policy_stack.rl.replay import Replay, transitions_from_episode
from policy_stack.rl.session import ALGOS
from policy_stack.rng import capture_rng, restore_rng
from policy_stack.rl.state_io import load_state, save_state

from .helpers import SMALL_AGENT, seed_all
from .toy_env import PointReach, expert_episode

torch.set_num_threads(1)
dp = pytest.importorskip("policy_stack.policies.diffusion.policy")


def tiny_dp():
    from policy_stack.policies.diffusion.config import DiffusionConfig
    from policy_stack.spaces import ActionSpace
    st = lambda d, lo, hi: {"min": [lo] * d, "max": [hi] * d, "mean": [0.0] * d, "std": [1.0] * d}
    cfg = DiffusionConfig(lowdim_keys=["pos", "goal"], derived_features=["pos-goal"], n_obs_steps=2, horizon=8,
                          n_action_steps=4, down_dims=(16, 32), step_embed_dim=16, n_groups=4, sampler_steps=3,
                          device="cpu")
    return dp.DiffusionPolicy(cfg, {"pos": st(2, -1, 1), "goal": st(2, -1, 1), "action": st(2, -0.5, 0.5)},
                              ActionSpace(["dx", "dy"], [-0.5, -0.5], [0.5, 0.5]))


def _replay():
    env, rep = PointReach(), Replay(1000, 1000)
    for i in range(2):
        o, a, r, term = expert_episode(env, i)
        rep.add_offline(transitions_from_episode(o, a, r, term, 2, 8, 4, 0.99, rep.new_episode_id()))
    return rep


@pytest.mark.parametrize("algo", ["expo", "pa-rl"])
def test_diffusion_agent_update_and_bit_exact_resume(algo, tmp_path):
    cls = ALGOS[algo]
    make = lambda: cls(tiny_dp(), cls.config_cls.from_dict(SMALL_AGENT[algo]))
    seed_all(0)
    agent, rep, rng = make(), _replay(), np.random.default_rng(0)
    assert "pos-goal" in agent.features.key_dims          # derived features reach the critic
    agent.update(rep, rng)
    save_state(agent.state_dict(), tmp_path, "agent")
    save_state(capture_rng(None, rng), tmp_path, "rng")
    m = agent.update(rep, rng)
    assert all(np.isfinite(v) for v in m.values())
    seed_all(7)
    agent2, rng2 = make(), np.random.default_rng(1)
    agent2.load_state_dict(load_state(tmp_path, "agent"))
    restore_rng(load_state(tmp_path, "rng"), None, rng2)
    agent2.update(rep, rng2)
    for name, mod in agent.modules.items():
        for k, v in mod.state_dict().items():
            assert torch.equal(v, agent2.modules[name].state_dict()[k]), f"{name}.{k}"
