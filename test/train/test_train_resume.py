"""Resume after SIGKILL: the step counter and the loss curve continue where the snapshot left off."""
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, cli_env, run_cli
from policy_stack.persist import KILL_AT_ENV
from train_synthetic import TINY_DIFFUSION

STEPS = 24


def _cmd(data, out):
    return ["train", "--policy", "diffusion", "--data", data, "--out", out, "--steps", STEPS, "--batch", 8,
            "--warmup", 2, "--lr", 1e-3, "--ckpt-every", 4, "--log-every", 1, "--eval-every", 0, "--seed", 3,
            "--no-progress", *TINY_DIFFUSION]


def _log(out):
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if x.strip()]
    return {r["step"]: r["loss"] for r in rows}, [r["step"] for r in rows]


@pytest.mark.slow
def test_resume_after_kill_continues_step_and_loss(tiny_dataset, tmp_path):
    out = tmp_path / "killed"
    # Killed deterministically: snapshot step_0000012 is written but `latest` still names step_0000008.
    proc = subprocess.run([sys.executable, "-m", "policy_stack.cli", *map(str, _cmd(tiny_dataset, out))],
                          cwd=REPO, env={**cli_env(), KILL_AT_ENV: "snapshot-written:3"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    latest = out / "checkpoints" / "latest"
    killed_at = int(latest.read_text().strip().split("_")[1])
    assert killed_at == 8 and (out / "checkpoints" / "step_0000012").is_dir()

    resumed = run_cli(_cmd(tiny_dataset, out) + ["--json"])
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["start_step"] == killed_at and summary["step"] == STEPS

    losses, steps = _log(out)
    assert steps == list(range(1, STEPS + 1)), "log must hold every step exactly once (killed tail re-logged)"
    # The resumed curve is the one an uninterrupted run produces: same data order, RNG, optimizer state.
    ref = tmp_path / "reference"
    run_cli(_cmd(tiny_dataset, ref))
    ref_losses, _ = _log(ref)
    after = [s for s in range(killed_at + 1, STEPS + 1)]
    np.testing.assert_allclose([losses[s] for s in after], [ref_losses[s] for s in after], rtol=1e-4, atol=1e-6)
    for name in ("config.json", "model.safetensors", "normalization.json"):
        assert (out / name).is_file()
    assert (out / "tb").is_dir() and any((out / "tb").iterdir())
