"""`policy-stack up` end to end: node processes in an isolated domain, Lift episodes, JSON summary.

test_up_lift_standin            - the test stand-in policy (pyfile: hook), always runs.
test_up_lift_shipped_checkpoint - THE FINAL CHECK: the real shipped checkpoint (policy_stack/checkpoints/
                                  diffusion_lowdim_lift) through the default `--policy`, no hooks.
"""
import json
import signal
import subprocess
import sys
import time

import pytest

from ros_testlib import REPO, leftover_processes, node_env, standin

pytestmark = pytest.mark.timeout(240)


def _up(ros_env, tmp_path, *extra, timeout=200):
    cmd = [sys.executable, "-m", "policy_stack.cli", "up", "--json", "--run-dir", str(tmp_path / "run"),
           "--domain-id", ros_env["ROS_DOMAIN_ID"], *extra]
    proc = subprocess.run(cmd, cwd=REPO, env=node_env(ros_env), capture_output=True, text=True, timeout=timeout)
    assert proc.stdout.strip(), f"no JSON on stdout; rc {proc.returncode}; log tail:\n{proc.stderr[-3000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return proc, summary


def test_up_lift_standin(ros_env, tmp_path):
    proc, s = _up(ros_env, tmp_path, "--policy", standin("make_lowdim"), "--cameras", "", "--depth", "false",
                  "--episodes", "2", "--max-steps", "150")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert s["episodes"] == 2 and s["error"] is None and not s["interrupted"]
    assert s["successes"] >= 1, s
    assert s["loop_latency_ms"]["n"] > 20 and 0 < s["loop_latency_ms"]["p50"] < s["loop_latency_ms"]["p99"] + 1e-9
    assert "[up] episode 1/2" in proc.stderr and "[sim_node]" in proc.stderr and "[inference_node]" in proc.stderr
    assert not leftover_processes(tmp_path / "run"), "node processes left running"


def test_up_ctrl_c_stops_nodes(ros_env, tmp_path):
    cmd = [sys.executable, "-m", "policy_stack.cli", "up", "--json", "--run-dir", str(tmp_path / "run"),
           "--domain-id", ros_env["ROS_DOMAIN_ID"], "--policy", standin("make_lowdim"), "--cameras", "",
           "--depth", "false", "--episodes", "100"]
    # A shell running the suite in the background (`make test &`) starts it with SIGINT ignored, and a
    # child inherits that: give `up` the terminal's default so the test sends what Ctrl-C sends.
    proc = subprocess.Popen(cmd, cwd=REPO, env=node_env(ros_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 90
        for line in proc.stderr:       # wait until the policy drives the sim
            if "policy is up" in line or time.time() > deadline:
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert json.loads(out.strip().splitlines()[-1])["interrupted"] is True
    assert not leftover_processes(tmp_path / "run"), "node processes left running after Ctrl-C"


def test_up_lift_shipped_checkpoint(ros_env, tmp_path):
    """FINAL CHECK with the real shipped checkpoint (no test hook): Lift reaches success over ROS 2."""
    from policy_stack.checkpoint import DEFAULT_CHECKPOINT
    assert (DEFAULT_CHECKPOINT / "config.json").is_file(), f"shipped checkpoint missing: {DEFAULT_CHECKPOINT}"
    proc, s = _up(ros_env, tmp_path, "--episodes", "3", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert s["policy"] == "(shipped default)" and s["episodes"] == 3
    # in-process the same checkpoint solves 50/50 seeds (docs/results.md); allow one timing-induced miss
    assert s["successes"] >= 2, s
