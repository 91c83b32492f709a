"""EBT-Policy: energy descent, training through the unrolled optimization, the Policy interface,
checkpoints. Tiny models, one thread (the CI box is shared)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from policy_stack.checkpoint import load_checkpoint, save_checkpoint
from policy_stack.normalize import stats_from_arrays
from policy_stack.policies import get_policy_classes, make_policy
from policy_stack.policies.ebt import EBTConfig, EBTPolicy, EnergyDescent, langevin_sigma, shift_warm_start
from policy_stack.spaces import ActionSpace

torch.set_num_threads(1)

TO, TP, TA = 2, 8, 4
ACTION_SPACE = ActionSpace(names=["dx", "dy", "dz", "gripper"], low=[-1.0] * 4, high=[1.0] * 4,
                           kind="eef_delta", discrete=[3])


def tiny_config(**overrides) -> EBTConfig:
    kw = dict(lowdim_keys=["robot0_eef_pos", "cube_pos"], derived_features=["robot0_eef_pos-cube_pos"],
              n_obs_steps=TO, horizon=TP, n_action_steps=TA, d_model=32, n_layers=1, obs_layers=1, n_heads=4,
              mlp_ratio=2.0, device="cpu", ema={"power": 0.75})
    kw.update(overrides)
    return EBTConfig(**kw)


def expert(eef: np.ndarray, cube: np.ndarray) -> np.ndarray:
    """Deterministic demo chunk (.., TP, 4) from the newest observation: move towards the cube with a
    speed that decays along the chunk, close the gripper when near."""
    delta = np.clip(2.0 * (cube - eef), -1, 1)
    decay = np.linspace(1.0, 0.3, TP)[:, None]
    move = delta[..., None, :] * decay
    near = (np.linalg.norm(cube - eef, axis=-1) < 0.3)[..., None, None]
    grip = np.where(near, 1.0, -1.0) * np.ones(move.shape[:-1] + (1,))
    return np.concatenate([move, grip], axis=-1).astype(np.float32)


def make_batch(rng: np.random.Generator, n: int) -> dict:
    eef = rng.uniform(-0.5, 0.5, (n, 3)).astype(np.float32)
    cube = rng.uniform(-0.5, 0.5, (n, 3)).astype(np.float32)
    hist = lambda x: np.repeat(x[:, None], TO, axis=1)   # noqa: E731  (static scene: history repeats)
    return {"obs": {"robot0_eef_pos": hist(eef), "cube_pos": hist(cube)}, "action": expert(eef, cube)}


def stats() -> dict:
    big = make_batch(np.random.default_rng(123), 4096)
    return stats_from_arrays({"robot0_eef_pos": big["obs"]["robot0_eef_pos"][:, 0],
                              "cube_pos": big["obs"]["cube_pos"][:, 0],
                              "action": big["action"].reshape(-1, 4)})


def new_policy(**overrides) -> EBTPolicy:
    torch.manual_seed(0)
    return make_policy("ebt", tiny_config(**overrides), stats(), ACTION_SPACE)


def one_obs(rng=None) -> dict:
    rng = rng or np.random.default_rng(0)
    return {"robot0_eef_pos": rng.uniform(-0.5, 0.5, 3).astype(np.float32),
            "cube_pos": rng.uniform(-0.5, 0.5, 3).astype(np.float32)}


@pytest.fixture(scope="module")
def trained():
    """A tiny policy trained for a few hundred steps on the synthetic expert, with its loss curve."""
    policy = new_policy()
    policy.train()
    opt = policy.config.optimizer_preset().build(policy.parameters())
    for group in opt.param_groups:
        group["lr"] = 2e-3
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(250):
        loss = policy.loss(make_batch(rng, 32))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), policy.config.grad_clip)
        opt.step()
        losses.append(float(loss))
    policy.eval()
    return policy, losses


# ------------------------------------------------------------------------------------ descent
def test_descent_lowers_energy_of_untrained_network():
    """Plain gradient descent (no momentum, small steps) must lower a smooth energy at every step and
    for every sample: catches a sign error or a step taken on the wrong tensor."""
    policy = new_policy(momentum=0.0, step_size=0.5, energy_exp_max=0.0)
    obs = policy.preprocess(make_batch(np.random.default_rng(0), 16)["obs"])
    with torch.no_grad():
        cond = policy.encode(obs)
        x = torch.rand(16, TP, 4) * 1.6 - 0.8     # inside the box: clamping does not interfere
        energies = [policy.energy(cond, x)]
        for _ in range(4):
            x = policy.optimize(cond, x, max_steps=1).actions
            energies.append(policy.energy(cond, x))
    e = torch.stack(energies)                     # (steps+1, B)
    assert torch.all(e[1:] < e[:-1]), (e[:, :4])


def test_energy_scaled_step_is_capped():
    """alpha*exp(E) with a huge energy must not produce a huge update: exp is capped and every element's
    change is softly limited to max_step_change."""
    d = EnergyDescent(step_size=1e3, learnable=True, energy_temp=1.0, energy_exp_max=5.0, max_step_change=0.3,
                      momentum=0.0)
    energy_fn = lambda a: 1e4 + 50.0 * (a ** 2).sum(dim=(1, 2))   # noqa: E731
    x0 = torch.full((2, TP, 4), 0.9)
    out = d.optimize(energy_fn, x0, max_steps=1, min_grad=0.0, min_energy_delta=0.0).actions
    assert torch.isfinite(out).all()
    assert (x0 - out).abs().max() <= 0.3 + 1e-6


def test_early_stop_on_flat_energy():
    d = EnergyDescent(1.0, False, 1.0, 5.0, 0.5, 0.9)
    trace = d.optimize(lambda a: a.sum(dim=(1, 2)) * 0.0, torch.zeros(3, TP, 4), max_steps=4, min_grad=1e-3,
                       min_energy_delta=0.0)
    assert trace.steps == 1 and trace.stopped_early


def test_langevin_schedule_anneals():
    sig = [langevin_sigma(i, 4, 0.002, 0.2) for i in range(4)]
    assert sig[0] == pytest.approx(0.2) and all(a > b for a, b in zip(sig, sig[1:])) and sig[-1] > 0.002


@pytest.mark.parametrize("detach", [True, False])
def test_unrolled_training_reaches_every_parameter(detach):
    """create_graph=True: the loss gradient reaches the energy weights through dE/da, and the learnable
    step size gets a gradient too (in EBT-Policy it silently did not)."""
    policy = new_policy(detach_between_steps=detach, train_steps=2, train_steps_random=0)
    policy.train()
    loss = policy.loss(make_batch(np.random.default_rng(0), 8))
    loss.backward()
    grads = {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}
    assert policy.descent.log_step_size.grad is not None and policy.descent.log_step_size.grad.abs() > 0
    head = grads["energy.head.weight"]
    assert head is not None and torch.isfinite(head).all() and head.abs().sum() > 0
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())


def test_loss_works_under_no_grad():
    policy = new_policy()
    with torch.no_grad():
        loss = policy.loss(make_batch(np.random.default_rng(0), 4))
    assert torch.isfinite(loss)


# ------------------------------------------------------------------------------------ training
def test_loss_falls_on_synthetic_data(trained):
    _, losses = trained
    first, last = np.mean(losses[:10]), np.mean(losses[-20:])
    assert last < 0.35 * first, (first, last)


def test_trained_descent_lowers_energy_and_finds_the_demo(trained):
    policy, _ = trained
    batch = make_batch(np.random.default_rng(7), 64)
    target = policy.normalize_action(torch.as_tensor(batch["action"]))
    with torch.no_grad():
        cond = policy.encode(policy.preprocess(batch["obs"]))
        x0 = torch.rand(target.shape) * 2 - 1
        out = policy.optimize(cond, x0).actions
        e0, e1 = policy.energy(cond, x0), policy.energy(cond, out)
    assert (e1 < e0).float().mean() > 0.9        # the descent goes downhill on the learned landscape
    err0 = ((x0 - target) ** 2).mean()
    err1 = ((out - target) ** 2).mean()
    assert err1 < 0.25 * err0, (float(err0), float(err1))


# ------------------------------------------------------------------------------------ interface
def test_registered():
    assert get_policy_classes("ebt") == (EBTConfig, EBTPolicy)


def test_act_shapes_bounds_info():
    policy = new_policy()
    rng = np.random.default_rng(3)
    policy.reset(seed=1)
    for _ in range(3):
        chunk = policy.act(one_obs(rng))
        assert chunk.shape == (TA, 4) and chunk.dtype == np.float32
        assert np.isfinite(chunk).all()
        assert np.all(chunk >= -1) and np.all(chunk <= 1)
        assert set(np.unique(chunk[:, 3])) <= {-1.0, 1.0}     # gripper binarized
        info = policy.info
        assert 1 <= info["steps"] <= policy.config.infer_steps
        assert np.isfinite(info["uncertainty"]) and info["latency_ms"] > 0
    assert info["warm_start"] is True


def test_warm_start_shift_and_pad():
    chunk = torch.arange(TP, dtype=torch.float32)[None, :, None].repeat(1, 1, 2)
    out = shift_warm_start(chunk, TA)
    assert out[0, :, 0].tolist() == list(range(TA, TP)) + [TP - 1] * TA
    assert torch.equal(shift_warm_start(chunk, 0), chunk)


def test_act_warm_starts_from_shifted_previous_chunk():
    policy = new_policy()
    starts = []
    original = policy.optimize

    def spy(cond, x0, max_steps=None):
        starts.append(x0.clone())
        return original(cond, x0, max_steps)

    policy.optimize = spy
    policy.reset(seed=0)
    policy.act(one_obs())
    first_solution = policy._warm.clone()
    assert policy.info["warm_start"] is False
    for _ in range(TA - 1):            # the chunk's remaining executed steps, observed without planning
        policy.observe(one_obs())
    policy.act(one_obs())
    assert policy.info["warm_start"] is True
    assert torch.equal(starts[1], shift_warm_start(first_solution, TA))
    second_solution = policy._warm.clone()
    policy.act(one_obs())              # re-planning every tick: one executed step
    assert torch.equal(starts[2], shift_warm_start(second_solution, 1))
    policy.reset()
    policy.act(one_obs())
    assert policy.info["warm_start"] is False     # reset() clears the warm start


def test_sample_shape_and_range():
    policy = new_policy()
    obs = policy.preprocess(make_batch(np.random.default_rng(0), 3)["obs"])
    out = policy.sample(obs, 5)
    assert out.shape == (3, 5, TP, 4)
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0
    assert not torch.allclose(out[:, 0], out[:, 1])   # n distinct random starts


@pytest.mark.parametrize("mutate, key", [
    (lambda o: o.pop("cube_pos"), "cube_pos"),
    (lambda o: o.__setitem__("robot0_eef_pos", np.zeros(4, np.float32)), "robot0_eef_pos"),
    (lambda o: o.__setitem__("cube_pos", np.zeros(3, np.int64)), "cube_pos"),
    (lambda o: o.__setitem__("cube_pos", np.array([0.0, np.nan, 0.0], np.float32)), "cube_pos"),
])
def test_obs_validation_names_the_key(mutate, key):
    policy = new_policy()
    obs = one_obs()
    mutate(obs)
    with pytest.raises(ValueError, match=key):
        policy.act(obs)


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    policy = new_policy(step_size=3.0)
    with torch.no_grad():   # make alpha differ from its init so the round trip is not vacuous
        policy.descent.log_step_size.add_(0.25)
    save_checkpoint(policy, tmp_path / "ebt")
    loaded = load_checkpoint(tmp_path / "ebt", device="cpu").policy
    assert isinstance(loaded, EBTPolicy)
    a, b = policy.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    policy.reset(seed=5)
    loaded.reset(seed=5)
    for _ in range(2):
        obs = one_obs()
        np.testing.assert_array_equal(policy.act(obs), loaded.act(obs))
    assert policy.info["uncertainty"] == loaded.info["uncertainty"]


# ------------------------------------------------------------------------------------ ONNX
@pytest.mark.slow
def test_onnx_energy_and_gradient_match_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from policy_stack.policies.ebt.onnx import ENCODER_FILE, ENERGY_GRAD_FILE, export_onnx

    policy = new_policy()
    export_onnx(policy, tmp_path, batch=1)
    obs = policy.preprocess(make_batch(np.random.default_rng(0), 1)["obs"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    enc = ort.InferenceSession(str(tmp_path / ENCODER_FILE), opts, providers=["CPUExecutionProvider"])
    eg = ort.InferenceSession(str(tmp_path / ENERGY_GRAD_FILE), opts, providers=["CPUExecutionProvider"])
    (cond,) = enc.run(None, {k: obs[k].numpy() for k in policy.obs_encoder.input_keys})
    with torch.no_grad():
        cond_t = policy.encode(obs)
    np.testing.assert_allclose(cond, cond_t.numpy(), atol=1e-5)
    for seed in range(2):   # a different point each time: the gradient is not a baked constant
        a = torch.rand(1, TP, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        energy, grad = eg.run(None, {"cond": cond_t.numpy(), "actions": a.numpy()})
        a_t = a.clone().requires_grad_(True)
        e_t = policy.energy(cond_t, a_t)
        (g_t,) = torch.autograd.grad(e_t.sum(), a_t)
        np.testing.assert_allclose(energy, e_t.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(grad, g_t.numpy(), atol=1e-6, rtol=1e-4)


def test_rgbd_policy_acts_and_trains():
    """Camera path: per-step RGB-D features become condition tokens like low-dim ones."""
    policy = new_policy(cameras=["agentview"], image_shape=(16, 16), crop_shape=(12, 12),
                        vision_channels=(16, 16, 16), num_keypoints=4, camera_feature_dim=8)
    rng = np.random.default_rng(0)
    obs = one_obs(rng)
    obs["agentview_rgb"] = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)     # resized to 16x16
    obs["agentview_depth"] = rng.uniform(0.2, 1.5, (20, 20)).astype(np.float32)
    chunk = policy.act(obs)
    assert chunk.shape == (TA, 4) and np.isfinite(chunk).all()
    batch = make_batch(rng, 2)
    batch["obs"]["agentview_rgb"] = rng.integers(0, 255, (2, TO, 16, 16, 3), dtype=np.uint8)
    batch["obs"]["agentview_depth"] = rng.uniform(0.2, 1.5, (2, TO, 16, 16)).astype(np.float32)
    policy.train()
    loss = policy.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert policy.obs_encoder.camera_encoders["agentview"].project.weight.grad.abs().sum() > 0
