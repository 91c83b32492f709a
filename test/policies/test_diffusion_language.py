"""Language-conditioned Diffusion Policy (diffusion/language.py) and the learned keypoint skill's inputs.

The instruction enters through the frozen MiniLM embedding as extra global conditioning: a different
instruction must change the denoiser's condition, the same one must give the same (cached) vector; the
checkpoint round trip (safetensors + JSON) must keep the embedding table; one training step on a real
dataset window (the episode's task string as the instruction) must run and move the weights.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policy_stack.checkpoint import load_policy, save_checkpoint
from policy_stack.policies.kite.learned_skill import SKILL_KINDS, kind_of_steps, skill_features, yaw_of_quat_xyzw
from test_diffusion_common import one_obs, synthetic_batch, tiny_policy

VOCAB = ["pick up the small red cube", "stack the blue cube on the yellow one"]


@pytest.fixture(scope="module")
def lang_policy():
    return tiny_policy(language_conditioning=True, instruction_vocab=VOCAB, language_dim=8, language_hidden=16)


def _condition(policy, instruction):
    obs = {k: torch.as_tensor(v)[None, None].repeat(1, 2, *([1] * np.ndim(v))) for k, v in one_obs(0).items()}
    with torch.no_grad():
        feats = policy.obs_encoder(policy.preprocess(obs))
        return policy._condition(feats, {"instruction": instruction})


def test_instruction_changes_the_condition_and_the_same_one_is_cached(lang_policy):
    red = _condition(lang_policy, "pick up the small red cube")
    blue = _condition(lang_policy, "stack the blue cube on the yellow one")
    obs_dim = lang_policy.obs_encoder.output_dim
    assert red.shape == (1, obs_dim + 16) and lang_policy.unet is not None
    assert torch.equal(red[:, :obs_dim], blue[:, :obs_dim])          # same observation features
    assert not torch.allclose(red[:, obs_dim:], blue[:, obs_dim:])   # the instruction moved the rest
    misses = lang_policy.language.cache.misses
    again = _condition(lang_policy, "  pick up the small  red cube ")
    assert torch.equal(red, again) and lang_policy.language.cache.misses == misses   # cached, no encoder run
    unseen = _condition(lang_policy, "grab the little red block")    # a paraphrase: encoded once, then cached
    assert lang_policy.language.cache.misses == misses + 1 and not torch.equal(unseen, red)
    with pytest.raises(ValueError, match="instruction"):
        lang_policy._condition(red[:, :obs_dim], {})


def test_act_holds_without_an_instruction_and_uses_it(lang_policy):
    obs = one_obs(0)
    lang_policy.reset(seed=0)
    for missing in ({}, {"instruction": "  "}):
        hold = lang_policy.act({**obs, **missing})
        assert hold.shape == (8, 7) and np.all(hold[:, :6] == 0) and np.all(hold[:, 6] == -1.0)
        assert lang_policy.info["hold"] == "no instruction"
    lang_policy.reset(seed=0)
    a = lang_policy.act({**obs, "instruction": VOCAB[0]})
    lang_policy.reset(seed=0)
    b = lang_policy.act({**obs, "instruction": VOCAB[0]})
    assert a.shape == (8, 7) and np.array_equal(a, b) and lang_policy.info["hold"] == ""
    with pytest.raises(ValueError, match="torch only"):
        lang_policy.set_backend("onnx")


def test_checkpoint_round_trip_keeps_the_embedding_table(lang_policy, tmp_path):
    lang_policy.language.fill_table()
    save_checkpoint(lang_policy, tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["config.json", "model.safetensors", "normalization.json"]   # no pickle
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())["config"]
    assert cfg["language_conditioning"] is True and cfg["instruction_vocab"] == VOCAB
    loaded = load_policy(tmp_path / "ckpt", "cpu")
    table = loaded.language.instruction_embeddings
    assert table.shape == (2, 384) and torch.equal(table, lang_policy.language.instruction_embeddings)
    assert torch.allclose(table.norm(dim=1), torch.ones(2), atol=1e-5)     # real unit-norm MiniLM rows
    before = loaded.language.cache.misses
    c1, c2 = _condition(loaded, VOCAB[1]), _condition(lang_policy, VOCAB[1])
    assert torch.allclose(c1, c2) and loaded.language.cache.misses == before   # served from the table


def test_one_training_step_on_dataset_windows_runs(tmp_path):
    """A language batch as the trainer builds it (WindowDataset over a real LeRobot folder, the task
    string as `instruction`) -> one optimizer step that changes the fusion weights."""
    from policy_stack.data.torch_dataset import WindowDataset
    from policy_stack.data.writer import DatasetWriter

    rng = np.random.default_rng(0)
    keys = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "cube_pos": 3}
    writer = DatasetWriter(tmp_path / "ds", fps=20, features={**{k: (d,) for k, d in keys.items()}, "action": (7,)})
    for task in VOCAB:
        frames = {k: rng.uniform(-0.5, 0.5, (20, d)).astype(np.float32) for k, d in keys.items()}
        frames["action"] = rng.uniform(-1, 1, (20, 7)).astype(np.float32)
        writer.add_episode(frames, task=task)
    writer.close()
    ds = WindowDataset(tmp_path / "ds", [*keys, "instruction"], To=2, Tp=16)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True,
                                                  generator=torch.Generator().manual_seed(0))))
    assert isinstance(batch["obs"]["instruction"], list) and set(batch["obs"]["instruction"]) <= set(VOCAB)
    policy = tiny_policy(language_conditioning=True, instruction_vocab=VOCAB, language_dim=8, language_hidden=16)
    policy.train()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    w0 = policy.language.fuse[0].weight.detach().clone()
    loss = policy.loss(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(w0, policy.language.fuse[0].weight)


def test_plain_policy_ignores_instructions():
    policy = tiny_policy()
    batch = synthetic_batch(4)
    batch["obs"]["instruction"] = ["anything"] * 4
    assert torch.isfinite(policy.loss(batch))


def test_skill_features_encode_keypoints_skill_and_heading():
    f = skill_features([0.1, 0.2, 0.3], None, "pick", 0.0, 0.0)
    assert np.array_equal(f["kp_pick_pos"], f["kp_place_pos"]) and f["kite_skill"].tolist() == [1.0, 0.0]
    g = skill_features([0.1, 0.2, 0.3], [0.0, -0.1, 0.05], "stack", np.pi / 2 + 0.1, 0.1)
    assert g["kite_skill"].tolist() == [0.0, 1.0] and g["kp_place_pos"][1] == np.float32(-0.1)
    assert np.allclose(g["kite_heading"][:2], g["kite_heading"][2:], atol=1e-6)   # cubes repeat every 90 deg
    assert kind_of_steps(["pick"]) == "pick" and kind_of_steps(["pick", "place"]) == "stack"
    with pytest.raises(ValueError):
        kind_of_steps(["place"])
    with pytest.raises(ValueError):
        skill_features([0, 0, 0], None, "tower", 0.0, 0.0)
    assert SKILL_KINDS == ("pick", "stack")
    half = np.sin(0.35), np.cos(0.35)            # 0.7 rad about z, as xyzw
    assert np.isclose(yaw_of_quat_xyzw([0, 0, half[0], half[1]]), 0.7)


def test_checkpoint_written_before_the_language_fields_still_loads(tmp_path):
    """Checkpoints state every config field; the language fields came later, so one without them loads
    as the plain policy it was trained as (and a missing older field is still an error)."""
    save_checkpoint(tiny_policy(), tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    data = json.loads(path.read_text())
    for name in ("language_conditioning", "instruction_vocab", "language_dim", "language_hidden"):
        del data["config"][name]
    path.write_text(json.dumps(data))
    assert load_policy(tmp_path / "old", "cpu").language is None
    del data["config"]["kernel_size"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="kernel_size"):
        load_policy(tmp_path / "old", "cpu")
