"""EXPO edits / OTF selection, PA-RL local steps and distillation, Cal-QL sign and shape."""
import numpy as np
import torch

from policy_stack.rl.calql import calql_regularizer
from policy_stack.rl.expo import ExpoAgent, ExpoConfig
from policy_stack.rl.parl import ParlAgent, ParlConfig, optimize_actions
from policy_stack.rl.session import ALGOS

from .helpers import SMALL_AGENT, demo_replay, quadratic_q, seed_all
from .tiny_policy import TinyPolicy

torch.set_num_threads(1)


def _obs(agent, rep, n=8):
    b = agent.prepare(rep.sample(n, np.random.default_rng(0)))
    return b["obs_norm"], b["feat"]


def test_edits_bounded_by_beta():
    seed_all()
    agent = ExpoAgent(TinyPolicy(), ExpoConfig(**SMALL_AGENT["expo"], beta=0.05))
    obs, feat = _obs(agent, demo_replay(2))
    base = agent.base_samples(obs, 6)
    edited, delta, logp = agent.apply_edit(feat, base)
    assert delta.abs().max() <= 0.05 + 1e-6 and torch.isfinite(logp).all()
    s, Ta = agent.io.exec_start, agent.io.Ta
    moved = (edited - base).abs()
    assert moved.max() <= 0.05 + 1e-6 and edited.abs().max() <= 1.0
    mask = torch.zeros(base.shape[2], dtype=bool)
    mask[s:s + Ta] = True
    assert moved[:, :, ~mask].max() == 0      # unexecuted steps untouched


def test_on_the_fly_picks_highest_q():
    seed_all()
    agent = ExpoAgent(TinyPolicy(), ExpoConfig(**SMALL_AGENT["expo"]))
    obs, feat = _obs(agent, demo_replay(2))
    center = torch.tensor([0.3, -0.2])
    agent.critic.q = quadratic_q(center, agent.io.exec_start, agent.io.Ta, agent.critic.num_qs)
    cands = agent.candidates(obs, feat)
    assert cands.shape[1] == agent.cfg.n_base + agent.cfg.n_edit
    best, q = agent.select(feat, cands, target=False)
    brute = agent.critic.q(feat, cands)[0].argmax(-1)
    assert torch.equal(best, cands[torch.arange(len(brute)), brute])
    # acting goes through the same selection
    seed_all(1)
    chunk = agent.act({"pos": np.zeros((2, 2), np.float32), "goal": np.ones((2, 2), np.float32)})
    assert chunk.shape == (4, 2) and np.abs(chunk).max() <= 0.5 + 1e-6


def test_parl_local_steps_raise_q():
    seed_all()
    agent = ParlAgent(TinyPolicy(), ParlConfig(**SMALL_AGENT["pa-rl"]))
    obs, feat = _obs(agent, demo_replay(2))
    cands = agent.base_samples(obs, 8)
    # with the real (random-init) ensemble: never lower than the kept global samples
    q0 = agent.critic.q(feat, cands).mean(0).topk(3, dim=1).values
    _, q = optimize_actions(agent.critic, feat, cands, 3, 5, 0.05)
    assert (q >= q0 - 1e-6).all()
    # with a smooth known critic, local steps strictly raise Q
    qfun = quadratic_q(torch.tensor([0.9, -0.9]), agent.io.exec_start, agent.io.Ta, agent.critic.num_qs)
    agent.critic.q = qfun
    top = qfun(feat, cands).mean(0).topk(3, dim=1).values
    opt, q = optimize_actions(agent.critic, feat, cands, 3, 10, 3e-2)
    assert (q > top).all()


def test_parl_distillation_moves_policy_toward_optimized_actions():
    seed_all()
    policy = TinyPolicy(noise=0.05)
    agent = ParlAgent(policy, ParlConfig(**SMALL_AGENT["pa-rl"], base_lr=1e-2, step_size=0.05))
    center = torch.tensor([0.8, -0.8])
    agent.critic.q = quadratic_q(center, agent.io.exec_start, agent.io.Ta, agent.critic.num_qs)
    rep = demo_replay(3)
    b = agent.prepare(rep.sample(16, np.random.default_rng(0)))
    s, Ta = agent.io.exec_start, agent.io.Ta
    dist = lambda: ((policy.mean(b["obs_norm"])[:, s:s + Ta] - center) ** 2).mean().item()
    before = dist()
    for _ in range(30):
        agent.distill_step(b)
    assert dist() < 0.5 * before


