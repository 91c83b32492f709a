"""A short RL session over ROS 2 against the real sim node (separate process, isolated domain):
chunks go out on /policy/action_chunk, /episode/success messages come back every step, episodes are
reset through /sim/reset and their starts are seen through the /policy/reset call the sim makes."""
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))   # ros_testlib (test/ros has no package)

from ros_testlib import node_env, standin, start_graph  # noqa: E402

from .tiny_sim_policy import tiny_lift_policy  # noqa: E402

pytestmark = pytest.mark.timeout(180)
SMALL_EXPO = {"batch_size": 8, "num_qs": 2, "critic_hidden": (32, 32), "edit_hidden": (32,), "n_base": 2, "n_edit": 2}


def test_ros_session_gets_rewards_and_resets(ros_env, tmp_path):
    import torch

    from policy_stack.rl.session import run_session
    from ros_nodes.rl_env import RosEnvConfig, RosRLEnv

    torch.set_num_threads(1)
    # The sim node alone; wait_for_policy_s=0: there is no inference node whose first chunk it could wait for.
    procs = start_graph({"policy": standin("make_lowdim"), "episodes": "0", "max_steps": "1000", "cameras": "",
                         "depth": "false"}, node_env(ros_env), tmp_path, only=["sim_node"],
                        overrides={"sim_node": {"wait_for_policy_s": 0.0}})
    envs = []

    def factory():
        envs.append(RosRLEnv(tiny_lift_policy(), RosEnvConfig(max_episode_steps=8, service_timeout_s=60.0)))
        return envs[-1]
    try:
        summary = run_session({"algo": "expo", "total_env_steps": 16, "max_episode_steps": 8, "agent": SMALL_EXPO,
                               "progress": False, "tensorboard": False, "checkpoint_every_env_steps": 8},
                              factory, tiny_lift_policy(), None, tmp_path / "run")
        assert procs.poll()["sim_node"] is None, "sim node died during the session"
    finally:
        codes = procs.stop()
    stats = envs[0].stats
    assert summary["env_steps"] == 16 and summary["episodes"] == 2, summary
    assert stats["resets"] == 2 and stats["steps"] == 16, stats
    assert stats["episode_starts"] >= 2, f"episode starts not seen through /policy/reset: {stats}"
    assert stats["success_msgs"] >= 8, f"/episode/success (the reward) did not arrive: {stats}"
    assert summary["updates"] > 0 and summary["replay"]["online"] == summary["decisions"], summary
    assert (tmp_path / "run" / "checkpoints" / "latest").is_file()
    assert codes["sim_node"] == 0, codes
