"""LeRobot compatibility, checked without lerobot (test/interop/test_lerobot.py runs lerobot itself):

1. a plain `observation.state` (LeRobot's usual key) is read, normalized, trained on and appended to
   under its own name, never as `observation.state.observation.state` or `state`;
2. appending to a LeRobot-written dataset works, with stats in LeRobot's shapes (depth per image
   column), and a dataset we cannot append to is refused before anything is written;
3. we write a concatenated `observation.state` beside the split keys (what LeRobot's policies read),
   its `names` spelling out the split.
The LeRobot-written datasets come from test/data/lerobot_style.py (pyarrow + PyAV, LeRobot's layout).
"""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from lerobot_style import (CAMERA_KEY, DEPTH_HW, DEPTH_KEY, STATE_NAMES, make_frames, tree_snapshot,
                           write_lerobot_style)
from policy_stack.data import DatasetWriter, LeRobotDatasetReader
from policy_stack.data.features import STATE_KEY, dataset_key, env_key
from policy_stack.data.reader import DatasetFormatError
from policy_stack.data.windows import WindowSampler
from policy_stack.normalize import Normalizer


def _as_env_frames(ep: dict) -> dict:
    """LeRobot-keyed frames -> what add_episode takes (dataset keys work too; env keys here)."""
    out = {"observation.state": ep["observation.state"], "action": ep["action"], "front_rgb": ep[CAMERA_KEY]}
    if DEPTH_KEY in ep:
        out["wrist_depth"] = ep[DEPTH_KEY]
    return out


# ---------------------------------------------------------------- 1. plain observation.state

def test_plain_state_key_maps_to_itself():
    assert dataset_key(STATE_KEY) == STATE_KEY and env_key(STATE_KEY) == STATE_KEY
    assert dataset_key("observation.environment_state") == "observation.environment_state"
    assert dataset_key("robot0_eef_pos") == "observation.state.robot0_eef_pos"     # split keys unchanged
    assert env_key("observation.state.robot0_eef_pos") == "robot0_eef_pos"


def test_reader_reads_plain_state_under_its_name(tmp_path):
    root, episodes = write_lerobot_style(tmp_path / "lr")
    reader = LeRobotDatasetReader(root)
    assert reader.lowdim_keys == [STATE_KEY]
    assert reader.feature(STATE_KEY).key == STATE_KEY
    assert reader.rgb_keys == ["front_rgb"] and reader.depth_keys == ["wrist_depth"]
    for k, ep in enumerate(episodes):       # several episodes in one file, from_timestamp > 0
        got = reader.episode(k)
        np.testing.assert_array_equal(got[STATE_KEY], ep["observation.state"])
        np.testing.assert_array_equal(got["wrist_depth_mm"], ep[DEPTH_KEY])
        assert got["front_rgb"].shape == ep[CAMERA_KEY].shape
    stats = reader.normalization_stats()
    all_state = np.concatenate([e["observation.state"] for e in episodes])
    np.testing.assert_allclose(stats[STATE_KEY]["min"], all_state.min(0), rtol=1e-6)
    assert stats["wrist_depth"]["min"].shape == (1,)      # per-column depth stats pooled for training


def test_normalizer_keeps_plain_state_key():
    stats = {STATE_KEY: {"min": [0.0, -1.0], "max": [2.0, 1.0]},
             "observation.state.robot0_eef_pos": {"min": [0.0], "max": [1.0]}}
    norm = Normalizer(stats)
    assert norm.has(STATE_KEY) and not norm.has("state")
    assert norm.has("robot0_eef_pos")                      # our split prefix is still stripped
    out = norm.normalize(STATE_KEY, torch.tensor([[2.0, 0.0]]))
    assert out.tolist() == [[1.0, 0.0]]


def test_windows_on_plain_state(tmp_path):
    root, episodes = write_lerobot_style(tmp_path / "lr")
    sampler = WindowSampler(LeRobotDatasetReader(root), [STATE_KEY], To=2, Tp=4)
    window = sampler[3]
    assert window["obs"][STATE_KEY].shape == (2, 6)
    np.testing.assert_array_equal(window["obs"][STATE_KEY][-1], episodes[0]["observation.state"][3])


