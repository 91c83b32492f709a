"""--time-budget: the trainer times its first steps and lowers --steps so the run ends in time.

No assertion reads a clock: the fitted step count is printed by the run and must be where it stopped,
and the arithmetic that fits it is checked on its own."""
import json
import re

import pytest

from conftest import run_cli
from policy_stack.train.trainer import BUDGET_PROBE, BUDGET_SAFETY, budget_steps
from train_synthetic import TINY_DIFFUSION


@pytest.mark.slow
def test_time_budget_lowers_steps_and_finishes(tiny_dataset, tmp_path):
    out = tmp_path / "budget"
    requested = 10**7   # far more than a tiny budget allows
    proc = run_cli(["train", "--policy", "diffusion", "--data", tiny_dataset, "--out", out,
                    "--steps", requested, "--batch", 8, "--time-budget", 0.1, "--ckpt-every", 10**6,
                    "--eval-every", 0, "--no-progress", *TINY_DIFFUSION], timeout=240)
    summary = json.loads((out / "train_summary.json").read_text())
    fitted = re.search(r"-> (\d+) steps instead of (\d+)", proc.stderr)
    assert fitted and int(fitted.group(2)) == requested, proc.stderr[-2000:]
    # the probe always runs; the run stopped exactly at the fitted total
    assert BUDGET_PROBE[1] <= summary["step"] == int(fitted.group(1)) < requested
    assert (out / "model.safetensors").is_file()


def test_budget_steps_plans_the_safe_share_of_the_time_left():
    assert budget_steps(120, steps_per_s=100.0, seconds_left=10.0) == 120 + int(1000 * BUDGET_SAFETY)
    assert budget_steps(120, steps_per_s=100.0, seconds_left=-5.0) == 120     # over budget: stop now
    assert budget_steps(0, steps_per_s=0.0, seconds_left=60.0) == 0
