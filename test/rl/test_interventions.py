"""Learning from human interventions without ROS: the replay rule (a row is all the agent's or all the
operator's, cut rows keep only their own actions), the demo-store copy, the session's refusal of a
mislabelled decision, and each algorithm's behaviour-cloning term on intervention rows."""
import numpy as np
import pytest
import torch

from policy_stack.rl.expo import ExpoAgent, ExpoConfig
from policy_stack.rl.interventions import InterventionEnv
from policy_stack.rl.parl import ParlAgent, ParlConfig
from policy_stack.rl.replay import EpisodeRecorder, Replay, intervention_rows
from policy_stack.rl.sac import SacAgent, SacConfig
from policy_stack.rl.session import run_session

from .helpers import SMALL_AGENT, demo_replay, seed_all
from .tiny_policy import TinyPolicy
from .toy_env import PointReach

torch.set_num_threads(1)
OPERATOR_ACTION = np.array([0.4, -0.4], np.float32)


def _hist(v):
    return {"pos": np.full((2, 2), v, np.float32)}


def test_cut_row_keeps_only_its_own_actions():
    rec = EpisodeRecorder(Tp=4, exec_start=1, Ta=2)
    rec.add(_hist(0), [[0.1, 0], [0.2, 0]], [0, 0], _hist(2), False, 0.9)        # full row
    rec.add(_hist(2), [[0.3, 0]], [0], _hist(3), False, 0.9, intervention=False)  # cut after 1 step
    rec.add(_hist(3), [[0.7, 0], [0.8, 0]], [0, 1], _hist(5), True, 0.9, intervention=True)
    b = rec.finish(episode=0)
    np.testing.assert_array_equal(b["intervention"], [0, 0, 1])
    # the full row's window reads on into the next decision as before (the imitation convention) ...
    np.testing.assert_allclose(b["action"][0][:, 0], [0.1, 0.1, 0.2, 0.3])
    # ... the cut row's executed slice holds its own action, then padding, never the operator's 0.7
    np.testing.assert_allclose(b["action"][1][:, 0], [0.2, 0.3, 0.3, 0.3])
    np.testing.assert_array_equal(b["action_is_pad"][1], [False, False, True, True])
    np.testing.assert_allclose(b["discount"], [0.81, 0.9, 0.81], rtol=1e-6)


def test_intervention_rows_relinks_successors():
    batch = {"intervention": np.array([0, 1, 1, 0, 1], np.float32), "succ": np.array([1, 1, 1, 1, 0]),
             "reward": np.arange(5, dtype=np.float32)}
    out = intervention_rows(batch)
    np.testing.assert_array_equal(out["reward"], [1, 2, 4])
    np.testing.assert_array_equal(out["succ"], [1, 0, 0])    # 1 -> 2 stays linked; 2 -> 3 was not copied
    assert intervention_rows({"intervention": np.zeros(3, np.float32), "succ": np.ones(3, int)}) == {}


class LoggedOperator:
    """A scripted operator with a fixed command; the env logs every executed step for the check."""

    def __call__(self, obs):
        return OPERATOR_ACTION


def test_session_stores_executed_operator_actions_and_copies_them_to_the_demo_store(tmp_path):
    seed_all()
    policy = TinyPolicy()
    log = []

    class Logged(PointReach):
        def step(self, action):
            log[-1].append(np.asarray(action, np.float32).copy())
            return super().step(action)

        def reset(self, seed=None):
            log.append([])
            return super().reset(seed)

    # the operator holds the deadman on steps 3..6 of the first two episodes (windows start mid-chunk)
    envs = []

    def factory():
        envs.append(InterventionEnv(Logged(max_steps=12), LoggedOperator(), lambda ep, t, obs: ep < 2 and 3 <= t < 7))
        return envs[-1]
    summary = run_session({"algo": "expo", "total_env_steps": 36, "max_episode_steps": 12, "agent": SMALL_AGENT["expo"],
                           "progress": False, "tensorboard": False, "checkpoint_every_env_steps": 36},
                          factory, policy, None, tmp_path / "run")
    rep = Replay.load(tmp_path / "run" / "checkpoints" / sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("ckpt_*"))[-1] / "replay")
    on, n = rep.online.arrays, rep.online.size
    s = policy.n_obs_steps - 1
    for ep, steps in enumerate(log):
        rows = np.flatnonzero(on["episode"][:n] == ep)
        acts, flags = [], []
        for i in rows:
            k = int(round(np.log(on["discount"][i]) / np.log(0.99)))
            acts.extend(on["action"][i, s:s + k])
            flags.extend([on["intervention"][i] > 0] * k)
        np.testing.assert_allclose(np.array(acts), np.array(steps), atol=1e-6)   # exactly what ran, in order
        human = [np.allclose(a, OPERATOR_ACTION) for a in steps]
        assert flags == human == [ep < 2 and 3 <= t < 7 for t in range(len(steps))]
    flagged = on["intervention"][:n] > 0
    assert rep.offline.size == flagged.sum() > 0
    np.testing.assert_array_equal(rep.offline.arrays["action"][: rep.offline.size], on["action"][:n][flagged])
    assert summary["intervention_steps"] == envs[0].intervention_steps == 8


