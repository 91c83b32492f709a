"""ONNX export: torch parity (< 1e-4) for low-dim and RGB-D policies, act() through ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from policy_stack.onnx_export import (OnnxDiffusionRunner, OnnxParityError, check_onnx_parity,  # noqa: E402
                                      default_providers, export_onnx)
from test_diffusion_common import one_obs, tiny_image_policy, tiny_policy  # noqa: E402


@pytest.mark.parametrize("factory", [tiny_policy, tiny_image_policy])
def test_onnx_parity(tmp_path, factory):
    policy = factory()
    folder = export_onnx(policy, tmp_path / "onnx")
    runner = OnnxDiffusionRunner(folder, num_threads=1)
    assert runner.providers[-1] == "CPUExecutionProvider"
    assert check_onnx_parity(policy, runner, tol=1e-4) < 1e-4


def test_parity_check_fails_on_mismatch(tmp_path):
    policy = tiny_policy()
    runner = OnnxDiffusionRunner(export_onnx(policy, tmp_path / "onnx"), num_threads=1)
    import torch
    with torch.no_grad():
        policy.unet.final_conv[1].bias.add_(1e-2)   # torch weights drift away from the exported graph
    with pytest.raises(OnnxParityError):
        check_onnx_parity(policy, runner, tol=1e-4)


@pytest.mark.parametrize("sampler", ["ddim", "rti"])
def test_act_with_onnx_backend_matches_torch(tmp_path, sampler):
    policy = tiny_policy(sampler=sampler, binarize_discrete=False)  # no threshold flips on 1e-6 diffs
    policy.reset(seed=5)
    torch_chunks = [policy.act(one_obs(i)) for i in range(3)]
    policy.set_backend("onnx", str(tmp_path / "onnx"), num_threads=1)
    assert policy.backend == "onnx"
    policy.reset(seed=5)
    onnx_chunks = [policy.act(one_obs(i)) for i in range(3)]
    assert policy.info["backend"] == "onnx"
    for a, b in zip(torch_chunks, onnx_chunks):
        assert np.abs(a - b).max() < 1e-4
    policy.set_backend("torch")
    assert policy.backend == "torch"


def test_providers_always_include_cpu():
    assert default_providers()[-1] == "CPUExecutionProvider"


def test_runner_names_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="denoiser.onnx"):
        OnnxDiffusionRunner(tmp_path)
