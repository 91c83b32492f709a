import numpy as np
import torch

from policy_stack.rl.replay import EpisodeRecorder, Replay, mc_returns, transitions_from_episode

from .helpers import demo_replay
from .toy_env import PointReach, expert_episode

torch.set_num_threads(1)


def _online_episode(rep: Replay, n: int, reward_at_end: float = 1.0):
    rec = EpisodeRecorder(Tp=4, exec_start=1)
    for i in range(n):
        o = {"pos": np.full((2, 2), i, np.float32), "goal": np.zeros((2, 2), np.float32)}
        o2 = {"pos": np.full((2, 2), i + 1, np.float32), "goal": np.zeros((2, 2), np.float32)}
        last = i == n - 1
        rec.add(o, np.full((2, 2), 0.1 * i, np.float32), [0.0, reward_at_end if last else 0.0], o2, terminal=last, gamma=0.9)
    rep.add_online(rec.finish(rep.new_episode_id()))


def test_symmetric_sampling_proportions():
    rep = demo_replay(4)
    _online_episode(rep, 3)   # far fewer online rows than offline: proportions must still be 50/50
    b = rep.sample(64, np.random.default_rng(0))
    assert b["is_online"].mean() == 0.5
    assert b["action"].shape == (64, 4, 2) and b["obs"]["pos"].shape == (64, 2, 2)
    # every online row comes from the online store (its pos values are the small integers above)
    online_pos = b["obs"]["pos"][b["is_online"] == 1]
    assert set(np.unique(online_pos)) <= {0.0, 1.0, 2.0}
    # no online data yet -> all offline; offline_ratio is honoured
    assert demo_replay(2).sample(10, np.random.default_rng(0))["is_online"].sum() == 0
    rep.offline_ratio = 0.25
    assert rep.sample(40, np.random.default_rng(1))["is_online"].mean() == 0.75


def test_episode_rows_mc_return_and_nstep():
    rep = Replay(10, 100, n_step=1)
    _online_episode(rep, 3)
    g = rep.online.arrays["mc_return"][:3]
    # per decision: reward 0.9 * r_last on the last one, discount 0.81 per decision
    np.testing.assert_allclose(g, [0.9 * 0.81 ** 2, 0.9 * 0.81, 0.9], rtol=1e-6)
    np.testing.assert_allclose(mc_returns(np.array([1.0, 1.0]), np.array([0.5, 0.5])), [1.5, 1.0])
    rep.n_step = 3
    b = rep.online.nstep(np.array([0, 1, 2]), 3)
    np.testing.assert_allclose(b["reward"], g, rtol=1e-6)     # 3-step returns reach the terminal reward
    np.testing.assert_array_equal(b["terminal"], [1, 1, 1])
    np.testing.assert_array_equal(b["next_obs/pos"][:, 0, 0], [3, 3, 3])
    # stored chunks are rebuilt from executed actions in the window convention (exec_start=1)
    a = rep.online.arrays["action"][1]
    np.testing.assert_allclose(a[:, 0], [0.0, 0.1, 0.1, 0.2])
    np.testing.assert_array_equal(rep.online.arrays["action_is_pad"][0], [True, False, False, False])


def test_offline_transitions_window_convention():
    env = PointReach()
    o, a, r, term = expert_episode(env, 3)
    tr = transitions_from_episode(o, a, r, term, To=2, Tp=4, Ta=2, gamma=0.99, episode=0)
    T = len(a)
    # decisions whose Ta-step macro-action reaches the end are terminal (the last Ta of them)
    assert len(tr["reward"]) == T and tr["terminal"][-2:].tolist() == [1.0, 1.0] and tr["terminal"][:-2].sum() == 0
    np.testing.assert_allclose(tr["discount"][-1], 0.99)       # last decision executed only 1 step
    np.testing.assert_allclose(tr["action"][1, 1:3], a[1:3])   # executed slice = actions[t:t+Ta]
    assert tr["reward"][-1] == 1.0 and tr["mc_return"][0] > 0


def test_save_load_roundtrip(tmp_path):
    rep = demo_replay(3)
    _online_episode(rep, 4)
    rep.save(tmp_path / "replay")
    rep2 = Replay.load(tmp_path / "replay")
    b1, b2 = rep.sample(32, np.random.default_rng(5)), rep2.sample(32, np.random.default_rng(5))
    for k in ("action", "reward", "mc_return", "is_online"):
        np.testing.assert_array_equal(b1[k], b2[k])
    assert rep2.next_episode_id == rep.next_episode_id
    # ring buffer wrap keeps order through save/load
    small = Replay(10, 5)
    for _ in range(3):
        _online_episode(small, 3)
    small.save(tmp_path / "r2")
    s2 = Replay.load(tmp_path / "r2")
    assert s2.online.size == 5 and np.array_equal(np.sort(s2.online.arrays["episode"]), np.sort(small.online.arrays["episode"]))
