"""The CUDA-graph denoiser backend: refused with a clear message off CUDA; on a GPU, the same chunks as
eager torch (skipped without CUDA: this CPU machine cannot capture graphs)."""
import numpy as np
import pytest
import torch

from policy_stack.checkpoint import load_policy


def test_cuda_graph_backend_is_refused_off_cuda():
    policy = load_policy(None, device="cpu")
    assert "cuda_graph" in policy.backends
    with pytest.raises(ValueError, match="needs the policy on a CUDA device"):
        policy.set_backend("cuda_graph")
    assert policy.backend == "torch"          # the refusal leaves the working backend in place


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graph_backend_gives_the_eager_chunks():
    obs = {"robot0_eef_pos": np.array([0.5, 0.0, 0.1], np.float32),
           "robot0_eef_quat": np.array([1.0, 0.0, 0.0, 0.0], np.float32),
           "robot0_gripper_qpos": np.array([0.02, 0.02], np.float32),
           "cube_pos": np.array([0.55, 0.0, -0.09], np.float32)}
    chunks = {}
    for backend in ("torch", "cuda_graph"):
        policy = load_policy(None, device="cuda")
        policy.set_backend(backend)
        policy.reset(seed=0)
        chunks[backend] = [policy.act(obs) for _ in range(3)]     # a DDIM start, then RTI warm ticks
    for a, b in zip(chunks["torch"], chunks["cuda_graph"]):
        np.testing.assert_allclose(a, b, atol=1e-4)
