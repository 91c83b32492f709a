"""`policy-stack session run` resumes a half-done evaluation episode by episode after a real SIGKILL.

A tiny session (only the eval_base step, 4 short episodes of the shipped policy on the real side: the sim
node behind the fake servo, wearing the real_lift profile, the arm adapter and the inference node) is
SIGKILLed once its first episode is committed. Checked: the kill leaves no node of its graph running (each
child dies with the session), the committed episodes survive untouched, the rerun of the same command runs
only the missing seeds, and every seed ends up committed exactly once."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]
SEEDS = [100000, 100001, 100002, 100003]


def _cmdlines_mentioning(text: str) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                out.append(f"{pid}: {cmd[:200]}")
    return out


def test_session_eval_resumes_after_sigkill(ros_env, tmp_path):
    session = tmp_path / "session"
    domain = int(ros_env["ROS_DOMAIN_ID"])
    cmd = [sys.executable, "-m", "policy_stack.cli", "session", "run", "--dir", str(session),
           "--set", 'steps=["eval_base"]', "--set", f"eval_episodes={len(SEEDS)}", "--set", "max_steps=20",
           "--set", f"domain_base={domain - 1}"]          # eval_base runs in domain base + 1: this test's
    episodes = session / "eval_base" / "episodes"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=ros_env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not list(episodes.glob("seed_*.json")):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    first = {p.name: p.read_bytes() for p in episodes.glob("seed_*.json")}
    assert first, (tmp_path / "first.log").read_text()[-3000:]
    assert len(first) < len(SEEDS), "the kill came after the last episode: nothing left to resume"
    assert not (session / "eval_base" / "result.json").exists()
    # The killed session's graph went down with it (PR_SET_PDEATHSIG -> `up` stops its nodes).
    attempt0 = str(session / "eval_base" / "attempt_00")
    deadline = time.monotonic() + 40
    while _cmdlines_mentioning(attempt0) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _cmdlines_mentioning(attempt0)

    second = subprocess.run(cmd, cwd=REPO, env=ros_env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "already committed" in second.stdout
    files = sorted(episodes.glob("seed_*.json"))
    assert [json.loads(p.read_text())["seed"] for p in files] == SEEDS
    for name, data in first.items():                      # committed before the kill: never rewritten
        assert (episodes / name).read_bytes() == data
    # The second sitting ran only the seeds the first had not finished.
    summary = json.loads((session / "eval_base" / "attempt_01" / "summary.json").read_text().strip().splitlines()[-1])
    assert summary["episodes_requested"] == len(SEEDS) - len(first)
    assert [ep["seed"] for ep in summary["per_episode"]] == SEEDS[len(first):]
    result = json.loads((session / "eval_base" / "result.json").read_text())
    assert result["episodes"] == len(SEEDS) and result["sittings"] == 2
    summary_doc = json.loads((session / "summary.json").read_text())
    assert summary_doc["steps"]["eval_base"]["status"] == "done"
    assert (session / "curve.png").stat().st_size > 0
