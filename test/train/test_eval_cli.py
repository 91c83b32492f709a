"""`policy-stack eval --json` on a tiny checkpoint, and the errors users hit first."""
import json
import shutil

import pytest

from conftest import run_cli
from policy_stack.cli import main

FIELDS = ("success_rate", "episodes", "latency_ms_mean", "latency_ms_p50", "latency_ms_p99", "steps_per_tick")


@pytest.mark.sim
def test_eval_json_fields(tiny_checkpoint, tmp_path):
    proc = run_cli(["eval", "--env", "lift", "--policy", tiny_checkpoint, "--episodes", 2, "--max-steps", 8,
                    "--sampler", "rti", "--steps", 2, "--seed", 7, "--json", "--no-progress",
                    "--video", tmp_path / "vid"], timeout=300)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in FIELDS:
        assert key in out, key
    assert out["episodes"] == 2 and 0.0 <= out["success_rate"] <= 1.0 and out["seeds"] == [7, 8]
    assert out["latency_ms_p99"] >= out["latency_ms_p50"] > 0
    assert out["steps_per_tick"] > 0 and out["sampler"] == "rti"
    assert len(list((tmp_path / "vid").glob("*.mp4"))) == 2


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", "--policy", str(tmp_path / "nope"), "--episodes", "1"]) == 2
    assert "checkpoint folder not found" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_clear_error(tiny_checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, bad, ignore=shutil.ignore_patterns("checkpoints", "tb"))
    (bad / "model.safetensors").write_bytes(b"not safetensors")
    assert main(["eval", "--policy", str(bad), "--episodes", "1"]) == 2
    assert "model.safetensors" in capsys.readouterr().err


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "no_data"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "dataset not found" in capsys.readouterr().err


def test_corrupt_resume_state_is_a_clear_error(tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint, run)
    snap = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    (snap / "train_state.safetensors").write_bytes(b"\0" * 10)
    rc = main(["train", "--data", tiny_dataset, "--out", str(run), "--steps", "8", "--no-progress"])
    assert rc == 2
    assert "train_state.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("args, needle", [(["--sampler", "ebt"], "EBT checkpoint")])
def test_bad_sampler_for_policy(tiny_checkpoint, capsys, args, needle):
    assert main(["eval", "--policy", str(tiny_checkpoint), "--episodes", "1", *args]) == 2
    assert needle in capsys.readouterr().err


@pytest.mark.slow
def test_export_onnx_reports_parity(tiny_checkpoint, tmp_path, capsys):
    assert main(["export", "onnx", "--policy", str(tiny_checkpoint), "--out", str(tmp_path / "onnx"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["ok"] and report["max_abs_diff"] <= 1e-4 and "denoiser.onnx" in report["files"]
    # a tolerance below float32 round-off must fail loudly (exit 1, message names the check)
    assert main(["export", "onnx", "--policy", str(tiny_checkpoint), "--out", str(tmp_path / "o2"), "--tol", "1e-12"]) == 1
    assert "parity check failed" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_latency_json(tiny_checkpoint, capsys):
    assert main(["bench", "latency", "--policy", str(tiny_checkpoint), "--ticks", "2", "--warmup", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = {(r["name"], r["backend"]) for r in out["rows"]}
    assert ("ddpm-100", "onnx") in names and ("rti-3", "torch") in names
    assert out["rows"][0]["p99_ms"] >= out["rows"][0]["p50_ms"] > 0
    for key in ("rti_vs_ddpm_torch_speedup", "rti_vs_ddim_onnx_speedup", "onnx_vs_torch_ddim_speedup",
                "rti_vs_ddim_torch_p99_speedup"):
        assert out["ratios"][key] > 0
