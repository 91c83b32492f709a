"""Checkpoint/resume is bit-exact, including after a SIGKILL of a real session process."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from policy_stack.persist import KILL_AT_ENV
from policy_stack.rl.session import ALGOS
from policy_stack.rng import capture_rng, restore_rng
from policy_stack.rl.state_io import load_state, save_state

from .helpers import SMALL_AGENT, demo_replay, seed_all
from .tiny_policy import TinyPolicy

torch.set_num_threads(1)
SCRIPT = Path(__file__).with_name("run_toy_session.py")
REPO = Path(__file__).resolve().parents[2]


def _params(agent):
    return {f"{m}.{k}": v.clone() for m, mod in agent.modules.items() for k, v in mod.state_dict().items()}


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_agent_resume_is_bit_exact(algo, tmp_path):
    seed_all(0)
    cls = ALGOS[algo]
    make = lambda: cls(TinyPolicy(), cls.config_cls.from_dict(SMALL_AGENT[algo]))
    agent, rep, rng = make(), demo_replay(2), np.random.default_rng(0)
    agent.update(rep, rng, utd=2)
    save_state(agent.state_dict(), tmp_path, "agent")
    save_state(capture_rng(None, rng), tmp_path, "rng")
    rep.save(tmp_path / "replay")
    for _ in range(2):
        agent.update(rep, rng, utd=2)
    act_a = agent.act({"pos": np.zeros((2, 2), np.float32), "goal": np.ones((2, 2), np.float32)})
    expected = _params(agent)

    seed_all(123)                         # different init and RNG: everything must come from disk
    agent2, rng2 = make(), np.random.default_rng(99)
    agent2.load_state_dict(load_state(tmp_path, "agent"))
    from policy_stack.rl.replay import Replay
    rep2 = Replay.load(tmp_path / "replay")
    restore_rng(load_state(tmp_path, "rng"), None, rng2)
    for _ in range(2):
        agent2.update(rep2, rng2, utd=2)
    act_b = agent2.act({"pos": np.zeros((2, 2), np.float32), "goal": np.ones((2, 2), np.float32)})
    got = _params(agent2)
    assert expected.keys() == got.keys()
    for k in expected:
        assert torch.equal(expected[k], got[k]), k
    np.testing.assert_array_equal(act_a, act_b)


def _run(out, total, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(SCRIPT), str(out), "expo", str(total), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _final_agent(out):
    ckpts = Path(out) / "checkpoints"
    name = (ckpts / "latest").read_text().strip()
    return load_file(str(ckpts / name / "agent.safetensors"))


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path):
    total = 80
    # reference: the same session, uninterrupted, in this process (same code path as the script)
    from .run_toy_session import main as run_toy
    run_toy(str(tmp_path / "ref"), "expo", total, resume=False, sleep=0.0)

    out = tmp_path / "killed"
    # Killed deterministically: the second checkpoint folder is complete, `latest` still names the first.
    env = dict(os.environ, OMP_NUM_THREADS="1", **{KILL_AT_ENV: "snapshot-written:2"})
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), "expo", str(total)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    latest = out / "checkpoints" / "latest"
    killed_at = latest.read_text().strip()
    written = sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(written) == 2 and written[0] == killed_at, written   # the unpublished one is ignored

    res = _run(out, total, "--resume")
    assert res.returncode == 0, res.stderr[-2000:]
    import json
    summary = json.loads((out / "summary.json").read_text())
    ref_summary = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert summary["resumed_from"] and killed_at in summary["resumed_from"]
    for k in ("env_steps", "decisions", "episodes", "updates", "replay", "curve"):
        assert summary[k] == ref_summary[k], k          # counters and replay continued, nothing lost
    a, b = _final_agent(out), _final_agent(tmp_path / "ref")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "success_vs_env_steps.png").stat().st_size > 0
    assert any((out / "tb").iterdir())
