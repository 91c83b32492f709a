"""KITE through ROS 2: `policy-stack up` with the shipped kite_multi_cube checkpoint on a multi-cube pick
episode. The sim node says the episode's instruction on /policy/instruction, the inference node grounds
it and publishes /kite/keypoint (base frame) and /kite/heatmap; chunks drive the sim to success."""
import json
import subprocess
import sys

import numpy as np
import pytest

from ros_testlib import REPO, RosClient, leftover_processes, node_env

pytestmark = [pytest.mark.timeout(300), pytest.mark.sim, pytest.mark.slow]


def test_up_kite_instruction_drives_a_multi_cube_pick(ros_env, tmp_path):
    from geometry_msgs.msg import PointStamped
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from policy_stack.checkpoint import SHIPPED_DIR
    from ros_nodes.common import LATCHED_QOS
    assert (SHIPPED_DIR / "kite_multi_cube" / "config.json").is_file(), "shipped kite_multi_cube missing"
    client = RosClient("kite_watch")
    try:
        for typ, topic in ((PointStamped, "/kite/keypoint"), (Image, "/kite/heatmap")):
            client.record(typ, topic)
        # latched: the instruction reaches this observer even when discovery completes after it was said
        client.record(String, "/policy/instruction", qos=LATCHED_QOS)
        cmd = [sys.executable, "-m", "policy_stack.cli", "up", "--json", "--run-dir", str(tmp_path / "run"),
               "--domain-id", ros_env["ROS_DOMAIN_ID"], "--env", "multi_cube_pick", "--policy", "kite_multi_cube",
               "--image-size", "128", "--episodes", "1", "--max-steps", "200", "--device", "cpu", "--seed", "7"]
        proc = subprocess.run(cmd, cwd=REPO, env=node_env(ros_env), capture_output=True, text=True, timeout=280)
        assert proc.stdout.strip(), f"no JSON; rc {proc.returncode}; log tail:\n{proc.stderr[-3000:]}"
        s = json.loads(proc.stdout.strip().splitlines()[-1])
        instructions = [m.data for m in client.received("/policy/instruction")]
        points = client.received("/kite/keypoint")
        heatmaps = client.received("/kite/heatmap")
    finally:
        client.close()
    assert proc.returncode == 0 and s["error"] is None, proc.stderr[-3000:]
    # the episode the sim ran (seed 7 + episode 0), rebuilt here for its ground truth
    from sim.envs import make_env
    env = make_env("multi_cube_pick", cameras=("grounding",), image_size=128, depth=True)
    gt = env.ground_truth("grounding", env.reset(seed=7))
    env.close()
    assert instructions and instructions[-1] == gt["instruction"]
    assert points, "no /kite/keypoint published"
    p = points[0]
    assert p.header.frame_id == "panda_link0"
    xyz = np.array([p.point.x, p.point.y, p.point.z])
    target = gt["objects"][gt["steps"][0][1]]["kp_base"]
    assert np.linalg.norm(xyz - target) < 0.03, (xyz, target)      # on the instructed cube's top face
    assert heatmaps and heatmaps[0].encoding == "mono8" and heatmaps[0].width == 128
    assert s["successes"] == 1, s
    assert not leftover_processes(tmp_path / "run")
