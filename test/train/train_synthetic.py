"""A tiny synthetic low-dim Lift-like dataset written with the data engineer's DatasetWriter.

Actions are a smooth function of the state (move the gripper towards the cube, close when near), so
a tiny policy's loss visibly falls within a few dozen steps."""
from __future__ import annotations

import numpy as np

FEATURES = {"robot0_eef_pos": (3,), "robot0_eef_quat": (4,), "robot0_gripper_qpos": (2,),
            "robot0_joint_pos": (7,), "cube_pos": (3,), "cube_quat": (4,), "action": (7,),
            "reward": (), "success": (), "done": ()}

# Smallest models that still exercise every code path (CPU shared by several engineers).
TINY_DIFFUSION = ["--set", "down_dims=[8,16]", "--set", "step_embed_dim=8", "--set", "n_groups=4",
                  "--set", "horizon=8", "--set", "n_action_steps=4"]
TINY_EBT = ["--set", "d_model=16", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "horizon=8",
            "--set", "n_action_steps=4"]


def write_dataset(root, episodes: int = 3, length: int = 24, seed: int = 0) -> str:
    from policy_stack.data import DatasetWriter

    rng = np.random.default_rng(seed)
    with DatasetWriter(root, fps=20, features=dict(FEATURES)) as writer:
        for _ in range(episodes):
            cube = np.array([0.0, 0.0, 0.82]) + rng.uniform(-0.05, 0.05, 3) * [1, 1, 0]
            eef = np.array([0.0, 0.0, 1.0]) + rng.uniform(-0.05, 0.05, 3)
            frames = {k: [] for k in FEATURES}
            for t in range(length):
                delta = np.clip((cube - eef) * 5.0, -1, 1)
                grip = 1.0 if np.linalg.norm(cube - eef) < 0.05 else -1.0
                action = np.concatenate([delta, np.zeros(3), [grip]]).astype(np.float32)
                frames["robot0_eef_pos"].append(eef.astype(np.float32))
                frames["robot0_eef_quat"].append(np.array([1, 0, 0, 0], np.float32))
                frames["robot0_gripper_qpos"].append(np.array([0.04, -0.04], np.float32) * (grip < 0))
                frames["robot0_joint_pos"].append(rng.normal(0, 0.1, 7).astype(np.float32))
                frames["cube_pos"].append(cube.astype(np.float32))
                frames["cube_quat"].append(np.array([0, 0, 0, 1], np.float32))
                frames["action"].append(action)
                frames["reward"].append(np.float32(0.0))
                frames["success"].append(False)
                frames["done"].append(t == length - 1)
                eef = eef + delta * 0.01
            writer.add_episode({k: np.stack(v) for k, v in frames.items()}, task="lift the cube")
    return str(root)
