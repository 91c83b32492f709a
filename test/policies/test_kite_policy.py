"""The `kite` Policy: registry, checkpoint round trip with the instruction cache, holds, and one tick
from instruction to a pick primitive's action (real primitives, untrained or oracle grounding)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from policy_stack.checkpoint import load_checkpoint, save_checkpoint
from policy_stack.policies.kite.build import build_policy
from policy_stack.policies.kite.geometry import keypoint_to_base
from policy_stack.policies.registry import get_policy_classes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kite_synthetic import make_grounding_data  # noqa: E402

SMALL = {"grounding_channels": [8, 16, 32], "text_hidden": 32, "stem_stride": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def data():
    d = make_grounding_data(8, 32, seed=5)
    d.meta["camera"] = "grounding"
    return d


def _obs(data, i, instruction="pick up the small red cube"):
    q = np.array([1.0, 0.0, 0.0, 0.0])          # xyzw: hand pointing down (180 deg about x)
    return {"grounding_rgb": data.rgb[i].numpy(), "grounding_depth": data.depth[i].numpy(),
            "robot0_eef_pos": np.array([0.0, 0.0, 1.2]), "robot0_eef_quat": q,
            "robot0_gripper_qpos": np.array([0.04, 0.04]), "instruction": instruction}


def test_registered_and_fitted_to_the_data(data):
    config_cls, policy_cls = get_policy_classes("kite")
    policy = build_policy(data, dict(SMALL))
    assert isinstance(policy, policy_cls) and isinstance(policy.config, config_cls)
    assert policy.config.image_shape == (32, 32) and policy.config.skills == ["pick"]
    assert np.allclose(policy.config.camera_K, data.K[0].numpy())
    with pytest.raises(ValueError, match="loss"):
        build_policy(data, dict(SMALL, loss="mse"))


def test_no_instruction_holds_still_and_says_why(data):
    policy = build_policy(data, dict(SMALL))
    chunk = policy.act(_obs(data, 0, instruction=""))
    assert chunk.shape == (1, 7) and np.all(chunk[:, :6] == 0) and chunk[0, 6] == -1.0
    assert policy.info["hold"] == "no instruction"
    assert policy.debug_outputs() == {}


def test_a_tick_grounds_lifts_and_starts_the_pick(data):
    policy = build_policy(data, dict(SMALL))
    obs = _obs(data, 0)
    chunk = policy.act(obs)
    info, dbg = policy.info, policy.debug_outputs()
    assert info["hold"] == "" and info["skill"] == "pick" and info["groundings"] == 1
    u, v = dbg["keypoint_px"]
    expect = keypoint_to_base(u, v, obs["grounding_depth"], data.K[0].numpy(), data.T_base_cam[0].numpy(),
                              policy.config.depth_window)
    assert np.allclose(dbg["keypoint_base"], expect)
    assert dbg["heatmap"].shape == (32, 32) and dbg["heatmap"].dtype == np.uint8 and dbg["heatmap"].max() == 255
    # the pick's first phase servoes toward the hover point above the keypoint, fingers open
    toward = dbg["keypoint_base"][:2] - obs["robot0_eef_pos"][:2]
    if np.linalg.norm(toward) > 0.02:
        assert np.dot(chunk[0, :2], toward) > 0
    assert chunk[0, 6] == -1.0
    policy.act(obs)
    assert policy.info["groundings"] == 1          # grounded once per sub-instruction, not per tick


def test_oracle_keypoint_source_replaces_the_model_pixel(data):
    policy = build_policy(data, dict(SMALL))
    label = data.kp_px[0].numpy()
    policy.keypoint_source = lambda index, sub, obs: label
    policy.act(_obs(data, 0))
    assert np.allclose(policy.debug_outputs()["keypoint_px"], label)
    assert np.linalg.norm(policy.debug_outputs()["keypoint_base"] - data.kp_base[0].numpy()) < 0.02


def test_checkpoint_round_trip_keeps_weights_and_instruction_cache(data, tmp_path):
    policy = build_policy(data, dict(SMALL))
    policy.text_cache.get(data.instructions)
    policy.freeze_instruction_cache()
    save_checkpoint(policy, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt", device="cpu").policy
    assert loaded.config.instruction_vocab == policy.config.instruction_vocab
    a = policy.ground(data.rgb[1].numpy(), None, data.instructions[1])
    b = loaded.ground(data.rgb[1].numpy(), None, data.instructions[1])
    assert np.allclose(a["uv"], b["uv"]) and np.allclose(a["heatmap"], b["heatmap"], atol=1e-6)
    assert loaded.text_cache.misses == 0 and loaded.text_cache._encoder is None   # no transformer loaded
    assert torch.equal(loaded.text_cache.get([data.instructions[2]]), policy.text_cache.get([data.instructions[2]]))


def test_policy_stack_train_kite_writes_a_loadable_checkpoint(tmp_path):
    """`policy-stack train --policy kite` on a grounding folder: checkpoint by the usual loader, camera and
    instruction embeddings from the data, train_config in its meta."""
    from policy_stack.checkpoint import read_config
    from policy_stack.cli import main

    d = make_grounding_data(24, 32, seed=2)
    d.meta["camera"] = "grounding"
    d.save(tmp_path / "data")
    rc = main(["train", "--policy", "kite", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
               "--steps", "3", "--batch", "4", "--no-progress", "--device", "cpu",
               "--set", "grounding_channels=[8,16,32]", "--set", "text_hidden=16"])
    assert rc == 0
    policy = load_checkpoint(tmp_path / "run" / "checkpoint", device="cpu").policy
    assert set(policy.config.instruction_vocab) == set(d.instructions)
    assert policy.config.cameras == ["grounding"] and np.allclose(policy.config.camera_K, d.K[0].numpy())
    meta = read_config(tmp_path / "run" / "checkpoint")["meta"]
    assert meta["train_config"]["steps"] == 3 and meta["rows"] == 24


def test_concat_grounding_joins_rows_and_per_row_meta_in_order():
    """Several train collections packed as one (scripts/kite_offload_train.py pack --train A --train B)."""
    from policy_stack.policies.kite.data import concat_grounding

    a, b = make_grounding_data(5, 32, seed=1), make_grounding_data(3, 32, seed=2)
    a.meta.update(env="multi_cube", episode_seed=list(range(5)))
    b.meta.update(env="other", episode_seed=list(range(100, 103)))
    c = concat_grounding([a, b])
    assert len(c) == 8 and c.instructions == a.instructions + b.instructions
    assert torch.equal(c.rgb[5:], b.rgb) and torch.equal(c.kp_px[:5], a.kp_px)
    assert c.meta["episode_seed"] == [0, 1, 2, 3, 4, 100, 101, 102] and c.meta["env"] == "multi_cube"
    assert torch.equal(c.subset([6]).rgb, b.subset([1]).rgb)
    with pytest.raises(ValueError, match="image shape"):
        concat_grounding([a, make_grounding_data(2, 16, seed=3)])
