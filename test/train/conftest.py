"""Fixtures for the training/eval/export tests: a tiny synthetic dataset and a tiny checkpoint.

Everything is sized for a 2-core CPU shared with other jobs: models of a few thousand weights, a few
dozen optimizer steps, one torch thread per process (oversubscribed OpenMP spin-waits make tiny
models 10x slower, not faster)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train_synthetic import TINY_DIFFUSION, write_dataset

REPO = Path(__file__).resolve().parents[2]


def cli_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO), MUJOCO_GL=env.get("MUJOCO_GL", "egl"))
    return env


def run_cli(args, timeout=240, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "policy_stack.cli", *map(str, args)], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"policy-stack {args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    return write_dataset(tmp_path_factory.mktemp("train_data") / "lift_synth", episodes=3, length=24)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_dataset, tmp_path_factory) -> Path:
    """A 4-step diffusion checkpoint trained in a subprocess (the real CLI path)."""
    out = tmp_path_factory.mktemp("train_ckpt") / "dp"
    run_cli(["train", "--policy", "diffusion", "--data", tiny_dataset, "--out", out, "--steps", 4, "--batch", 8,
             "--warmup", 1, "--eval-every", 0, "--no-progress", *TINY_DIFFUSION])
    return out
