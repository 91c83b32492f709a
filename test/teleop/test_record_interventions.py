"""`policy-stack record --policy P` (human interventions) end to end: the stand-in policy drives the sim
through the inference node; the scripted device holds the deadman for ticks 15..34 of a 50-tick episode
(its waypoint file's "engaged" list), sending one teleop action. The sim's executed steps switch source
from policy to teleop and back (arbitration). The dataset's `intervention` column is
one block of about those 20 frames; inside it the recorded (executed) action is the operator's, and
right after it (the sim hears the release on /teleop/state) the policy's again."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policy_stack.data.reader import LeRobotDatasetReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))   # ros_testlib (test/ros has no package)
from ros_testlib import node_env, standin  # noqa: E402

pytestmark = [pytest.mark.sim, pytest.mark.slow]
TELEOP_ACTION = [0.0, 0.0, 0.3, 0.0, 0.0, 0.0, -1.0]
WINDOW = range(15, 35)


def test_record_policy_with_an_intervention_window(tmp_path, ros_env):
    waypoints = tmp_path / "w.json"
    waypoints.write_text(json.dumps({"actions": [TELEOP_ACTION] * 50, "end_event": "failure",
                                     "engaged": [k in WINDOW for k in range(50)]}))
    out = tmp_path / "ds"
    proc = subprocess.run([sys.executable, "-m", "policy_stack.cli", "record", "--policy", standin("make_lowdim"),
                           "--env", "lift", "--device", "scripted", "--waypoints", str(waypoints), "--episodes", "1",
                           "--seed", "2", "--out", str(out), "--domain-id", ros_env["ROS_DOMAIN_ID"], "--json"],
                          env=node_env(ros_env), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes_recorded"] == 1, summary
    ep = LeRobotDatasetReader(out).episode(0)
    flags, actions = ep["intervention"].astype(bool), ep["action"]
    idx = np.flatnonzero(flags)
    assert 12 <= len(idx) <= 24 and np.all(np.diff(idx) == 1), flags.astype(int).tolist()   # one block
    for a in actions[idx[2]:idx[-1] + 1]:              # inside (max_step_delta may ramp the first steps)
        np.testing.assert_allclose(a, TELEOP_ACTION, atol=1e-6)
    # The sim hears the release on /teleop/state (teleop_state_topic), so the executed source follows the
    # flag; a message in flight at a step can shift a boundary by a frame.
    before, after = actions[:max(0, idx[0] - 1)], actions[idx[-1] + 3:]
    assert len(before) >= 5 and len(after) >= 5, (len(before), len(after))
    for a in np.concatenate([before, after]):          # the policy's actions, not the operator's
        assert not np.allclose(a, TELEOP_ACTION, atol=1e-3), a
    is_teleop = np.array([np.allclose(a, TELEOP_ACTION, atol=1e-6) for a in actions])
    assert np.sum(is_teleop != flags) <= 4, (is_teleop.astype(int).tolist(), flags.astype(int).tolist())
    sources = [json.loads(line) for line in (Path(summary["recordings"]) / "run" / "sim_episodes.jsonl")
               .read_text().splitlines()]
    # The sim's executed steps (its per-episode "sources"): the policy, then one teleop run, then the policy.
    runs = [src for k, src in enumerate(sources[0]["sources"]) if k == 0 or src != sources[0]["sources"][k - 1]]
    assert runs[-3:] == ["policy", "teleop", "policy"] and runs.count("teleop") == 1, runs
    assert sources[0]["sources"].count("teleop") >= 12
