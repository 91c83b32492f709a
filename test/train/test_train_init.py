"""`policy-stack train --init CKPT` (fine-tuning, e.g. a sim-to-real session) starts from the checkpoint's
weights AND normalization, and refuses a checkpoint of another policy family."""
import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]


def run_cli(args, check=True):
    """The CLI in a subprocess with one torch thread (test/train's conftest does the same; imported by name
    it can resolve to another folder's conftest when several test folders are collected together)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "policy_stack.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"policy-stack {args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def test_init_starts_from_the_checkpoint_weights_and_normalization(tiny_dataset, tiny_checkpoint, tmp_path):
    out = tmp_path / "ft"
    # lr 0: the optimizer cannot move anything, so what comes out is exactly what --init put in.
    run_cli(["train", "--policy", "diffusion", "--data", tiny_dataset, "--init", tiny_checkpoint, "--out", out,
             "--steps", 2, "--batch", 8, "--lr", 0.0, "--warmup", 0, "--eval-every", 0, "--no-progress"])
    base, tuned = load_file(str(tiny_checkpoint / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert base.keys() == tuned.keys()
    assert all((base[k] == tuned[k]).all() for k in base)
    assert json.loads((out / "normalization.json").read_text()) == json.loads(
        (tiny_checkpoint / "normalization.json").read_text())
    assert json.loads((out / "config.json").read_text())["config"]["lr"] == 0.0


def test_init_refuses_another_policy_family(tiny_dataset, tiny_checkpoint, tmp_path):
    proc = run_cli(["train", "--policy", "ebt", "--data", tiny_dataset, "--init", tiny_checkpoint,
                    "--out", tmp_path / "x", "--steps", 1, "--eval-every", 0], check=False)
    assert proc.returncode == 2
    assert "holds a diffusion policy, not --policy ebt" in proc.stderr
