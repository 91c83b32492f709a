"""The RL agents live on the policy's device: networks, optimizer state, replay batches, random draws.

This machine has no CUDA, so the policy is moved to torch's `meta` device: every op still runs (on
shapes only), and any tensor created on the CPU by mistake (a network never moved, a batch put on
the CPU, a torch.rand without device=) meets a meta tensor and raises. The same update then runs on
CUDA where a GPU exists."""
import numpy as np
import pytest
import torch

from policy_stack.rl.session import ALGOS

from .helpers import SMALL_AGENT, demo_replay, seed_all
from .tiny_policy import TinyPolicy

torch.set_num_threads(1)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)


def _agent_on(device: str, algo: str):
    seed_all(0)
    cls = ALGOS[algo]
    return cls(TinyPolicy().to(device), cls.config_cls.from_dict(SMALL_AGENT[algo]))


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_agent_networks_batches_and_updates_on_policy_device(algo):
    agent = _agent_on("meta", algo)
    assert agent.device == torch.device("meta")
    for name, module in agent.modules.items():
        for k, t in list(module.named_parameters()) + list(module.named_buffers()):
            assert t.device.type == "meta", f"{name}.{k} is on {t.device}"
    for name, opt in agent.optims.items():
        for group in opt.param_groups:
            assert all(p.device.type == "meta" for p in group["params"]), name
    rep, rng = demo_replay(2), np.random.default_rng(0)
    batch = agent.prepare(rep.sample(8, rng))
    for t in _tensors(batch):
        assert t.device.type == "meta"
    metrics = agent.learn(rep, rng, utd=2)      # critic, actor/edit/distill steps, random draws
    assert metrics and all(torch.as_tensor(v).device.type == "meta" for v in metrics.values())
    assert agent.counters["critic_steps"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_agent_update_and_act_on_cuda(algo):
    agent = _agent_on("cuda", algo)
    rep, rng = demo_replay(2), np.random.default_rng(0)
    m = agent.update(rep, rng, utd=2)
    assert all(np.isfinite(v) for v in m.values())
    chunk = agent.act({"pos": np.zeros((2, 2), np.float32), "goal": np.ones((2, 2), np.float32)})
    assert chunk.shape == (4, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_rng_capture_includes_the_cuda_generator():
    from policy_stack.rng import capture_rng, restore_rng
    rng = np.random.default_rng(0)
    state = capture_rng("cuda", rng)
    assert "torch_cuda" in state and "numpy_generator" in state
    a = torch.rand(3, device="cuda")
    restore_rng(state, "cuda", rng)
    assert torch.equal(a, torch.rand(3, device="cuda"))


def test_rng_capture_round_trips_every_cpu_stream():
    import random

    from policy_stack.rng import capture_rng, restore_rng
    rng = np.random.default_rng(5)
    state = capture_rng(None, rng)
    before = (random.random(), np.random.rand(), rng.random(), float(torch.rand(())))
    restore_rng(state, None, rng)
    assert before == (random.random(), np.random.rand(), rng.random(), float(torch.rand(())))
