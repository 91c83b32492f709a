"""A tiny untrained DiffusionPolicy checkpoint for a real sim task, built in a second from a dataset's
statistics (CLI tests need a checkpoint folder, not a trained policy)."""
from __future__ import annotations

import sys
from pathlib import Path

TINY = dict(n_obs_steps=2, horizon=8, n_action_steps=4, down_dims=(16, 32), step_embed_dim=16, n_groups=4,
            sampler_steps=2, device="cpu")


def make_tiny_checkpoint(dataset: str, out: str, object_key: str = "cube_pos") -> Path:
    from policy_stack.checkpoint import save_checkpoint
    from policy_stack.data.reader import LeRobotDatasetReader
    from policy_stack.policies import make_policy
    from sim.envs import default_action_space

    stats = LeRobotDatasetReader(dataset).normalization_stats()
    keys = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", object_key]
    cfg = dict(TINY, lowdim_keys=keys, derived_features=[f"robot0_eef_pos-{object_key}"])
    policy = make_policy("diffusion", cfg, {k: stats[k] for k in keys + ["action"]}, default_action_space())
    return save_checkpoint(policy, out)


if __name__ == "__main__":
    print(make_tiny_checkpoint(sys.argv[1], sys.argv[2]))


def tiny_lift_policy():
    """Same tiny network with fixed, plausible Lift statistics: no dataset needed (ROS smoke test)."""
    from policy_stack.policies import make_policy
    from sim.envs import default_action_space

    st = lambda lo, hi: {"min": list(lo), "max": list(hi), "mean": [(a + b) / 2 for a, b in zip(lo, hi)],
                         "std": [max((b - a) / 4, 1e-3) for a, b in zip(lo, hi)]}
    # robot base frame (sim/envs.py): Lift's table top is ~0.09 m below the base
    stats = {"robot0_eef_pos": st([0.26, -0.3, -0.11], [0.86, 0.3, 0.29]), "robot0_eef_quat": st([-1] * 4, [1] * 4),
             "robot0_gripper_qpos": st([0.0, 0.0], [0.05, 0.05]), "cube_pos": st([0.46, -0.1, -0.11], [0.66, 0.1, 0.09]),
             "action": st([-1] * 7, [1] * 7)}
    keys = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "cube_pos"]
    cfg = dict(TINY, lowdim_keys=keys, derived_features=["robot0_eef_pos-cube_pos"])
    return make_policy("diffusion", cfg, stats, default_action_space())