def test_policy_stack_train_on_plain_state(tmp_path):
    """`policy-stack train` (the Trainer the CLI runs) picks the plain state key and takes a step."""
    from policy_stack.train.config import TrainConfig
    from policy_stack.train.trainer import Trainer

    root, _ = write_lerobot_style(tmp_path / "lr", lengths=(24, 20), depth=False)
    tiny = {"down_dims": [8, 16], "step_embed_dim": 8, "n_groups": 4, "horizon": 8, "n_action_steps": 4}
    cfg = TrainConfig(policy="diffusion", data=str(root), out=str(tmp_path / "run"), steps=1, batch=8, warmup=1,
                      eval_every=0, progress=False, device="cpu", policy_overrides=tiny)
    trainer = Trainer(cfg)
    trainer._setup()
    try:
        assert trainer.policy.config.lowdim_keys == [STATE_KEY]
        assert trainer.policy.normalizer.has(STATE_KEY)
        trainer.model.train()
        trainer._train_step(next(iter(trainer.loader)))
    finally:
        trainer.log.close()


# ---------------------------------------------------------------- 2. appending to LeRobot-written data

def test_append_to_lerobot_written_dataset(tmp_path):
    root, episodes = write_lerobot_style(tmp_path / "lr")
    before = LeRobotDatasetReader(root)
    old = [before.episode(k) for k in range(2)]
    new = make_frames(7, seed=99)
    with DatasetWriter(root) as writer:
        assert writer.add_episode(_as_env_frames(new), task="pick up the block") == 2
    reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == 3 and reader.num_frames == 12 + 9 + 7
    for k in range(2):                                     # the LeRobot episodes are untouched
        np.testing.assert_array_equal(reader.episode(k)[STATE_KEY], old[k][STATE_KEY])
        np.testing.assert_array_equal(reader.episode(k)["front_rgb"], old[k]["front_rgb"])
    got = reader.episode(2)
    np.testing.assert_array_equal(got[STATE_KEY], new["observation.state"])
    np.testing.assert_array_equal(got["wrist_depth_mm"], new[DEPTH_KEY])
    # stats.json keeps LeRobot's shapes, so LeRobot can aggregate them again
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.asarray(stats[DEPTH_KEY]["mean"]).shape == (DEPTH_HW[1],)
    assert np.asarray(stats[CAMERA_KEY]["mean"]).shape == (3, 1, 1)
    assert stats["observation.state"]["count"] == [28]
    all_state = np.concatenate([e["observation.state"] for e in episodes] + [new["observation.state"]])
    np.testing.assert_allclose(stats["observation.state"]["max"], all_state.max(0), rtol=1e-6)
    assert info_features(root) == info_features_of_lerobot(tmp_path)   # no feature added or renamed


def info_features(root):
    return sorted(json.loads((root / "meta/info.json").read_text())["features"])


def info_features_of_lerobot(tmp_path):
    root, _ = write_lerobot_style(tmp_path / "fresh")
    return info_features(root)


def test_our_depth_stats_have_lerobots_shape(tmp_path):
    root = tmp_path / "ours"
    with DatasetWriter(root, 10, {"robot0_eef_pos": (3,), "agentview_depth": DEPTH_HW, "action": (7,)}) as w:
        w.add_episode({"robot0_eef_pos": np.zeros((4, 3)), "agentview_depth": np.ones((4, *DEPTH_HW), np.uint16),
                       "action": np.zeros((4, 7))}, "t")
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.asarray(stats["observation.depth.agentview"]["mean"]).shape == (DEPTH_HW[1],)
    assert stats["observation.depth.agentview"]["count"] == [4]


