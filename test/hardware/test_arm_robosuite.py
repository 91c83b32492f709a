"""The shipped Panda URDF's forward kinematics against the robosuite Panda the policies were trained on."""
import numpy as np
import pytest

from hardware.arms.kinematics import Kinematics
from hardware.arms.rotations import quat_to_matrix, rotation_error

pytestmark = pytest.mark.sim


def test_fk_matches_robosuite_grip_site_for_random_joint_configurations():
    from sim.envs import make_env
    kin = Kinematics()
    rng = np.random.default_rng(0)
    with make_env("lift", seed=0) as env:
        env.reset(seed=0)
        rs = env._env
        robot = rs.robots[0]
        idx = robot._ref_joint_pos_indexes
        pos_err, rot_err = [], []
        for _ in range(30):
            q = rng.uniform(kin.lower, kin.upper)
            rs.sim.data.qpos[idx] = q
            rs.sim.forward()
            obs = env._convert_obs(rs._get_observations(force_update=True))
            p, R = kin.fk(q)
            pos_err.append(np.linalg.norm(p - obs["robot0_eef_pos"]))
            rot_err.append(np.linalg.norm(rotation_error(R, quat_to_matrix(obs["robot0_eef_quat"]))))
    # robosuite's hand sits 0.1065 m along link7's z, franka_description's 0.107: 0.5 mm apart by design
    assert max(pos_err) < 1e-3, f"grip site off by up to {max(pos_err) * 1e3:.2f} mm"
    assert max(rot_err) < 1e-3, f"orientation off by up to {max(rot_err):.4f} rad"


def test_osc_scaling_equals_robosuites_own_controller():
    """The adapter's scales come from robosuite's JSON and match what its OSC controller computes."""
    from hardware.arms.scaling import load_osc_scaling
    from sim.envs import make_env
    scaling = load_osc_scaling()
    assert scaling.max_step == (0.05, 0.5)      # robosuite 1.5.2 default_panda.json, as docs/ros2.md says
    rng = np.random.default_rng(1)
    with make_env("lift", seed=0) as env:
        ctrl = env._env.robots[0].part_controllers["right"]
        assert type(ctrl).__name__ == "OperationalSpaceController"
        for _ in range(50):
            a = rng.uniform(-2.0, 2.0, 6)        # out-of-range values too: both clip to [-1, 1]
            np.testing.assert_allclose(scaling.scale(a), ctrl.scale_action(a), atol=1e-12)
