"""Smaller hostile cases: leftovers in /tmp, a predictable shared-folder path, inconsistent file modes."""
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "policies"))
sys.path.insert(0, str(HERE.parent / "train"))
from test_diffusion_common import tiny_policy  # noqa: E402
from train_synthetic import TINY_DIFFUSION, write_dataset  # noqa: E402

pytestmark = pytest.mark.robustness


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A TMPDIR of our own, so leftovers of other processes on the machine cannot confuse the check."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)         # re-read TMPDIR
    return folder


def _cli_env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint folder, umask it ran under): a 2-step tiny diffusion run through the real CLI."""
    data = write_dataset(tmp_path_factory.mktemp("data") / "synth", episodes=2, length=16)
    out = tmp_path_factory.mktemp("train") / "dp"
    res = subprocess.run([sys.executable, "-m", "policy_stack.cli", "train", "--policy", "diffusion", "--data", data,
                          "--out", str(out), "--steps", "2", "--batch", "4", "--warmup", "1", "--eval-every", "0",
                          "--ckpt-every", "1", "--no-progress", *TINY_DIFFUSION],
                         cwd=REPO, env=_cli_env(), capture_output=True, text=True, timeout=600,
                         preexec_fn=lambda: os.umask(0o022))
    assert res.returncode == 0, res.stderr[-2000:]
    return out


def test_train_output_files_share_one_mode(trained):
    """Was: files published by rename were 0600, the rest 0644."""
    modes = {p.relative_to(trained): stat.S_IMODE(p.stat().st_mode) for p in trained.rglob("*") if p.is_file()}
    assert len(modes) > 5
    odd = {str(p): oct(m) for p, m in modes.items() if m != 0o644}
    assert not odd, odd


def test_onnx_backend_leaves_no_folder_behind(private_tmp):
    """Was: set_backend("onnx") (the inference node's path) left a policy_onnx_* folder per start."""
    policy = tiny_policy()
    policy.set_backend("onnx", num_threads=1)
    assert policy.backend == "onnx"
    policy.reset(seed=1)
    from test_diffusion_common import one_obs
    assert policy.act(one_obs(0)).shape[-1] == policy.action_dim       # runs with its files gone
    # (a library drops a small `.ses` file in TMPDIR; what must not stay is an export folder)
    assert [p for p in private_tmp.iterdir() if p.is_dir()] == []


@pytest.mark.slow
def test_eval_onnx_interrupted_leaves_no_folder_behind(trained, private_tmp):
    """Was: the eval_onnx_* export folder stayed whenever evaluation did not finish normally."""
    proc = subprocess.Popen([sys.executable, "-m", "policy_stack.cli", "eval", "--policy", str(trained), "--env", "lift",
                             "--episodes", "50", "--backend", "onnx", "--no-progress"],
                            cwd=REPO, env=_cli_env(TMPDIR=str(private_tmp)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            # a `make test` started from a backgrounded shell has SIGINT ignored, and a
                            # child inherits that: give it the default handler, as a terminal would
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300          # a bound on a hang, not a timing assertion
        while not list(private_tmp.glob("eval_onnx_*/denoiser.onnx")):
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert not list(private_tmp.glob("eval_onnx_*"))


def test_fastdds_profile_fallback_is_private(tmp_path, monkeypatch, private_tmp):
    """Was: with the cache folder unwritable, a fixed /tmp/policy_stack-<uid> path, checked then used."""
    from ros_nodes import transport

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))        # mkdir fails: not a directory
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(transport, "_private_profile_dir", None, raising=False)
    predictable = private_tmp / f"policy_stack-{os.getuid()}"
    predictable.mkdir()                                                  # what another user could pre-create
    path = Path(transport.shm_profile_file())
    assert not path.is_relative_to(predictable)
    assert path.read_text() == transport.SHM_PROFILE_XML
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and path.parent.stat().st_uid == os.getuid()
    assert Path(transport.shm_profile_file()) == path                   # one folder per process
    assert list(predictable.iterdir()) == []

    runtime = tmp_path / "run_user"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setattr(transport, "_private_profile_dir", None, raising=False)
    path = Path(transport.shm_profile_file())
    assert path.parent == runtime / "policy_stack" and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.chmod(runtime, 0o777)                                             # not private: not used
    monkeypatch.setattr(transport, "_private_profile_dir", None, raising=False)
    assert not Path(transport.shm_profile_file()).is_relative_to(runtime)