def test_append_keeps_the_old_scalar_depth_stats_layout(tmp_path):
    """Datasets our writer made before depth stats were per column keep one number per stat."""
    root = tmp_path / "old"
    feats = {"agentview_depth": DEPTH_HW, "action": (7,)}
    depth = np.arange(4 * 48, dtype=np.uint16).reshape(4, *DEPTH_HW)
    with DatasetWriter(root, 10, feats) as w:
        w.add_episode({"agentview_depth": depth, "action": np.zeros((4, 7))}, "t")
    # rewrite the committed episode's stats the way the old writer stored them: shape (1,)
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(path).to_pylist()
    for stat in ("min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99"):
        rows[0][f"stats/observation.depth.agentview/{stat}"] = [float(np.mean(rows[0][f"stats/observation.depth.agentview/{stat}"]))]
    import pyarrow as pa
    pq.write_table(pa.Table.from_pylist(rows), path)
    with DatasetWriter(root) as w:
        w.add_episode({"agentview_depth": depth, "action": np.zeros((4, 7))}, "t")
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.asarray(stats["observation.depth.agentview"]["mean"]).shape == (1,)


def test_append_refused_before_writing_anything_image_feature(tmp_path):
    root, _ = write_lerobot_style(tmp_path / "lr", image_feature=True)
    LeRobotDatasetReader(root)                              # readable ...
    snapshot = tree_snapshot(root)
    with pytest.raises(DatasetFormatError, match="observation.images.side.*nothing changed"):
        DatasetWriter(root)                                 # ... but not something we can append to
    assert tree_snapshot(root) == snapshot                  # not even the lock file


def test_append_refused_before_writing_anything_stats_shape(tmp_path):
    root, _ = write_lerobot_style(tmp_path / "lr")
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[1]["stats/observation.state/mean"] = [0.0, 0.0]   # a shape the new episode's stats cannot join
    import pyarrow as pa
    pq.write_table(pa.Table.from_pylist(rows), path)
    snapshot = tree_snapshot(root)
    with pytest.raises(DatasetFormatError, match="stats/observation.state/mean.*nothing changed"):
        DatasetWriter(root)
    assert tree_snapshot(root) == snapshot


def test_refused_episode_leaves_no_files(tmp_path):
    """An episode whose stats cannot join the dataset's is refused before its video/parquet exist."""
    root, _ = write_lerobot_style(tmp_path / "lr")
    writer = DatasetWriter(root)
    snapshot = tree_snapshot(root)
    writer.episode_stats[0]["action"]["mean"] = np.zeros(3)    # as if the dataset changed under us
    with pytest.raises(ValueError):
        writer.add_episode(_as_env_frames(make_frames(5, seed=3)), task="pick up the block")
    writer.close()
    assert tree_snapshot(root) == snapshot


# ---------------------------------------------------------------- 3. concatenated observation.state

FEATS = {"robot0_eef_pos": (3,), "robot0_gripper_qpos": (2,), "cube_pos": (3,), "action": (7,), "success": ()}


def _episode(n, seed):
    rng = np.random.default_rng(seed)
    return {"robot0_eef_pos": rng.normal(size=(n, 3)), "robot0_gripper_qpos": rng.normal(size=(n, 2)),
            "cube_pos": rng.normal(size=(n, 3)), "action": rng.normal(size=(n, 7)), "success": np.zeros(n, bool)}


