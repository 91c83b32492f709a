"""`policy-stack record --device scripted` end to end: sim node, teleop node and recorder node as real
processes over real rclpy (own ROS domain), robosuite Lift, MCAP files, conversion, our reader.

Checks the targets of the record command: the dataset loads; each episode has about (stop - start) x
fps frames (+-1.5: the first and last camera frame fall up to a period inside start and stop); the recorded actions are exactly the commands the teleop node sent (its command log),
each frame taking the newest command stamped at or before it; and the episode JSON says task,
success and seed."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policy_stack.data.reader import LeRobotDatasetReader
from policy_stack.recording.convert_bag import episode_frames
from policy_stack.recording.mapping import load_mapping

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_record_scripted_lift_two_episodes(tmp_path, ros_env):
    out = tmp_path / "ds"
    proc = subprocess.run([sys.executable, "-m", "policy_stack.cli", "record", "--env", "lift", "--device", "scripted",
                           "--episodes", "2", "--seed", "5", "--out", str(out), "--max-steps", "150",
                           "--domain-id", ros_env["ROS_DOMAIN_ID"], "--json"],
                          env=ros_env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes_recorded"] == 2 and summary["dropped_messages"] == 0

    rec = Path(summary["recordings"])
    mapping = load_mapping(rec / "mapping.yaml")
    ds = LeRobotDatasetReader(out)
    assert ds.num_episodes == 2 and ds.fps == 20
    sent = [json.loads(line) for line in (rec / "run" / "teleop_commands.jsonl").read_text().splitlines()]
    sent_ns = np.array([c["stamp_ns"] for c in sent])
    for k in range(2):
        meta = json.loads((rec / f"episode_{k:06d}.json").read_text())
        assert meta["task"] == "lift the cube" and meta["seed"] == 5 + meta["sim_episode"]
        ep = ds.episode(k)
        n = len(ep["action"])
        duration = (meta["stop_ns"] - meta["start_ns"]) * 1e-9
        # Frames span the first to the last camera frame between start and stop: (stop - start) x fps
        # + 1 minus up to two periods; a sim that stalled (load) leaves grid gaps, which are counted.
        _, report = episode_frames(rec / f"episode_{k:06d}.mcap", mapping)
        lost = report["grid_gaps"] + sum(report["dropped"].values())
        assert n == report["frames"] and abs(n + lost - duration * ds.fps) <= 1.5, (n, lost, duration)
        assert bool(ep["success"][-1]) == meta["success"]
        # Recorded actions == commands sent: each frame's action is the newest command at or before it.
        for t, action in zip(report["frame_stamps_ns"], ep["action"]):
            i = int(np.searchsorted(sent_ns, t, side="right")) - 1
            np.testing.assert_array_equal(action, np.float32(sent[i]["action"]))
        assert len({tuple(a) for a in ep["action"]}) > 10          # the expert moved: not a constant hold
