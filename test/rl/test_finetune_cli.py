"""`policy-stack finetune` end to end on the real Lift sim: a session is SIGKILLed after its first
checkpoint and `--resume` finishes it; bad input fails with one clear line naming the bad value."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from policy_stack.cli import main
from policy_stack.persist import KILL_AT_ENV

from .tiny_sim_policy import make_tiny_checkpoint

pytestmark = [pytest.mark.timeout(240), pytest.mark.sim, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
# Tiny agent: the test checks plumbing (kill, resume, outputs), not learning.
AGENT = ["--agent-set", "batch_size=8", "--agent-set", "num_qs=2", "--agent-set", "critic_hidden=[32,32]",
         "--agent-set", "edit_hidden=[32]", "--agent-set", "n_base=2", "--agent-set", "n_edit=2"]


def _cli(*args):
    return [sys.executable, "-m", "policy_stack.cli", *args]


def _env():
    return dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("finetune")
    subprocess.run(_cli("collect", "--env", "lift", "--episodes", "2", "--out", str(d / "demos"), "--json"),
                   check=True, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, timeout=120)
    make_tiny_checkpoint(str(d / "demos"), str(d / "ckpt"))
    return d


def test_sigkill_then_resume(inputs, tmp_path):
    out = tmp_path / "run"
    cmd = _cli("finetune", "--algo", "expo", "--env", "sim:lift", "--policy", str(inputs / "ckpt"),
               "--offline", str(inputs / "demos"), "--steps", "36", "--max-episode-steps", "12",
               "--checkpoint-every", "12", "--out", str(out), "--json", "--no-progress", "--randomize", "light", *AGENT)
    # Killed deterministically right after the first checkpoint is published (no timer to race).
    proc = subprocess.run(cmd, env={**_env(), KILL_AT_ENV: "snapshot-published:1"}, cwd=REPO,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    latest = out / "checkpoints" / "latest"
    killed_at = latest.read_text().strip()
    assert not (out / "summary.json").exists()

    # Same command + --resume: continues from the checkpoint and finishes.
    res = subprocess.run(cmd + ["--resume"], env=_env(), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["resumed_from"] and summary["resumed_from"].endswith(killed_at), summary
    assert summary["env_steps"] == 36 and summary["episodes"] == 3, summary
    assert summary["replay"]["offline"] > 0 and summary["replay"]["online"] == summary["decisions"]
    for name in ("summary.json", "success_vs_env_steps.png", "policy/config.json", "policy/model.safetensors"):
        assert (out / name).is_file(), name
    assert any((out / "tb").iterdir())
    # The fine-tuned policy is an ordinary checkpoint.
    from policy_stack import load_policy
    assert load_policy(str(out / "policy"), device="cpu").action_space.dim == 7


@pytest.mark.parametrize("change, message", [
    ({"--algo": "ppo"}, "--algo 'ppo'"),
    ({"--env": "sim:nope"}, "unknown env name 'nope'"),
    ({"--env": "gym:lift"}, "--env 'gym:lift'"),
    ({"--policy": "/nonexistent/ckpt"}, "--policy /nonexistent/ckpt"),
    ({"--offline": "/nonexistent/data"}, "--offline /nonexistent/data"),
    ({"--randomize": "wild"}, "randomize spec 'wild'"),
])
def test_bad_input_is_one_clear_line(inputs, tmp_path, capsys, change, message):
    args = {"--algo": "expo", "--env": "sim:lift", "--policy": str(inputs / "ckpt"), "--offline": str(inputs / "demos"),
            "--steps": "4", "--out": str(tmp_path / "run")}
    args.update(change)
    argv = ["finetune", *[x for kv in args.items() for x in kv]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err


def test_cpu_threads_follow_flag_then_omp_env(monkeypatch):
    from policy_stack.cli.finetune import cpu_threads
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads(None) == 1          # side-by-side sessions each keep to one core
    assert cpu_threads(3) == 3             # an explicit --threads wins
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads(None) == max(1, min(2, os.cpu_count() or 1))
    with pytest.raises(ValueError, match="--threads"):
        cpu_threads(0)
