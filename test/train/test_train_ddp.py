"""Two-process DDP (gloo on CPU) launched by torchrun: both ranks finish, weights stay identical."""
import json
import subprocess
import sys

import pytest

from conftest import REPO, cli_env
from train_synthetic import TINY_DIFFUSION


@pytest.mark.slow
def test_torchrun_two_processes(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "policy_stack.cli", "train", "--policy", "diffusion", "--data", tiny_dataset, "--out", str(out),
           "--steps", "6", "--batch", "8", "--warmup", "1", "--ckpt-every", "3", "--eval-every", "0",
           "--no-progress", *TINY_DIFFUSION]
    proc = subprocess.run(cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[rank 0/2] finished at step 6" in proc.stderr and "[rank 1/2] finished at step 6" in proc.stderr
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 6
    # each rank draws its own diffusion noise, so equal weights prove the gradients were all-reduced
    assert summary["ddp_param_max_diff"] == 0.0
    assert (out / "model.safetensors").is_file() and (out / "checkpoints" / "step_0000006").is_dir()
