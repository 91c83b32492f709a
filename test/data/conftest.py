"""Synthetic episodes and a small shared dataset for the data tests (no robosuite needed)."""
import numpy as np
import pytest

from policy_stack.data.writer import DatasetWriter

H, W = 84, 84
FPS = 20
FEATURES = {
    "robot0_eef_pos": (3,), "robot0_eef_quat": (4,), "robot0_gripper_qpos": (2,),
    "agentview_rgb": (H, W, 3), "agentview_depth": (H, W),
    "action": (7,), "reward": (), "success": (), "done": (),
}
LENGTHS = (20, 35, 12)


def make_episode(length: int, seed: int, h: int = H, w: int = W) -> dict:
    """Random low-dim data; smooth moving RGB gradients (video codecs are lossy on noise); random
    uint16 depth with some zeros (no reading) and values above 32767 (the int16 wrap LeRobot suffers)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(length, dtype=np.float32)[:, None, None]
    rgb = np.stack([128 + 100 * np.sin(xx / 13 + t / 5 + seed),
                    128 + 100 * np.cos(yy / 11 - t / 7),
                    128 + 90 * np.sin((xx + yy) / 17 + seed + 0 * t)], -1).astype(np.uint8)
    depth = rng.integers(300, 2500, (length, h, w)).astype(np.uint16)
    depth[:, :2, :2] = 0
    depth[:, -1, -1] = 60000
    success = np.zeros(length, bool)
    if seed % 2 == 0:
        success[-3:] = True
    return {
        "robot0_eef_pos": rng.normal(size=(length, 3)).astype(np.float32),
        "robot0_eef_quat": rng.normal(size=(length, 4)).astype(np.float32),
        "robot0_gripper_qpos": rng.uniform(0, 0.04, (length, 2)).astype(np.float32),
        "agentview_rgb": rgb, "agentview_depth": depth,
        "action": rng.uniform(-1, 1, (length, 7)).astype(np.float32),
        "reward": success.astype(np.float32), "success": success,
        "done": np.arange(length) == length - 1,
    }


@pytest.fixture(scope="session")
def written_dataset(tmp_path_factory):
    """(root, episodes) of a 3-episode dataset with one RGB and one depth camera, two tasks."""
    root = tmp_path_factory.mktemp("ds") / "lift"
    episodes = [make_episode(n, seed=i) for i, n in enumerate(LENGTHS)]
    writer = DatasetWriter(root, FPS, FEATURES, task_names=["lift the cube"])
    for i, ep in enumerate(episodes):
        writer.add_episode(ep, "lift the cube" if i != 1 else "lift it higher")
    return root, episodes
