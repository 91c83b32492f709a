"""`policy-stack finetune --preset cpu|paper`: the named sizes, chosen from the device by default,
overridable field by field, and the ones bench/bench_rl.py runs with."""
import argparse

import pytest

from policy_stack.cli import finetune
from policy_stack.rl.presets import agent_preset, session_preset
from policy_stack.rl.session import ALGOS, SessionConfig


def _args(*argv):
    p = argparse.ArgumentParser()
    finetune.add_arguments(p)
    return p.parse_args(["--algo", "expo", "--env", "sim:lift", "--policy", "x", "--steps", "10", "--out", "o",
                         *argv])


def test_cpu_device_defaults_to_the_cpu_preset():
    cfg = finetune.session_config(_args(), horizon=100, device="cpu")
    assert cfg["agent"]["num_qs"] == 4 and cfg["agent"]["critic_hidden"] == [128, 128]
    assert cfg["agent"]["batch_size"] == 64 and cfg["agent"]["n_base"] == cfg["agent"]["n_edit"] == 4
    assert cfg["agent"]["temp_lr"] == 6e-3


def test_cuda_device_defaults_to_the_paper_preset():
    cfg = finetune.session_config(_args(), horizon=100, device="cuda:0")
    assert cfg["agent"] == {}                 # the algorithms' own defaults: 10 x 256^3, batch 256
    agent_cfg = ALGOS["expo"].config_cls.from_dict(cfg["agent"])
    assert (agent_cfg.num_qs, agent_cfg.critic_hidden, agent_cfg.batch_size) == (10, (256, 256, 256), 256)


def test_explicit_preset_and_single_fields_override():
    cfg = finetune.session_config(_args("--preset", "paper"), horizon=100, device="cpu")
    assert cfg["agent"] == {}
    cfg = finetune.session_config(_args("--agent-set", "num_qs=6"), horizon=100, device="cpu")
    assert cfg["agent"]["num_qs"] == 6 and cfg["agent"]["batch_size"] == 64


def test_parl_cpu_preset_pretrains_its_critic_and_every_preset_builds():
    args = _args()
    args.algo = "pa-rl"
    cfg = finetune.session_config(args, horizon=100, device="cpu")
    assert cfg["critic_pretrain_steps"] == 2000
    assert SessionConfig.from_dict(cfg).agent["n_global"] == 8
    for preset in ("cpu", "paper"):
        for algo, cls in ALGOS.items():
            cls.config_cls.from_dict(agent_preset(preset, algo))     # every field exists
            SessionConfig.from_dict(session_preset(preset, algo))


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="--preset 'gpu'"):
        agent_preset("gpu", "expo")


def test_bench_rl_runs_the_cpu_preset():
    from bench import bench_rl
    assert bench_rl.PRESET == "cpu"
