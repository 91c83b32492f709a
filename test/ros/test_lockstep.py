"""Lockstep through ROS 2 equals in-process, action for action (shipped low-dim checkpoint, 2 seeds).

The sim node in `lockstep` timing with simulated time, the inference node reseeding its sampling noise
at every /policy/reset; in-process, the same policy re-planning every step through the one episode
loop, reseeded the same way (bench/bench_lockstep.py; the benchmark runs 20 seeds)."""
import json

import pytest

pytestmark = pytest.mark.timeout(400)


def test_lockstep_ros_run_equals_in_process(ros_env, tmp_path):
    from bench import bench_lockstep
    out = tmp_path / "lockstep.json"
    rc = bench_lockstep.main(["-n", "2", "--max-steps", "120", "--out", str(out),
                              "--domain-id", ros_env["ROS_DOMAIN_ID"]])
    report = json.loads(out.read_text())
    assert rc == 0, report["ros"]
    assert report["ros"]["episodes"] == 2
    assert report["same_success_every_seed"], report["per_seed"]
    # Recorded actions are rounded to 1e-7; anything above that is a real divergence.
    assert report["max_abs_action_diff"] < 1e-5, report["per_seed"]
    for seed, row in report["per_seed"].items():
        assert row["steps"][0] == row["steps"][1], (seed, row)
