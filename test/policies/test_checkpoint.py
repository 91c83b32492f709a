"""Checkpoint folders: bit-exact round trip, atomic replace, clear errors, registry, default policy."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import policy_stack
from policy_stack import checkpoint as ckpt
from policy_stack.checkpoint import (load_checkpoint, optimizer_state_from_tensors, optimizer_state_to_tensors,
                                     save_checkpoint)
from policy_stack.policies import REGISTRY, get_policy_classes, make_policy, register_policy
from policy_stack.policies.diffusion import DiffusionConfig, DiffusionPolicy
from test_diffusion_common import ACTION_SPACE, one_obs, synthetic_batch, synthetic_stats, tiny_image_policy, tiny_policy


def _perturb(policy):
    """Make weights differ from a fresh init so the round trip proves the weights were loaded."""
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))


@pytest.mark.parametrize("factory", [tiny_policy, tiny_image_policy])
def test_round_trip_is_bit_exact(tmp_path, factory):
    policy = factory(sampler="rti")
    _perturb(policy)
    folder = save_checkpoint(policy, tmp_path / "ck", meta={"step": 7})
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "normalization.json"}
    loaded = load_checkpoint(folder, device="cpu")
    assert loaded.meta == {"step": 7} and loaded.train_state is None
    again = loaded.policy
    assert isinstance(again, DiffusionPolicy) and again.config.sampler == "rti"
    for (k, a), (k2, b) in zip(policy.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    cams = tuple(policy.config.cameras)
    for p in (policy, again):
        p.reset(seed=11)
    for i in range(3):   # includes RTI warm-started ticks
        assert np.array_equal(policy.act(one_obs(i, cams)), again.act(one_obs(i, cams)))


def test_train_state_and_optimizer_round_trip(tmp_path):
    policy = tiny_policy()
    opt = policy.make_optimizer()
    policy.loss(synthetic_batch(4)).backward()
    opt.step()
    tensors, opt_meta = optimizer_state_to_tensors(opt)
    raw = {f"raw.{k}": v for k, v in policy.state_dict().items()}
    save_checkpoint(policy, tmp_path / "ck", extra_tensors={**tensors, **raw}, meta={"step": 1, "optimizer": opt_meta})
    loaded = load_checkpoint(tmp_path / "ck", device="cpu", load_train_state=True)
    opt2 = loaded.policy.make_optimizer()
    optimizer_state_from_tensors(opt2, loaded.train_state, loaded.meta["optimizer"])
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"][0]["lr"] == s2["param_groups"][0]["lr"]
    for pid in s1["state"]:
        assert torch.equal(s1["state"][pid]["exp_avg"], s2["state"][pid]["exp_avg"])
    assert torch.equal(loaded.train_state["raw.unet.final_conv.1.weight"], policy.unet.final_conv[1].weight)


def test_save_replaces_atomically(tmp_path):
    policy = tiny_policy()
    save_checkpoint(policy, tmp_path / "ck", meta={"step": 1})
    save_checkpoint(policy, tmp_path / "ck", meta={"step": 2})
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["meta"]["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temp or old folders left behind


def test_failed_save_leaves_previous_checkpoint(tmp_path):
    policy = tiny_policy()
    save_checkpoint(policy, tmp_path / "ck", meta={"step": 1})
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(policy, tmp_path / "ck", meta={"bad": object()})
    assert load_checkpoint(tmp_path / "ck", device="cpu").meta == {"step": 1}


@pytest.mark.parametrize("fname", ["config.json", "model.safetensors", "normalization.json"])
def test_missing_file_is_named(tmp_path, fname):
    save_checkpoint(tiny_policy(), tmp_path / "ck")
    (tmp_path / "ck" / fname).unlink()
    with pytest.raises(FileNotFoundError, match=fname):
        load_checkpoint(tmp_path / "ck", device="cpu")


@pytest.mark.parametrize("fname", ["config.json", "model.safetensors", "normalization.json"])
def test_corrupt_file_is_named(tmp_path, fname):
    save_checkpoint(tiny_policy(), tmp_path / "ck")
    path = tmp_path / "ck" / fname
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=fname):
        load_checkpoint(tmp_path / "ck", device="cpu")


def test_weights_not_matching_config_are_reported(tmp_path):
    save_checkpoint(tiny_policy(), tmp_path / "ck")
    cfg_path = tmp_path / "ck" / "config.json"
    data = json.loads(cfg_path.read_text())
    data["config"]["down_dims"] = [16, 48]
    cfg_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="model.safetensors"):
        load_checkpoint(tmp_path / "ck", device="cpu")
    data["config"]["no_such_field"] = 1
    cfg_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no_such_field"):
        load_checkpoint(tmp_path / "ck", device="cpu")


def test_load_policy_default_missing_is_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "DEFAULT_CHECKPOINT", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="default policy"):
        policy_stack.load_policy()
    with pytest.raises(FileNotFoundError, match="not found"):
        policy_stack.load_policy(tmp_path / "also_missing")


def test_load_policy_from_folder(tmp_path):
    save_checkpoint(tiny_policy(), tmp_path / "ck")
    policy = policy_stack.load_policy(tmp_path / "ck", device="cpu")
    assert policy.act(one_obs()).shape == (8, 7)


def test_registry():
    assert REGISTRY["diffusion"] == (DiffusionConfig, DiffusionPolicy)
    assert get_policy_classes("diffusion")[1] is DiffusionPolicy
    with pytest.raises(ValueError, match="unknown policy type"):
        get_policy_classes("no_such_policy")
    register_policy("diffusion", DiffusionConfig, DiffusionPolicy)  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        register_policy("diffusion", DiffusionConfig, type("Other", (DiffusionPolicy,), {}))
    policy = make_policy("diffusion", {"down_dims": [16, 32], "step_embed_dim": 16, "device": "cpu"},
                         synthetic_stats(), ACTION_SPACE)
    assert policy.config.down_dims == (16, 32)
