"""Writer -> reader round trip, info.json and stats.json contents, append, input validation."""
import json

import numpy as np
import pytest

from policy_stack.data.reader import LeRobotDatasetReader
from policy_stack.data.writer import DatasetWriter

from conftest import FEATURES, FPS, LENGTHS, W, make_episode


def test_round_trip(written_dataset):
    root, episodes = written_dataset
    reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == len(LENGTHS) and reader.num_frames == sum(LENGTHS)
    assert reader.orphan_files == []
    for k, src in enumerate(episodes):
        got = reader.episode(k)
        for key in ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "action", "reward"):
            np.testing.assert_array_equal(got[key], src[key], err_msg=key)       # low-dim: exact
        np.testing.assert_array_equal(got["success"], src["success"])
        np.testing.assert_array_equal(got["done"], src["done"])
        assert got["agentview_depth_mm"].dtype == np.uint16
        np.testing.assert_array_equal(got["agentview_depth_mm"], src["agentview_depth"])  # bit-exact
        np.testing.assert_allclose(got["agentview_depth"], src["agentview_depth"] / 1000.0, rtol=1e-6)
        assert got["agentview_depth"].dtype == np.float32
        rgb = got["agentview_rgb"]
        assert rgb.shape == src["agentview_rgb"].shape and rgb.dtype == np.uint8
        err = np.abs(rgb.astype(np.int16) - src["agentview_rgb"])
        assert err.mean() < 5.0, err.mean()                       # H.264 crf 23, yuv420p chroma
        psnr = 10 * np.log10(255**2 / np.mean(err.astype(np.float64) ** 2))
        assert psnr > 30, psnr
        np.testing.assert_array_equal(got["frame_index"], np.arange(LENGTHS[k]))
        np.testing.assert_array_equal(got["timestamp"], (np.arange(LENGTHS[k]) / FPS).astype(np.float32))
        assert (got["episode_index"] == k).all()
    assert reader.episode_task(1) == "lift it higher" and reader.episode_task(0) == "lift the cube"
    assert reader.tasks == ["lift the cube", "lift it higher"]


def test_info_json(written_dataset):
    root, _ = written_dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS and isinstance(info["fps"], int)
    assert info["total_episodes"] == 3 and info["total_frames"] == sum(LENGTHS) and info["total_tasks"] == 2
    assert info["splits"] == {"train": "0:3"} and info["robot_type"] == "panda"
    assert info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    feats = info["features"]
    assert feats["observation.state.robot0_eef_pos"] == {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]}
    assert feats["action"]["names"] == ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
    assert feats["observation.depth.agentview"]["dtype"] == "uint16"
    assert feats["observation.depth.agentview"]["shape"] == [84, 84]
    assert feats["next.success"] == {"dtype": "bool", "shape": [1], "names": None}
    video = feats["observation.images.agentview"]
    assert video["dtype"] == "video" and video["shape"] == [84, 84, 3]
    assert video["names"] == ["height", "width", "channels"]
    assert video["info"]["video.codec"] in ("h264", "av1") and video["info"]["video.pix_fmt"] == "yuv420p"
    assert video["info"]["video.fps"] == FPS and video["info"]["video.is_depth_map"] is False
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        assert feats[key] == {"dtype": dtype, "shape": [1], "names": None}


def test_stats_json(written_dataset):
    root, episodes = written_dataset
    stats = json.loads((root / "meta/stats.json").read_text())
    action = np.concatenate([e["action"] for e in episodes]).astype(np.float64)
    s = stats["action"]
    np.testing.assert_allclose(s["min"], action.min(0), rtol=1e-6)
    np.testing.assert_allclose(s["max"], action.max(0), rtol=1e-6)
    np.testing.assert_allclose(s["mean"], action.mean(0), rtol=1e-6)
    np.testing.assert_allclose(s["std"], action.std(0), rtol=1e-6)     # pooled variance is exact
    assert s["count"] == [sum(LENGTHS)]
    for q in ("q01", "q10", "q50", "q90", "q99"):
        assert len(s[q]) == 7
    assert np.all(np.array(s["min"]) <= np.array(s["q01"])) and np.all(np.array(s["q99"]) <= np.array(s["max"]))
    img = stats["observation.images.agentview"]
    for name in ("min", "max", "mean", "std", "q01", "q50", "q99"):
        arr = np.asarray(img[name])
        assert arr.shape == (3, 1, 1) and arr.min() >= 0 and arr.max() <= 1, name
    depth = np.concatenate([e["agentview_depth"] for e in episodes]).astype(np.float64)
    d = stats["observation.depth.agentview"]
    # one entry per image column, as lerobot 0.4.4 computes stats of a (T, H, W) numeric feature
    assert np.asarray(d["min"]).shape == (W,) and min(d["min"]) == 0 and max(d["max"]) == 60000
    np.testing.assert_allclose(d["mean"], depth.mean(axis=(0, 1)), rtol=1e-9)
    assert set(stats) >= {"timestamp", "frame_index", "episode_index", "index", "task_index", "next.success"}
    # The env-keyed normalization view: depth in metres, RGB per channel.
    norm = LeRobotDatasetReader(root).normalization_stats()
    np.testing.assert_allclose(norm["agentview_depth"]["max"], [60.0])
    assert norm["agentview_rgb"]["mean"].shape == (3,)
    assert set(norm) >= {"robot0_eef_pos", "action", "agentview_rgb", "agentview_depth"}


