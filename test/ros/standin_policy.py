"""TEST STAND-IN policy (not shipped): a real `Policy` implementation that solves Lift with a
proportional controller from published observations only (end-effector position, gripper fingers,
cube position). Used through the `pyfile:` test hook of ros_nodes.policy_io so the ROS tests run
without a trained checkpoint; the end-to-end test with the shipped checkpoint is separate
(test_up.py::test_up_lift_shipped_checkpoint).

Factories: `make_lowdim()` (low-dim keys only) and `make_rgbd()` (also needs an 84x84 agentview RGB-D
pair, so the node subscribes image topics; the images are ignored by the controller).
"""
from __future__ import annotations

import numpy as np
import torch

from policy_stack.policies.base import Policy
from policy_stack.spaces import ActionSpace, FeatureSpec

GAIN = 10.0          # action 1 = 5 cm OSC goal shift; 10 cm of error saturates
HORIZON = 8          # chunk length (receding horizon: the executing side uses the first one or two)


class StandInLiftPolicy(Policy):
    def __init__(self, cameras=(), image_size: int = 84, depth: bool = False):
        self.action_space = ActionSpace(names=["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"],
                                        low=[-1.0] * 7, high=[1.0] * 7, kind="eef_delta", discrete=[6])
        self.obs_spec = {"robot0_eef_pos": FeatureSpec([3], "float32"),
                         "robot0_gripper_qpos": FeatureSpec([2], "float32"),
                         "cube_pos": FeatureSpec([3], "float32")}
        for cam in cameras:
            self.obs_spec[f"{cam}_rgb"] = FeatureSpec([image_size, image_size, 3], "uint8", "rgb")
            if depth:
                self.obs_spec[f"{cam}_depth"] = FeatureSpec([image_size, image_size], "float32", "depth")
        self.calls = 0
        self.reset()

    def reset(self, seed=None) -> None:
        self.phase, self.count, self.lift_z = 0, 0, None

    def observe(self, obs) -> None:
        """Stateless between plans: the controller reads only the observation act() gets."""

    def act(self, obs):
        for k, f in self.obs_spec.items():
            if tuple(np.shape(obs[k])) != tuple(f.shape):
                raise ValueError(f"{k}: shape {np.shape(obs[k])} != {f.shape}")
        self.calls += 1
        eef, cube = np.asarray(obs["robot0_eef_pos"], float), np.asarray(obs["cube_pos"], float)
        gripper = -1.0
        if self.phase == 0:                       # hover above the cube
            target = cube + [0, 0, 0.08]
            if np.linalg.norm((target - eef)[:2]) < 0.01 and abs(target[2] - eef[2]) < 0.02:
                self.phase = 1
        if self.phase == 1:                       # descend
            target = cube - [0, 0, 0.005]
            if np.linalg.norm(target - eef) < 0.012:
                self.phase = 2
        if self.phase == 2:                       # close
            target, gripper = eef, 1.0
            self.count += 1
            if self.count >= 8:
                self.phase, self.lift_z = 3, cube[2] + 0.2
        if self.phase == 3:                       # lift
            target, gripper = np.array([eef[0], eef[1], self.lift_z]), 1.0
        a = np.zeros(7, np.float32)
        a[:3] = np.clip(GAIN * (target - eef), -1, 1)
        a[6] = gripper
        return np.repeat(a[None], HORIZON, 0)

    @property
    def info(self) -> dict:
        return {"sampler": "standin", "steps": 0, "uncertainty": 0.0}

    def sample(self, obs_batch, n):
        raise NotImplementedError("stand-in policy: no sampling")

    def loss(self, batch):
        return torch.zeros(())


def make_lowdim():
    return StandInLiftPolicy()


def make_rgbd():
    return StandInLiftPolicy(cameras=("agentview",), image_size=84, depth=True)


class SlowStandIn(StandInLiftPolicy):
    """The low-dim stand-in with a slow act() (SLOW_ACT_S), so a test can stop the node mid-inference.
    It reports in info["steps"] how many observations it was shown by observe() before each plan."""
    SLOW_ACT_S = 0.4

    def reset(self, seed=None) -> None:
        super().reset(seed)
        self.observed, self.observed_before_act = 0, 0

    def observe(self, obs) -> None:
        self.observed += 1

    def act(self, obs):
        import time
        self.observed_before_act, self.observed = self.observed, 0
        time.sleep(self.SLOW_ACT_S)
        return super().act(obs)

    @property
    def info(self) -> dict:
        return {"sampler": "standin", "steps": self.observed_before_act, "uncertainty": 0.0}


def make_slow():
    return SlowStandIn()


def make_undescribable():
    """An action dimension with no known meaning ("squeeze"): the inference node must refuse it."""
    policy = StandInLiftPolicy()
    policy.action_space.names[6] = "squeeze"
    return policy
