"""The calibration fit (policy_stack/session/calibration.py) on synthetic probe data: no ROS, no sim."""
import numpy as np
import pytest

from policy_stack.session.calibration import fit_axis_gain, gain_arg


def _probes(gain, noise, rng, repeats=3):
    """One probe per axis and sign: the training side moves ~2 cm / 0.07 rad along the probed axis with a
    little cross-talk; the real side moves gain x that, plus measurement noise."""
    rows = []
    for _ in range(repeats):
        for axis in range(6):
            for sign in (1, -1):
                d = rng.normal(0, 0.0005, 6)
                d[axis] = sign * (0.02 if axis < 3 else 0.07)
                rows.append(d)
    sim = np.array(rows)
    real = sim * np.asarray(gain) + rng.normal(0, noise, sim.shape)
    return sim, real


def test_fit_recovers_a_known_per_axis_gain():
    rng = np.random.default_rng(0)
    true = [0.5, 0.6, 0.4, 0.8, 1.2, 0.9]
    sim, real = _probes(true, noise=0.0003, rng=rng)
    fit = fit_axis_gain(sim, real)
    assert np.allclose(fit["gain"], true, rtol=0.03), fit
    assert all(fit["measured"]) and min(fit["r2"]) > 0.98
    assert fit["probes"] == len(sim)
    assert gain_arg(fit["gain"]).count(",") == 5


def test_an_unexcited_axis_keeps_gain_one_and_a_broken_arm_is_refused():
    rng = np.random.default_rng(1)
    sim, real = _probes([0.5] * 6, noise=0.0, rng=rng)
    sim[:, 5] = real[:, 5] = 0.0                     # yaw never probed
    fit = fit_axis_gain(sim, real)
    assert fit["measured"][5] is False and fit["gain"][5] == 1.0
    assert np.allclose(fit["gain"][:5], 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="axis x gain"):
        fit_axis_gain(sim, np.zeros_like(sim))       # the real arm never moved
    with pytest.raises(ValueError, match="must both be"):
        fit_axis_gain(sim, real[:, :3])
