"""DiffusionPolicy: training signal, act() contract, obs validation, RTI through the policy, images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from policy_stack.nn import ConditionalUnet1D, EMAModel, TransformerBlock, causal_mask, crop_images
from policy_stack.normalize import Normalizer
from policy_stack.policies import make_policy
from policy_stack.policies.diffusion import DiffusionConfig
from test_diffusion_common import (ACTION_SPACE, one_obs, synthetic_batch, synthetic_stats, tiny_config,
                                   tiny_image_policy, tiny_policy)


def test_loss_falls_on_synthetic_data():
    policy = tiny_policy()
    policy.train()
    opt = policy.config.optimizer_preset().build(policy.parameters())
    for g in opt.param_groups:
        g["lr"] = 3e-3  # tiny net, few steps
    torch.manual_seed(0)
    batches = [synthetic_batch(32, seed=s) for s in range(8)]
    losses = []
    for step in range(200):
        loss = policy.loss(batches[step % 8])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last < 0.7 * first, (first, last)  # typically ~0.5x here; ε-MSE is noisy


def test_loss_masks_padded_steps():
    policy = tiny_policy()
    batch = synthetic_batch(4)
    no_mask = {k: v for k, v in batch.items() if k != "action_is_pad"}
    torch.manual_seed(0)
    plain = policy.loss(no_mask)
    torch.manual_seed(0)
    all_valid = policy.loss(batch)
    assert torch.allclose(plain, all_valid)
    batch["action_is_pad"][:] = True
    assert policy.loss(batch).item() == 0.0   # nothing valid: no signal, and no NaN from 0/0


def test_act_shape_bounds_and_binary_gripper():
    policy = tiny_policy()
    policy.reset(seed=0)
    for i in range(3):
        chunk = policy.act(one_obs(i))
        assert chunk.shape == (8, 7) and chunk.dtype == np.float32
        assert np.all(np.isfinite(chunk)) and np.all(np.abs(chunk) <= 1.0)
        assert set(np.unique(chunk[:, 6])) <= {-1.0, 1.0}
    info = policy.info
    assert info["sampler"] == "ddim" and info["steps"] == 10 and info["latency_ms"] > 0


def test_act_is_seeded_and_history_resets():
    policy = tiny_policy()
    policy.reset(seed=3)
    a = [policy.act(one_obs(i)) for i in range(2)]
    policy.reset(seed=3)
    b = [policy.act(one_obs(i)) for i in range(2)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(policy._history) == policy.config.n_obs_steps


def test_first_tick_pads_history_by_repeating():
    policy = tiny_policy()
    policy.reset(seed=0)
    policy.act(one_obs(5))
    first, second = policy._history
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("mutate, key, message", [
    (lambda o: o.pop("cube_pos"), "cube_pos", "missing"),
    (lambda o: o.__setitem__("robot0_eef_pos", np.zeros(4, np.float32)), "robot0_eef_pos", "shape"),
    (lambda o: o.__setitem__("robot0_gripper_qpos", np.zeros(2, np.int64)), "robot0_gripper_qpos", "dtype"),
    (lambda o: o.__setitem__("robot0_eef_quat", np.array([np.nan, 0, 0, 1], np.float32)), "robot0_eef_quat", "NaN"),
    (lambda o: o.__setitem__("cube_pos", np.array([np.inf, 0, 0], np.float32)), "cube_pos", "Inf"),
])
def test_obs_validation_names_the_key(mutate, key, message):
    policy = tiny_policy()
    obs = one_obs()
    mutate(obs)
    with pytest.raises(ValueError, match=message) as err:
        policy.act(obs)
    assert repr(key) in str(err.value)


def test_float64_lowdim_is_accepted():
    policy = tiny_policy()
    obs = {k: v.astype(np.float64) for k, v in one_obs().items()}
    assert policy.act(obs).shape == (8, 7)


def test_derived_feature_is_gripper_to_object_vector():
    policy = tiny_policy()
    obs = one_obs()
    raw = {k: torch.as_tensor(v)[None, None] for k, v in obs.items()}
    norm = policy.preprocess(raw)
    name = "robot0_eef_pos-cube_pos"
    expected = policy.normalizer.normalize(name, torch.as_tensor(obs["robot0_eef_pos"] - obs["cube_pos"]))
    assert torch.allclose(norm[name][0, 0], expected)
    assert norm[name].abs().max() <= 1.0 + 1e-6


def test_sample_returns_n_normalized_candidates():
    policy = tiny_policy()
    obs_norm = policy.preprocess(synthetic_batch(3)["obs"])
    out = policy.sample(obs_norm, 4)
    assert out.shape == (3, 4, 16, 7) and out.abs().max() <= 1.0 + 1e-6


def test_rti_through_policy_counts_and_reset():
    policy = tiny_policy(sampler="rti", rti_steps=2, rti_start_level=3)
    policy.reset(seed=0)
    policy.act(one_obs(0))
    assert policy.info["steps"] == 10 and not policy.info["warm_start"]
    policy.act(one_obs(1))
    assert policy.info["steps"] == 2 and policy.info["warm_start"]
    policy.reset()
    policy.act(one_obs(2))
    assert policy.info["steps"] == 10


def test_set_sampler_switches_and_validates():
    policy = tiny_policy()
    policy.set_sampler("ddpm", 20)
    policy.act(one_obs())
    assert policy.info == {**policy.info, "sampler": "ddpm", "steps": 20}
    policy.set_sampler("rti", 3)
    assert policy.sampler.timesteps == [10, 5, 0]            # default K'=10, jump mode
    policy.set_sampler("rti", 3, start_level=3)
    assert policy.sampler.timesteps == [3, 2, 0]
    with pytest.raises(ValueError):
        policy.set_sampler("euler")
    assert policy.config.sampler == "rti"


def test_non_finite_network_output_never_returned():
    policy = tiny_policy()
    with torch.no_grad():
        for p in policy.unet.final_conv.parameters():
            p.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="NaN"):
        policy.act(one_obs())


def test_config_validation():
    with pytest.raises(ValueError, match="horizon"):
        DiffusionConfig(horizon=10, down_dims=(16, 32, 64))
    with pytest.raises(ValueError, match="sampler"):
        DiffusionConfig(sampler="euler")
    with pytest.raises(ValueError, match="obs_spec"):
        make_policy("diffusion", tiny_config(), synthetic_stats(), ACTION_SPACE, obs_spec={})


def test_image_policy_act_loss_and_crop():
    policy = tiny_image_policy()
    obs = one_obs(0, cameras=("agentview",), image_hw=(30, 40))   # resized to 24x24 inside
    obs["agentview_depth"] = (obs["agentview_depth"] * 1000).astype(np.uint16)  # millimetres also accepted
    assert policy.act(obs).shape == (8, 7)
    policy.train()
    loss = policy.loss(synthetic_batch(2, cameras=("agentview",)))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in policy.obs_encoder.parameters()]
    assert all(g is not None for g in grads)
    bad = one_obs(0, cameras=("agentview",))
    bad["agentview_rgb"] = bad["agentview_rgb"].astype(np.float32)
    with pytest.raises(ValueError, match="agentview_rgb"):
        policy.act(bad)


def test_crop_random_in_training_center_at_eval():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    center = crop_images(x, (4, 4), random=False)
    assert torch.equal(center, x[:, :, 1:5, 1:5])
    rand = crop_images(x, (4, 4), random=True, generator=torch.Generator().manual_seed(0))
    assert rand.shape == (2, 1, 4, 4)
    # every random crop is a contiguous window of its own image
    for b in range(2):
        top, left = divmod(int(rand[b, 0, 0, 0] - x[b, 0, 0, 0]), 6)
        assert torch.equal(rand[b], x[b, :, top:top + 4, left:left + 4])


def test_normalizer_constant_dims_and_json_roundtrip(tmp_path):
    stats = {"a": {"min": [0.0, 5.0], "max": [2.0, 5.0]}, "q_quat": {"min": [-1.0], "max": [1.0]}}
    norm = Normalizer(stats)
    x = torch.tensor([[0.0, 5.0], [2.0, 5.0]])
    y = norm.normalize("a", x)
    assert torch.allclose(y, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    assert torch.allclose(norm.unnormalize("a", y), x)
    norm.save_json(tmp_path / "n.json")
    again = Normalizer.load_json(tmp_path / "n.json")
    assert torch.equal(again.normalize("a", x), y)
    depth = norm.normalize_depth(torch.tensor([[0, 1000, 5000]], dtype=torch.int32))
    assert torch.allclose(depth[0, 0], torch.tensor([0.0, 0.5, 1.0]))


def test_unet_shapes_and_building_blocks():
    net = ConditionalUnet1D(7, 10, down_dims=(16, 32, 64), step_embed_dim=16)
    out = net(torch.randn(3, 16, 7), torch.tensor([0, 5, 99]), torch.randn(3, 10))
    assert out.shape == (3, 16, 7)
    block = TransformerBlock(32, n_heads=4, cross_attention=True, context_dim=12)
    y = block(torch.randn(2, 5, 32), torch.randn(2, 3, 12), self_mask=causal_mask(5))
    assert y.shape == (2, 5, 32)


def test_ema_tracks_with_dp_decay():
    model = torch.nn.Linear(2, 2)
    ema = EMAModel(model)
    assert ema.decay(0) == 0.0 and ema.decay(10_001) == pytest.approx(0.999, abs=2e-4)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.step(model)  # decay 0: copies
    assert torch.equal(ema.averaged.weight, model.weight)
    state = ema.state_dict()
    other = EMAModel(torch.nn.Linear(2, 2))
    other.load_state_dict(state)
    assert torch.equal(other.averaged.weight, model.weight) and other.optimization_step == 1


def test_observe_keeps_history_contiguous_and_sets_rti_shift():
    """Executing a chunk step by step: observe() the in-between frames; the next act() then sees the
    last To consecutive frames and shifts the warm start by the number of executed steps."""
    policy = tiny_policy(sampler="rti", rti_steps=2, rti_start_level=3)
    policy.reset(seed=0)
    policy.act(one_obs(0))
    shifts = []
    original = policy.sampler.warm_start
    policy.sampler.warm_start = lambda chunk, shift=None: shifts.append(shift) or original(chunk, shift)
    for k in range(1, 4):
        policy.observe(one_obs(k))
    policy.act(one_obs(4))
    assert shifts == [4]
    key = policy.preprocessor.required_keys[0]
    history = [h[key] for h in policy._history]
    assert all(torch.equal(a, torch.as_tensor(one_obs(k)[key])) for a, k in zip(history, (3, 4)))
    policy.act(one_obs(5))             # re-plan on the next tick: one executed step
    assert shifts == [4, 1]