def test_session_refuses_a_decision_with_mixed_flags(tmp_path):
    class Mixed(PointReach):
        accepts_chunks = True

        def step(self, chunk):
            obs, r, done, info = super().step(chunk[0])
            info = dict(info, steps=2, rewards=[0.0, r], observations=[obs, obs],
                        executed_actions=np.asarray(chunk[:2]), interventions=[False, True])
            return obs, r, done, info
    with pytest.raises(ValueError, match="all the agent's or all a human's"):
        run_session({"algo": "expo", "total_env_steps": 4, "max_episode_steps": 4, "agent": SMALL_AGENT["expo"],
                     "progress": False, "tensorboard": False}, Mixed, TinyPolicy(), None, tmp_path / "run")


def _flag_all(rep: Replay) -> Replay:
    rep.offline.arrays["intervention"][:] = 1.0
    return rep


@pytest.mark.parametrize("bc", [0.0, 1.0])
def test_expo_and_sac_bc_term_only_with_intervention_rows(bc):
    """The BC term is there (changes the update) exactly when the batch holds intervention rows and the
    weight is > 0; without flagged rows the update is the plain algorithm's, bit for bit."""
    def run(cls, cfg_cls, algo, flagged, weight):
        seed_all()
        agent = cls(TinyPolicy(), cfg_cls(**SMALL_AGENT[algo], intervention_bc=weight))
        rep = demo_replay(3)
        if flagged:
            _flag_all(rep)
        m = agent.update(rep, np.random.default_rng(0))
        net = agent.policy if algo == "expo" else agent.actor
        return torch.cat([p.detach().flatten() for p in net.parameters()]), m
    for cls, cfg_cls, algo in ((ExpoAgent, ExpoConfig, "expo"), (SacAgent, SacConfig, "sac")):
        plain, _ = run(cls, cfg_cls, algo, False, bc)
        weighted, m = run(cls, cfg_cls, algo, True, bc)
        same_as_off, _ = run(cls, cfg_cls, algo, True, 0.0)
        assert torch.equal(plain, same_as_off)
        assert torch.equal(plain, weighted) == (bc == 0.0), algo
        assert ("bc_loss" in m) == (algo == "sac" and bc > 0)


def test_parl_distils_the_operators_chunk_whatever_q_says():
    seed_all()
    policy = TinyPolicy(noise=0.05)
    agent = ParlAgent(policy, ParlConfig(**SMALL_AGENT["pa-rl"], base_lr=1e-2, step_size=0.05))
    s, Ta = agent.io.exec_start, agent.io.Ta
    far = torch.tensor([0.8, -0.8])

    def q_far(feat, act, target=False):     # the critic prefers chunks near `far`, not the data
        val = -((act[..., s:s + Ta, :] - far) ** 2).flatten(-2).sum(-1)
        return val.unsqueeze(0).expand(agent.critic.num_qs, *val.shape)
    agent.critic.q = q_far
    rep = _flag_all(demo_replay(3))
    b = agent.prepare(rep.sample(16, np.random.default_rng(0), sources="offline"))
    data = b["action_norm"][:, s:s + Ta]
    dist = lambda: ((policy.mean(b["obs_norm"])[:, s:s + Ta] - data) ** 2).mean().item()
    before = dist()
    for _ in range(30):
        m = agent.distill_step(b)
    assert m["distill_human_frac"] == 1.0
    assert dist() < 0.5 * before
