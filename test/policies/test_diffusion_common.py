"""Shared factories for the diffusion/sampling/checkpoint/ONNX tests: tiny networks, synthetic data.

(Named test_diffusion_* so it lives beside the tests it serves; it holds no tests itself.)
"""
from __future__ import annotations

import numpy as np
import torch

from policy_stack.normalize import stats_from_arrays
from policy_stack.policies.diffusion import DiffusionConfig, DiffusionPolicy
from policy_stack.spaces import ActionSpace

torch.set_num_threads(1)  # the test machine is shared

ACTION_SPACE = ActionSpace(names=["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"],
                           low=[-1.0] * 7, high=[1.0] * 7, kind="eef_delta", discrete=[6])
LOWDIM_DIMS = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "cube_pos": 3}


def synthetic_arrays(n: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {k: rng.uniform(-0.5, 0.5, size=(n, d)).astype(np.float32) for k, d in LOWDIM_DIMS.items()}
    q = rng.normal(size=(n, 4))
    arrays["robot0_eef_quat"] = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    action = np.zeros((n, 7), np.float32)
    action[:, :3] = np.clip(arrays["cube_pos"] - arrays["robot0_eef_pos"], -1, 1)   # move towards the cube
    action[:, 6] = np.where(arrays["robot0_gripper_qpos"][:, 0] > 0, 1.0, -1.0)
    arrays["action"] = action
    return arrays


def synthetic_stats() -> dict:
    return stats_from_arrays(synthetic_arrays(512, seed=123))


def tiny_config(**overrides) -> DiffusionConfig:
    fields = dict(down_dims=(16, 32), step_embed_dim=16, device="cpu", vision_channels=(16, 16, 32),
                  num_keypoints=8, camera_feature_dim=16, image_shape=(24, 24), crop_shape=(20, 20))
    fields.update(overrides)
    return DiffusionConfig(**fields)


def tiny_policy(**overrides) -> DiffusionPolicy:
    torch.manual_seed(0)
    return DiffusionPolicy(tiny_config(**overrides), synthetic_stats(), ACTION_SPACE)


def tiny_image_policy(**overrides) -> DiffusionPolicy:
    fields = dict(cameras=["agentview"], lowdim_keys=["robot0_eef_pos", "robot0_gripper_qpos"], derived_features=[])
    fields.update(overrides)
    return tiny_policy(**fields)


def one_obs(seed: int = 0, cameras: tuple[str, ...] = (), image_hw=(24, 24)) -> dict[str, np.ndarray]:
    arrays = synthetic_arrays(1, seed)
    obs = {k: arrays[k][0] for k in LOWDIM_DIMS}
    rng = np.random.default_rng(seed)
    for cam in cameras:
        obs[f"{cam}_rgb"] = rng.integers(0, 256, size=(*image_hw, 3), dtype=np.uint8)
        obs[f"{cam}_depth"] = rng.uniform(0.2, 1.5, size=image_hw).astype(np.float32)
    return obs


def synthetic_batch(batch: int = 8, seed: int = 0, to: int = 2, tp: int = 16, cameras=(), image_hw=(24, 24)) -> dict:
    """Training batch in raw units: each sample's action chunk repeats its (deterministic) target action."""
    arrays = synthetic_arrays(batch, seed)
    obs = {k: torch.from_numpy(np.repeat(arrays[k][:, None], to, axis=1)) for k in LOWDIM_DIMS}
    gen = torch.Generator().manual_seed(seed)
    for cam in cameras:
        obs[f"{cam}_rgb"] = torch.randint(0, 256, (batch, to, *image_hw, 3), dtype=torch.uint8, generator=gen)
        obs[f"{cam}_depth"] = torch.rand((batch, to, *image_hw), generator=gen) * 2
    action = torch.from_numpy(np.repeat(arrays["action"][:, None], tp, axis=1))
    return {"obs": obs, "action": action, "action_is_pad": torch.zeros(batch, tp, dtype=torch.bool)}
