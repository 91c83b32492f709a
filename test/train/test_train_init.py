"""`policy-stack train --init CKPT` (fine-tuning, e.g. a sim-to-real session) starts from the checkpoint's
weights AND normalization, and refuses a checkpoint of another policy family."""
import json

import pytest
from safetensors.torch import load_file

from conftest import run_cli


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
