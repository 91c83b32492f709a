"""Scripted experts solve their tasks from a few seeds; flaws and noise behave as documented.
(The 50-seed success rates are measured by `python -m bench.bench_sim`, not here.)"""
import numpy as np
import pytest

from sim.envs import make_env
from sim.experts import FLAWS, make_expert
from policy_stack.episode import run_episode

SEEDS = {"lift": (0, 1, 2), "pick_place_can": (0, 1), "stack": (0, 1), "nut_assembly_square": (0,)}


@pytest.mark.parametrize("task", list(SEEDS))
def test_expert_succeeds(task):
    env = make_env(task)
    expert = make_expert(task)
    try:
        for seed in SEEDS[task]:
            record = run_episode(env, expert.bind(env), seed=seed, record_obs=False)
            assert record["episode_success"], f"{task} expert failed on seed {seed} after {record['length']} steps"
            assert record["success"][-1] and record["done"][-1]
    finally:
        env.close()


def test_expert_accepts_robosuite_class_names_and_rejects_unknown():
    assert type(make_expert("Lift")) is type(make_expert("lift"))
    with pytest.raises(ValueError, match="'door'"):
        make_expert("door")


def test_noise_and_flaws():
    env = make_env("lift", seed=0)
    try:
        env.reset(seed=0)
        quiet, noisy = make_expert("lift"), make_expert("lift", noise=0.3, rng=0)
        a_quiet, a_noisy = quiet.act(None, env), noisy.act(None, env)
        assert a_noisy.shape == (7,) and a_noisy.dtype == np.float32
        assert np.all(np.abs(a_noisy) <= 1.0)
        assert not np.allclose(a_quiet[:3], a_noisy[:3]) and a_quiet[6] == a_noisy[6]
    finally:
        env.close()
    # suboptimal=1 gives every episode a flaw; the per-episode draw comes from the expert's rng.
    flawed = make_expert("stack", suboptimal=1.0, rng=3)
    seen = set()
    for _ in range(30):
        flawed.reset()
        seen.add(flawed.flaw)
    assert seen == set(FLAWS)
    assert make_expert("stack", suboptimal=0.0).flaw is None