def test_concatenated_state_written_beside_split_keys(tmp_path):
    root = tmp_path / "ours"
    eps = [_episode(6, 0), _episode(4, 1)]
    with DatasetWriter(root, 20, FEATS) as w:
        for ep in eps:
            w.add_episode(ep, "lift")
    info = json.loads((root / "meta/info.json").read_text())
    entry = info["features"][STATE_KEY]
    assert entry["dtype"] == "float32" and entry["shape"] == [8]
    assert entry["names"] == ["robot0_eef_pos.x", "robot0_eef_pos.y", "robot0_eef_pos.z",
                              "robot0_gripper_qpos.finger_left", "robot0_gripper_qpos.finger_right",
                              "cube_pos.cube_pos_0", "cube_pos.cube_pos_1", "cube_pos.cube_pos_2"]
    assert "observation.state.robot0_eef_pos" in info["features"]           # split keys stay
    table = pq.read_table(root / "data/chunk-000/file-001.parquet")
    want = np.concatenate([eps[1]["robot0_eef_pos"], eps[1]["robot0_gripper_qpos"], eps[1]["cube_pos"]], 1)
    np.testing.assert_array_equal(np.asarray(table.column(STATE_KEY).to_pylist(), np.float32),
                                  want.astype(np.float32))
    stats = json.loads((root / "meta/stats.json").read_text())
    assert len(stats[STATE_KEY]["q99"]) == 8 and stats[STATE_KEY]["count"] == [10]
    reader = LeRobotDatasetReader(root)
    assert reader.lowdim_keys == ["robot0_eef_pos", "robot0_gripper_qpos", "cube_pos"]   # not a 4th input
    assert reader.feature(STATE_KEY).derived_from == ("robot0_eef_pos", "robot0_gripper_qpos", "cube_pos")
    np.testing.assert_array_equal(reader.episode(1)[STATE_KEY], want.astype(np.float32))


def test_environment_state_written_for_object_keys(tmp_path):
    """lerobot's Diffusion Policy and ACT refuse a state-only dataset without
    observation.environment_state: the object keys are written concatenated under that name too."""
    root = tmp_path / "ours"
    eps = [_episode(6, 0), _episode(4, 1)]
    with DatasetWriter(root, 20, FEATS) as w:
        for ep in eps:
            w.add_episode(ep, "lift")
    info = json.loads((root / "meta/info.json").read_text())
    entry = info["features"]["observation.environment_state"]
    assert entry["shape"] == [3] and entry["names"] == ["cube_pos.cube_pos_0", "cube_pos.cube_pos_1",
                                                        "cube_pos.cube_pos_2"]
    table = pq.read_table(root / "data/chunk-000/file-001.parquet")
    np.testing.assert_array_equal(np.asarray(table.column("observation.environment_state").to_pylist(),
                                             np.float32), eps[1]["cube_pos"].astype(np.float32))
    reader = LeRobotDatasetReader(root)
    assert reader.lowdim_keys == ["robot0_eef_pos", "robot0_gripper_qpos", "cube_pos"]   # still 3 inputs
    assert reader.feature("observation.environment_state").derived_from == ("cube_pos",)
    with DatasetWriter(root, 20, FEATS) as w:                 # appending recomputes it
        w.add_episode(_episode(3, 2), "lift")
    assert LeRobotDatasetReader(root).episode(2)["observation.environment_state"].shape == (3, 3)


def test_episode_read_back_can_be_written_again(tmp_path):
    """A reader's episode (derived state included) is accepted by add_episode; a wrong one is not."""
    src = tmp_path / "src"
    with DatasetWriter(src, 20, FEATS) as w:
        w.add_episode(_episode(5, 0), "lift")
    ep = LeRobotDatasetReader(src).episode(0)
    frames = {k: ep[k] for k in list(FEATS) + [STATE_KEY]}
    with DatasetWriter(tmp_path / "dst", 20, FEATS) as w:
        w.add_episode(frames, "lift")
        frames[STATE_KEY] = frames[STATE_KEY] + 1
        with pytest.raises(ValueError, match="not their concatenation"):
            w.add_episode(frames, "lift")
        del frames["cube_pos"]
        with pytest.raises(ValueError, match=r"missing keys \['cube_pos'\]"):
            w.add_episode(frames, "lift")


def test_caller_declared_state_is_not_doubled(tmp_path):
    root = tmp_path / "plain"
    with DatasetWriter(root, 20, {STATE_KEY: (6,), "action": (6,)}) as w:
        w.add_episode({STATE_KEY: np.ones((3, 6)), "action": np.zeros((3, 6))}, "t")
    features = json.loads((root / "meta/info.json").read_text())["features"]
    assert [k for k in features if k.startswith("observation.")] == [STATE_KEY]
    assert LeRobotDatasetReader(root).lowdim_keys == [STATE_KEY]
