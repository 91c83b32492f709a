"""The arm adapter applies a session's calibration gain AFTER its limits (hardware/arms/adapter.py)."""
import numpy as np
import pytest

from bench.adapter_plant import Plant
from hardware.arms import adapter as A
from hardware.arms.limits import ROBOSUITE_TABLE_WORKSPACE, MotionLimits
from hardware.arms.scaling import load_osc_scaling

TICK = 0.02


def _core(backend="servo", gain=(1.0,) * 6, **limits):
    lim = MotionLimits(*ROBOSUITE_TABLE_WORKSPACE, **limits)
    cfg = A.AdapterConfig(backend=backend, rate_hz=1.0 / TICK, limits=lim, calibration_gain=tuple(gain))
    return A.ArmAdapterCore(cfg, load_osc_scaling(), None)


def _twist(core, action):
    plant = Plant(core)
    t = 20.0
    core.on_chunk(t, 0.05, np.tile(action, (8, 1)), t)
    plant.feed(t)
    return core.tick(t).twist


def test_servo_twist_is_divided_by_the_gain_per_axis():
    free = dict(max_linear_speed=5.0, max_angular_speed=50.0, max_linear_accel=1e3, max_angular_accel=1e4)
    action = np.array([0.2, -0.1, 0.1, 0.0, 0.0, 0.04, -1.0])
    v0, w0 = _twist(_core(**free), action)
    gain = [0.5, 0.6, 0.4, 0.8, 0.8, 0.8]
    v, w = _twist(_core(gain=gain, **free), action)
    np.testing.assert_allclose(v, np.asarray(v0) / gain[:3], rtol=1e-9)
    np.testing.assert_allclose(w, np.asarray(w0) / gain[3:], rtol=1e-9)


def test_the_speed_limit_holds_for_the_motion_the_arm_makes():
    """Speed-limited command (0.25 m/s): an arm with gain g is sent 0.25/g, so it moves at 0.25 m/s; an arm
    that over-tracks (g > 1) is sent less, never more than the limit times its gain."""
    for g in (0.5, 2.0):
        core = _core(gain=[g, g, g, 1, 1, 1], max_linear_accel=1e3)
        v, _ = _twist(core, np.array([1.0, 0, 0, 0, 0, 0, -1.0]))     # 1 m/s asked
        assert np.linalg.norm(v) * g == pytest.approx(core.config.limits.max_linear_speed, rel=1e-6)


def test_bad_gains_and_target_backends_are_refused():
    with pytest.raises(ValueError, match="6 positive"):
        _core(gain=[1, 1, 1, 1, 1, 0])
    with pytest.raises(ValueError, match="only the servo backend"):
        _core(backend="pose", gain=[0.5, 1, 1, 1, 1, 1])
    _core(backend="pose")          # all ones: no correction, any backend