def test_parl_distillation_keeps_data_chunk_the_critic_prefers():
    """The replay's chunk competes in distillation (reference): where Q rates it above every
    optimized sample the policy is trained on it; switched off, it never is."""
    seed_all()
    policy = TinyPolicy(noise=0.05)
    agent = ParlAgent(policy, ParlConfig(**SMALL_AGENT["pa-rl"], base_lr=1e-2))
    rep = demo_replay(3)
    b = agent.prepare(rep.sample(16, np.random.default_rng(0)))
    s, Ta = agent.io.exec_start, agent.io.Ta
    data_exec = b["action_norm"][:, s:s + Ta]

    def q_near_data(feat, act, target=False):
        d = data_exec if act.dim() == 3 else data_exec[:, None]
        val = -((act[..., s:s + Ta, :] - d) ** 2).flatten(-2).sum(-1)
        return val.unsqueeze(0).expand(agent.critic.num_qs, *val.shape)

    agent.critic.q = q_near_data
    dist = lambda: ((policy.mean(b["obs_norm"])[:, s:s + Ta] - data_exec) ** 2).mean().item()
    before = dist()
    for _ in range(30):
        m = agent.distill_step(b)
        assert m["distill_data_frac"] == 1.0
    assert dist() < 0.5 * before
    agent.cfg.distill_with_data = False
    assert "distill_data_frac" not in agent.distill_step(b)
    parts, q = agent.optimized(b["obs_norm"], b["feat"])
    assert parts.shape[1] == agent.cfg.n_keep


def test_calql_shape_and_sign():
    E, B, K = 3, 5, 4
    q_data = torch.zeros(E, B, requires_grad=True)
    q_ood = torch.ones(E, B, K, requires_grad=True)
    is_pi = torch.tensor([False, False, True, True])
    reg = calql_regularizer(q_data, q_ood, is_pi, mc_return=None)
    assert reg.shape == (E,) and (reg > 0).all()            # OOD valued above data -> positive
    reg.sum().backward()
    assert (q_data.grad < 0).all() and (q_ood.grad > 0).all()   # minimizing: data up, OOD down
    low = calql_regularizer(torch.full((E, B), 10.0), torch.zeros(E, B, K), is_pi, None)
    assert (low < 0).all()
    # calibration: policy actions are lifted to the MC return, random ones are not
    mc = torch.full((B,), 5.0)
    cal = calql_regularizer(torch.zeros(E, B), torch.zeros(E, B, K), is_pi, mc)
    expected = torch.logsumexp(torch.tensor([0.0, 0.0, 5.0, 5.0]), 0)
    torch.testing.assert_close(cal, expected.expand(E))


def test_every_algorithm_updates():
    for name, cls in ALGOS.items():
        seed_all()
        agent = cls(TinyPolicy(), cls.config_cls.from_dict(SMALL_AGENT[name]))
        m = agent.update(demo_replay(2), np.random.default_rng(0), utd=2)
        assert m and all(np.isfinite(v) for v in m.values()), (name, m)
        assert agent.counters["critic_steps"] == 2


def test_edit_entropy_target_reachable_for_small_beta():
    """The temperature only settles if the edit policy CAN reach -d/2: a log-prob that counted the
    beta scaling (d*log(0.05) = -168 nats for d = 56) would put every policy below the target."""
    from policy_stack.rl.nets import TanhGaussian
    torch.manual_seed(0)
    d = 56
    heads = [TanhGaussian(4, d, (8,), scale=s) for s in (0.05, 1.0)]
    with torch.no_grad():                       # mu = 0, std = 1: a broad unit tanh-Gaussian
        heads[0].net[-1].weight.zero_()
        heads[0].net[-1].bias.zero_()
    heads[1].load_state_dict(heads[0].state_dict())
    x = torch.zeros(4096, 4)
    torch.manual_seed(1)
    small, logp_small = heads[0](x)
    torch.manual_seed(1)
    unit, logp_unit = heads[1](x)
    assert torch.allclose(small, 0.05 * unit, atol=1e-6)
    assert torch.allclose(logp_small, logp_unit)             # log-prob of the unit tanh-Gaussian
    assert -logp_small.mean().item() > -d / 2                 # the entropy target is reachable
