"""The one episode loop (policy_stack/episode.py) drives a Policy the way the robot does: act() plans,
observe() records every executed step, so an RTI policy's warm start is shifted by the executed steps
(not 1) and its history holds consecutive frames. Runs without a simulator (a small stand-in env)."""
import numpy as np

from policy_stack.episode import run_episode
from policy_stack.spaces import ActionSpace

from test_diffusion_common import one_obs, tiny_policy


class CountingEnv:
    """Stand-in env: observations follow a fixed sequence; success never; horizon 20."""
    horizon = 20
    action_space = ActionSpace(names=list("abcdefg"), low=[-1.0] * 7, high=[1.0] * 7)

    def __init__(self):
        self.t = 0

    def reset(self, seed=None):
        self.t = 0
        return one_obs(0)

    def step(self, action):
        self.t += 1
        return one_obs(self.t), 0.0, False, {"success": False}


def test_rti_policy_gets_shift_equal_to_executed_steps():
    policy = tiny_policy(sampler="rti", n_action_steps=4, horizon=16)
    shifts, observed = [], []
    warm_start = policy.sampler.warm_start

    def recording_warm_start(previous, shift=None):
        shifts.append(shift)
        return warm_start(previous, shift)
    policy.sampler.warm_start = recording_warm_start
    observe = policy.observe
    policy.observe = lambda obs: (observed.append(obs), observe(obs))

    rec = run_episode(CountingEnv(), policy, seed=0, max_steps=12, record_obs=False)
    assert rec["length"] == 12 and rec["ticks"] == 3
    assert shifts == [4, 4]                       # two warm-started plans, each after 4 executed steps
    assert len(observed) == 12 - 3                # every executed step that was not a plan
    assert rec["policy_steps"][1:] == [policy.config.rti_steps] * 2


def test_loop_matches_the_manual_protocol():
    """Same actions as calling act()/observe() by hand: the loop adds nothing and skips nothing."""
    a, b = tiny_policy(sampler="rti", n_action_steps=4), tiny_policy(sampler="rti", n_action_steps=4)
    rec = run_episode(CountingEnv(), a, seed=0, max_steps=8, record_obs=False)
    b.reset(seed=None)
    env, manual = CountingEnv(), []
    obs = env.reset()
    for tick in range(2):
        chunk = b.act(obs)
        for k, action in enumerate(chunk):
            if k > 0:
                b.observe(obs)
            manual.append(action)
            obs = env.step(action)[0]
    np.testing.assert_array_equal(rec["action"], np.stack(manual))