def test_append_to_existing(tmp_path):
    root = tmp_path / "ds"
    first = [make_episode(10, seed=s) for s in range(2)]
    w = DatasetWriter(root, FPS, FEATURES)
    for ep in first:
        w.add_episode(ep, "a")
    extra = make_episode(7, seed=5)
    w.close()                                              # one writer at a time (the writer lock)
    w2 = DatasetWriter(root)                               # reopen: fps/features come from info.json
    assert w2.num_episodes == 2 and w2.num_frames == 20
    assert w2.add_episode(extra, "b") == 2
    w2.close()
    reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == 3 and reader.num_frames == 27 and reader.tasks == ["a", "b"]
    np.testing.assert_array_equal(reader.episode(2)["action"], extra["action"])
    np.testing.assert_array_equal(reader.episode(0)["agentview_depth_mm"], first[0]["agentview_depth"])
    np.testing.assert_array_equal(reader.episode(2)["index"], np.arange(20, 27))
    stats = reader.stats
    assert stats["action"]["count"].tolist() == [27]
    with pytest.raises(ValueError, match="fps"):
        DatasetWriter(root, fps=FPS + 1)
    with pytest.raises(ValueError, match="robot0_eef_pos"):
        DatasetWriter(root, FPS, {**FEATURES, "robot0_eef_pos": (4,)})


def test_dataset_keys_and_float_depth(tmp_path):
    """Frames may use dataset feature names; float depth is metres rounded to millimetres."""
    ep = make_episode(5, seed=3)
    frames = {("observation.state." + k if k.startswith("robot0") else k): v for k, v in ep.items()}
    metres = ep["agentview_depth"] / 1000.0
    metres[0, 5, 5] = np.nan
    frames["agentview_depth"] = metres
    w = DatasetWriter(tmp_path / "ds", FPS, FEATURES)
    w.add_episode(frames, "t")
    got = LeRobotDatasetReader(tmp_path / "ds").episode(0)
    expect = ep["agentview_depth"].copy()
    expect[0, 5, 5] = 0                                   # invalid -> 0 ("no reading")
    np.testing.assert_array_equal(got["agentview_depth_mm"], expect)


@pytest.mark.parametrize("key, bad, match", [
    ("action", np.zeros((10, 6), np.float32), "'action' has shape \\(10, 6\\), expected \\(T, 7\\)"),
    ("agentview_rgb", np.zeros((10, 84, 84), np.uint8), "'agentview_rgb' has shape"),
    ("agentview_depth", np.zeros((10, 80, 84), np.uint16), "'agentview_depth' has shape"),
    ("robot0_eef_pos", np.zeros((9, 3), np.float32), "'robot0_eef_pos' has 9 frames"),
    ("agentview_rgb", np.zeros((10, 84, 84, 3), np.float32), "'agentview_rgb' must be uint8"),
    ("action", np.full((10, 7), np.nan, np.float32), "'action' contains NaN"),
])
def test_bad_episode_input_names_the_key(tmp_path, key, bad, match):
    w = DatasetWriter(tmp_path / "ds", FPS, FEATURES)
    ep = make_episode(10, seed=1)
    ep[key] = bad
    with pytest.raises(ValueError, match=match):
        w.add_episode(ep, "t")
    ep = make_episode(10, seed=1)
    del ep["robot0_eef_quat"]
    with pytest.raises(ValueError, match="missing keys \\['robot0_eef_quat'\\]"):
        w.add_episode(ep, "t")
    ep = make_episode(10, seed=1)
    ep["cube_pos"] = np.zeros((10, 3))
    with pytest.raises(ValueError, match="unknown keys \\['cube_pos'\\]"):
        w.add_episode(ep, "t")
    assert w.num_episodes == 0 and LeRobotDatasetReader(tmp_path / "ds").num_episodes == 0
