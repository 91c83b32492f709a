"""robomimic-style HDF5 -> LeRobot v3.0 via policy_stack.data.convert_hdf5 and the CLI."""
import json

import h5py
import numpy as np
import pytest

from policy_stack.cli import main
from policy_stack.data.reader import LeRobotDatasetReader


def _write_robomimic(path, n_demos=3, with_images=True):
    rng = np.random.default_rng(0)
    demos = []
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1,
                                             "env_kwargs": {"control_freq": 20, "camera_names": ["agentview"]}})
        for i in range(n_demos):
            t = 10 + i
            g = data.create_group(f"demo_{i}")
            obs = {
                "robot0_eef_pos": rng.normal(size=(t, 3)), "robot0_eef_quat": rng.normal(size=(t, 4)),
                "robot0_gripper_qpos": rng.normal(size=(t, 2)), "robot0_joint_pos": rng.normal(size=(t, 7)),
                "robot0_joint_vel": rng.normal(size=(t, 7)), "object": rng.normal(size=(t, 10)),
            }
            if with_images:
                obs["agentview_image"] = rng.integers(0, 256, (t, 84, 84, 3), dtype=np.uint8)
                obs["agentview_depth"] = rng.uniform(0.5, 2.0, (t, 84, 84, 1)).astype(np.float32)
            for k, v in obs.items():
                g.create_dataset(f"obs/{k}", data=v)
            g.create_dataset("actions", data=rng.uniform(-1, 1, (t, 7)))
            g.create_dataset("states", data=rng.normal(size=(t, 32)))
            rewards = np.zeros(t)
            rewards[-1] = 1.0
            g.create_dataset("rewards", data=rewards)
            g.create_dataset("dones", data=(np.arange(t) == t - 1).astype(np.int64))
            demos.append(obs | {"actions": g["actions"][()]})
    return demos


def test_convert_via_cli(tmp_path):
    src = tmp_path / "demo.hdf5"
    demos = _write_robomimic(src)
    out = tmp_path / "converted"
    assert main(["convert", "hdf5", str(src), "--out", str(out)]) == 0
    reader = LeRobotDatasetReader(out)
    assert reader.num_episodes == 3 and reader.fps == 20 and reader.tasks == ["Lift"]
    keys = {f.env_key for f in reader.features if f.derived_from is None}   # not the concatenated state
    assert keys == {"robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "robot0_joint_pos",
                    "cube_pos", "cube_quat", "agentview_rgb", "agentview_depth",
                    "action", "reward", "success", "done"}            # velocities dropped
    ep = reader.episode(1)
    src1 = demos[1]
    np.testing.assert_array_equal(ep["robot0_joint_pos"], src1["robot0_joint_pos"].astype(np.float32))
    # Poses in the robot base frame (robosuite Lift's base at (-0.56, 0, 0.912)), second finger positive.
    base = np.array([-0.56, 0.0, 0.912])
    np.testing.assert_allclose(ep["cube_pos"], src1["object"][:, :3] - base, atol=1e-6)
    np.testing.assert_allclose(ep["robot0_eef_pos"], src1["robot0_eef_pos"] - base, atol=1e-6)
    np.testing.assert_array_equal(ep["robot0_gripper_qpos"],
                                  src1["robot0_gripper_qpos"].astype(np.float32) * np.float32([1, -1]))
    np.testing.assert_array_equal(ep["cube_quat"], src1["object"][:, 3:7].astype(np.float32))
    np.testing.assert_array_equal(ep["action"], src1["actions"].astype(np.float32))
    flipped_depth_mm = np.rint(src1["agentview_depth"][:, ::-1, :, 0].astype(np.float64) * 1000).astype(np.uint16)
    np.testing.assert_array_equal(ep["agentview_depth_mm"], flipped_depth_mm)       # upright, mm
    assert ep["success"].tolist() == [False] * 10 + [True] and ep["done"][-1]
    # RGB is flipped upright: compare against the flipped source (codec tolerance on noise is loose).
    flipped = src1["agentview_image"][:, ::-1].astype(np.int16)
    assert np.abs(ep["agentview_rgb"] - flipped).mean() < np.abs(ep["agentview_rgb"] - src1["agentview_image"]).mean()


def test_convert_errors(tmp_path):
    from policy_stack.data.convert_hdf5 import convert_hdf5

    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as f:
        f.create_group("nothing")
    with pytest.raises(ValueError, match="missing group 'data'"):
        convert_hdf5(bad, tmp_path / "o1", progress=False)
    with h5py.File(bad, "w") as f:
        f.create_group("data/demo_0/obs").create_dataset("robot0_eef_pos", data=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="data/demo_0: missing 'actions'"):
        convert_hdf5(bad, tmp_path / "o2", progress=False)
    src = tmp_path / "lowdim.hdf5"
    _write_robomimic(src, n_demos=2, with_images=False)
    with h5py.File(src, "a") as f:
        del f["data/demo_1/obs/robot0_eef_quat"]
    with pytest.raises(ValueError, match="demo_1/obs: missing robot keys \\['robot0_eef_quat'\\]"):
        convert_hdf5(src, tmp_path / "o3", progress=False)
    with pytest.raises(FileNotFoundError):
        convert_hdf5(tmp_path / "nope.hdf5", tmp_path / "o4")
