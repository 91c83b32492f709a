"""policy_stack/normalize.py: a sign-flipped dimension (min' = -min, max' = -max, as
scripts/convert_checkpoint_frames.py stores the second Panda finger) normalizes -x exactly as the
original normalized x, bit for bit; a near-constant flipped dimension is still treated as constant."""
import numpy as np
import torch

from policy_stack.normalize import Normalizer


def test_flipped_span_gives_bit_identical_normalized_values():
    stats = {"robot0_gripper_qpos": {"min": [0.0196031853556633, -0.03970758244395256],
                                     "max": [0.0396869070827961, -0.019595371559262276]}}
    flipped = {"robot0_gripper_qpos": {"min": [0.0196031853556633, 0.03970758244395256],
                                       "max": [0.0396869070827961, 0.019595371559262276]}}
    x = torch.as_tensor(np.random.default_rng(0).uniform([0.0, -0.04], [0.04, 0.0], (1000, 2)), dtype=torch.float32)
    old = Normalizer(stats).normalize("robot0_gripper_qpos", x)
    new = Normalizer(flipped).normalize("robot0_gripper_qpos", x * torch.tensor([1.0, -1.0]))
    assert torch.equal(old, new)
    back = Normalizer(flipped).unnormalize("robot0_gripper_qpos", new)
    torch.testing.assert_close(back, x * torch.tensor([1.0, -1.0]))


def test_flipped_constant_dimension_is_still_constant():
    n = Normalizer({"k": {"min": [0.5], "max": [0.5 - 1e-6]}})    # |span| < range_eps, negative span
    # constant: scale 1, centred on the value (not 2 / span = -2e6)
    torch.testing.assert_close(n.normalize("k", torch.tensor([0.6])), torch.tensor([0.1]), atol=1e-6, rtol=0)
