"""The episode loop (policy_stack.episode) in the real sim: recording layout, receding-horizon chunks,
stopping rules."""
import numpy as np
import pytest

from sim.envs import make_env
from sim.experts import make_expert
from policy_stack.episode import run_episode


@pytest.fixture(scope="module")
def env():
    e = make_env("lift", seed=0)
    yield e
    e.close()


class ChunkActor:
    """Returns a (4, 7) chunk of zero motion; counts queries and resets."""

    def __init__(self):
        self.queries = self.resets = 0

    def reset(self):
        self.resets += 1

    def __call__(self, obs):
        self.queries += 1
        return np.zeros((4, 7), np.float32)


def test_record_layout(env):
    record = run_episode(env, lambda obs: np.zeros(7), seed=0, max_steps=5)
    assert record["length"] == 5 and record["action"].shape == (5, 7)
    assert record["reward"].shape == (5,) and record["success"].dtype == bool
    assert record["done"].tolist() == [False] * 4 + [True]
    assert not record["episode_success"] and record["first_success_step"] is None
    assert record["obs"]["robot0_eef_pos"].shape == (5, 3) and record["obs"]["cube_pos"].dtype == np.float32
    assert record["task"] == "lift the cube"


def test_chunks_execute_receding_horizon(env):
    actor = ChunkActor()
    record = run_episode(env, actor, seed=0, max_steps=9, action_horizon=2, record_obs=False)
    assert record["length"] == 9 and "obs" not in record
    assert actor.queries == 5 and actor.resets == 1        # ceil(9 / 2) queries, one reset per episode
    actor = ChunkActor()
    run_episode(env, actor, seed=0, max_steps=9)             # default: the whole chunk
    assert actor.queries == 3


def test_stops_at_success_plus_extra_steps(env):
    expert = make_expert("lift")
    at_success = run_episode(env, expert.bind(env), seed=4, record_obs=False)
    assert at_success["episode_success"]
    assert at_success["length"] == at_success["first_success_step"] + 1
    later = run_episode(env, expert.bind(env), seed=4, steps_after_success=3, record_obs=False)
    assert later["length"] == at_success["length"] + 3
    np.testing.assert_array_equal(later["action"][:at_success["length"]], at_success["action"])


def test_bad_actor_output_is_reported(env):
    with pytest.raises(ValueError, match=r"\(7,\)"):
        run_episode(env, lambda obs: np.zeros(3), seed=0, max_steps=2)
