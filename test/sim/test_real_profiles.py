"""RealSideEnv = RandomizedEnv's seed-derived scene draw, then the profile's fixed object biases."""
import numpy as np
import pytest

pytestmark = pytest.mark.sim


def test_real_side_env_is_the_scene_draw_plus_the_object_biases():
    from sim.envs import make_env
    from sim.real_profiles import RealSideEnv, load_profile

    p = load_profile("real_lift")
    env = RealSideEnv(make_env("lift"), p)
    try:
        m = env.robosuite_env.sim.model._model
        env.reset(seed=5)
        mass, friction = m.body_mass.copy(), m.geom_friction.copy()
        fb = env.randomizer.free_bodies
        assert len(fb) == 1 and len(env._object_geoms) >= 1          # the cube
        env.randomizer.apply(np.random.default_rng([5, 0x5EED]))     # the draw alone
        np.testing.assert_allclose(mass[fb], m.body_mass[fb] * p.object_mass_scale)
        np.testing.assert_allclose(friction[env._object_geoms, 0], m.geom_friction[env._object_geoms, 0] * p.object_friction_scale)
        others = np.setdiff1d(np.arange(m.nbody), fb)
        np.testing.assert_array_equal(mass[others], m.body_mass[others])
        env.reset(seed=5)                                            # the same seed, the same scene
        np.testing.assert_array_equal(m.body_mass, mass)
    finally:
        env.close()
