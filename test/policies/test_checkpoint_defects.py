"""Broken checkpoints found by the adversarial campaign: each refused at load with one ValueError naming
the file and the defect, before anything is built (no allocation from absurd sizes)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from policy_stack.checkpoint import DEFAULT_CHECKPOINT, load_policy

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ckpt(tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(DEFAULT_CHECKPOINT, dst)
    return dst


def edit(folder: Path, fn, name="config.json"):
    data = json.loads((folder / name).read_text())
    fn(data)
    (folder / name).write_text(json.dumps(data))


CONFIG_DEFECTS = {
    "inverted bounds": (lambda d: d["action_space"].update(low=[1.0] * 7, high=[-1.0] * 7), "bounds"),
    "NaN bound": (lambda d: d["action_space"]["low"].__setitem__(0, float("nan")), "bounds"),
    "degenerate bounds": (lambda d: d["action_space"].update(low=[0.0] * 7, high=[0.0] * 7), "bounds"),
    "discrete index out of range": (lambda d: d["action_space"].update(discrete=[99]), "discrete"),
    "repeated dimension names": (lambda d: d["action_space"]["names"].__setitem__(1, "dx"), "repeat"),
    "down_dims 1e9": (lambda d: d["config"].update(down_dims=[1_000_000_000, 96, 192]), "down_dims"),
    "step_embed_dim 1e9": (lambda d: d["config"].update(step_embed_dim=1_000_000_000), "step_embed_dim"),
    "num_train_timesteps 1e10": (lambda d: d["config"].update(num_train_timesteps=10_000_000_000), "num_train_timesteps"),
    "float size": (lambda d: d["config"].update(horizon=16.5), "horizon"),
    "format_version 999": (lambda d: d.update(format_version=999), "format_version"),
}


@pytest.mark.parametrize("case", list(CONFIG_DEFECTS))
def test_config_defects_are_refused_at_load(ckpt, case):
    change, named = CONFIG_DEFECTS[case]
    edit(ckpt, change)
    with pytest.raises(ValueError, match=named):
        load_policy(ckpt, device="cpu")


def test_normalization_stats_as_a_list_is_refused(ckpt):
    edit(ckpt, lambda d: d.update(stats=[1, 2, 3]), "normalization.json")
    with pytest.raises(ValueError, match="normalization file .* is malformed"):
        load_policy(ckpt, device="cpu")


def test_nan_weights_are_refused_at_load(ckpt):
    weights = load_file(str(ckpt / "model.safetensors"))
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(ckpt / "model.safetensors"))
    with pytest.raises(ValueError, match=f"{name}.*NaN"):
        load_policy(ckpt, device="cpu")


def test_deeply_nested_config_is_refused(ckpt):
    (ckpt / "config.json").write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(ValueError, match="not valid JSON"):
        load_policy(ckpt, device="cpu")


def test_cli_reports_a_broken_checkpoint_in_one_line(ckpt):
    edit(ckpt, CONFIG_DEFECTS["inverted bounds"][0])
    proc = subprocess.run([sys.executable, "-m", "policy_stack.cli", "export", "onnx", "--policy", str(ckpt), "--out",
                           str(ckpt.parent / "onnx")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    assert "bounds" in proc.stderr
