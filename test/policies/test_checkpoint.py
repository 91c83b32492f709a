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
    opt = policy.config.optimizer_preset().build(policy.parameters())
    policy.loss(synthetic_batch(4)).backward()
    opt.step()
    tensors, opt_meta = optimizer_state_to_tensors(opt)
    raw = {f"raw.{k}": v for k, v in policy.state_dict().items()}
    save_checkpoint(policy, tmp_path / "ck", extra_tensors={**tensors, **raw}, meta={"step": 1, "optimizer": opt_meta})
    loaded = load_checkpoint(tmp_path / "ck", device="cpu", load_train_state=True)
    opt2 = loaded.policy.config.optimizer_preset().build(loaded.policy.parameters())
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
    register_policy("diffusion", DiffusionConfig)(DiffusionPolicy)  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        register_policy("diffusion", DiffusionConfig)(type("Other", (DiffusionPolicy,), {}))
    policy = make_policy("diffusion", {"down_dims": [16, 32], "step_embed_dim": 16, "device": "cpu"},
                         synthetic_stats(), ACTION_SPACE)
    assert policy.config.down_dims == (16, 32)


def test_builtin_registry_lists_only_modules_that_exist():
    import importlib

    from policy_stack.policies.registry import BUILTIN_MODULES
    assert set(BUILTIN_MODULES) == {"diffusion", "ebt", "kite"}
    for name, module in BUILTIN_MODULES.items():
        importlib.import_module(module)
        assert get_policy_classes(name)[1].policy_type == name


def test_registration_needs_a_policy_class():
    with pytest.raises(TypeError, match="does not subclass Policy"):
        register_policy("not_a_policy", DiffusionConfig)(object)


def test_saved_config_states_every_field_and_version(tmp_path):
    import dataclasses
    folder = save_checkpoint(tiny_policy(), tmp_path / "ck")
    data = json.loads((folder / "config.json").read_text())
    assert data["format_version"] == ckpt.FORMAT_VERSION == 2
    assert set(data["config"]) == {f.name for f in dataclasses.fields(DiffusionConfig)}


def _drop_field(folder, field, version):
    path = folder / "config.json"
    data = json.loads(path.read_text())
    del data["config"][field]
    data["format_version"] = version
    path.write_text(json.dumps(data))


def test_version_2_refuses_a_missing_field(tmp_path):
    folder = save_checkpoint(tiny_policy(), tmp_path / "ck")
    _drop_field(folder, "rti_renoise", 2)
    with pytest.raises(ValueError, match="rti_renoise"):
        load_checkpoint(folder, device="cpu")


def test_version_1_still_loads_with_defaults_for_missing_fields(tmp_path):
    policy = tiny_policy(sampler="rti")
    folder = save_checkpoint(policy, tmp_path / "ck")
    _drop_field(folder, "rti_renoise", 1)
    _drop_field(folder, "grad_clip", 1)
    loaded = load_checkpoint(folder, device="cpu").policy
    assert loaded.config.rti_renoise is False and loaded.config.grad_clip == 0.0
    for p in (policy, loaded):
        p.reset(seed=3)
    for i in range(3):
        assert np.array_equal(policy.act(one_obs(i)), loaded.act(one_obs(i)))


def test_unknown_format_version_is_refused(tmp_path):
    folder = save_checkpoint(tiny_policy(), tmp_path / "ck")
    data = json.loads((folder / "config.json").read_text())
    data["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="format_version 99"):
        load_checkpoint(folder, device="cpu")
