"""SimEnv against docs/CONVENTIONS.md: keys, shapes, dtypes, upright images, metric depth, camera model,
seeding, and errors that name the bad value. Uses real robosuite (about 20 s on 2 shared cores)."""
import numpy as np
import pytest

from sim.envs import LANGUAGE_TASKS, TASKS, make_env

CAMERAS = ("agentview", "robot0_eye_in_hand")
RANDOM_ACTIONS = np.random.default_rng(0).uniform(-1, 1, (10, 7))


@pytest.fixture(scope="module")
def cam_env():
    env = make_env("lift", cameras=CAMERAS, image_size=64, depth=True, seed=0)
    yield env
    env.close()


def _run(env, seed):
    obs = env.reset(seed=seed)
    for action in RANDOM_ACTIONS:
        obs, _, _, _ = env.step(action)
    return obs


def test_obs_matches_spec(cam_env):
    obs = cam_env.reset(seed=1)
    spec = cam_env.obs_spec()
    assert set(obs) == set(spec)
    assert {"robot0_joint_pos", "robot0_gripper_qpos", "robot0_eef_pos", "robot0_eef_quat",
            "cube_pos", "cube_quat", "agentview_rgb", "agentview_depth"} <= set(obs)
    for key, feature in spec.items():
        assert obs[key].shape == tuple(feature.shape), key
        assert obs[key].dtype == np.dtype(feature.dtype), key
    for quat_key in ("robot0_eef_quat", "cube_quat"):
        assert np.linalg.norm(obs[quat_key]) == pytest.approx(1.0, abs=1e-4)
    # Step observations have the same layout as reset observations.
    step_obs, reward, done, info = cam_env.step(np.zeros(7))
    assert set(step_obs) == set(spec) and isinstance(info["success"], bool)


def test_depth_is_metres_and_images_upright(cam_env):
    obs = cam_env.reset(seed=2)
    depth, rgb = obs["agentview_depth"], obs["agentview_rgb"]
    assert np.isfinite(depth).all() and depth.min() > 0.3 and depth.max() < 5.0   # a table-top scene
    # agentview looks down at the table from the front: the near table fills the bottom of an upright
    # image (bright, close), the robot and the far room the top (darker, farther).
    assert depth[-8:].mean() < depth[:8].mean() - 0.2
    assert rgb[-8:].mean() > rgb[:8].mean() + 30
    eye = obs["robot0_eye_in_hand_depth"]
    assert 0.0 < eye.min() and eye.max() < 1.0      # the hand camera sees the table ~20-40 cm below


def test_camera_model_projects_cube_onto_its_pixels(cam_env):
    obs = cam_env.reset(seed=3)
    info = cam_env.camera_info("agentview")
    K, T = np.array(info["K"]), np.array(info["T_base_cam"])    # observations are base-frame poses
    assert (info["width"], info["height"]) == (64, 64)
    # fx = fy = (H/2) / tan(fovy/2) for MuJoCo's vertical field of view.
    f = 0.5 * 64 / np.tan(np.deg2rad(info["fovy_deg"]) / 2)
    assert K[0, 0] == pytest.approx(f) and K[1, 1] == pytest.approx(f)
    assert K[0, 2] == pytest.approx(31.5) and K[1, 2] == pytest.approx(31.5)
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6)
    # The cube centre, in the OpenCV camera frame, lies in front of the camera (z > 0) ...
    p_cam = np.linalg.inv(T) @ np.append(obs["cube_pos"], 1.0)
    assert p_cam[2] > 0
    u, v = (K @ p_cam[:3])[:2] / p_cam[2]
    row, col = int(round(v)), int(round(u))
    # ... projects onto red cube pixels, whose depth is the cube's near face (centre - 2 cm or so).
    r, g, b = obs["agentview_rgb"][row, col].astype(int)
    assert r > g + 40 and r > b + 40
    assert obs["agentview_depth"][row, col] == pytest.approx(p_cam[2] - 0.02, abs=0.025)


def test_same_seed_same_trajectory_different_seed_differs(cam_env):
    first, second, other = _run(cam_env, 7), _run(cam_env, 7), _run(cam_env, 8)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert not np.allclose(first["cube_pos"], other["cube_pos"])


def test_seed_given_to_make_env_seeds_first_reset():
    env = make_env("stack", seed=11)
    try:
        first = env.reset()
        again = env.reset(seed=11)
        np.testing.assert_array_equal(first["cubeA_pos"], again["cubeA_pos"])
        np.testing.assert_array_equal(first["robot0_joint_pos"], again["robot0_joint_pos"])
    finally:
        env.close()


@pytest.mark.parametrize("name", ["pick_place_can", "NutAssemblySquare"])
def test_object_keys_per_task(name):
    env = make_env(name, seed=0)
    try:
        obs = env.reset()
        objects = TASKS[env.name].objects
        for obj in objects:
            assert obs[f"{obj}_pos"].shape == (3,) and obs[f"{obj}_quat"].shape == (4,)
        assert env.action_space.dim == 7 and env.action_space.discrete == [6]
        assert env.fps == 20 and env.horizon == TASKS[env.name].default_horizon
        assert isinstance(env.task, str) and env.task
    finally:
        env.close()


def test_unknown_env_name_is_named():
    with pytest.raises(ValueError, match=r"'lfit'.*lift"):
        make_env("lfit")


def test_unknown_camera_name_is_named():
    with pytest.raises(ValueError, match=r"'wristcam'.*robot0_eye_in_hand"):
        make_env("lift", cameras=("agentview", "wristcam"))
    # PickPlaceCan's arena has no sideview camera; the check is per task.
    with pytest.raises(ValueError, match="'sideview'"):
        make_env("pick_place_can", cameras=("sideview",))


def test_randomize_changes_dynamics_per_seed_and_reproduces():
    env = make_env("lift", randomize="strong")
    try:
        model = env.robosuite_env.sim.model._model
        env.reset(seed=1)
        friction_1 = model.geom_friction.copy()
        env.reset(seed=2)
        friction_2 = model.geom_friction.copy()
        env.reset(seed=1)
        assert not np.allclose(friction_1, friction_2)       # a new scene per episode seed...
        assert np.array_equal(model.geom_friction, friction_1)  # ...and the same scene for the same seed
    finally:
        env.close()
    with pytest.raises(ValueError, match="randomize spec"):
        make_env("lift", randomize="nonsense-preset")


def test_bad_action_shape_is_rejected():
    env = make_env("lift", seed=0)
    try:
        env.reset()
        with pytest.raises(ValueError, match="7"):
            env.step(np.zeros(6))
    finally:
        env.close()


def test_poses_are_in_the_robot_base_frame_and_fingers_positive(cam_env):
    """Observations are what a real Franka reports (docs/CONVENTIONS.md): poses relative to the base
    body (panda_link0), both finger joints positive in metres (franka_ros2), not robosuite's world frame."""
    obs = cam_env.reset(seed=4)
    raw = cam_env.privileged_state()["raw_obs"]
    sim = cam_env.robosuite_env.sim
    b = sim.model.body_name2id("robot0_base")
    base_pos = np.asarray(sim.data.body_xpos[b])
    assert np.allclose(base_pos, [-0.56, 0.0, 0.912], atol=1e-6)          # robosuite's Lift table mount
    assert np.allclose(sim.data.body_xquat[b], [1, 0, 0, 0])               # axis-aligned: quats unchanged
    np.testing.assert_allclose(obs["robot0_eef_pos"], raw["robot0_eef_pos"] - base_pos, atol=1e-6)
    np.testing.assert_allclose(obs["cube_pos"], raw["cube_pos"] - base_pos, atol=1e-6)
    np.testing.assert_array_equal(obs["robot0_eef_quat"], raw["robot0_eef_quat"].astype(np.float32))
    # The end-effector point is robosuite's grip site: 0.097 m along the hand's z axis from robot0_right_hand
    # (panda_hand); the hand sits 0.1065 m along link7's z.
    site = sim.model.site_name2id("gripper0_right_grip_site")
    hand = sim.model.body_name2id("robot0_right_hand")
    R_hand = sim.data.body_xmat[hand].reshape(3, 3)
    np.testing.assert_allclose(R_hand.T @ (sim.data.site_xpos[site] - sim.data.body_xpos[hand]), [0, 0, 0.097], atol=1e-9)
    # Its orientation: the hand's rotated by -90 degrees about z (site x = hand -y, site y = hand x).
    R_site = sim.data.site_xmat[site].reshape(3, 3)
    np.testing.assert_allclose(R_hand.T @ R_site, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-6)
    link7 = sim.model.body_name2id("robot0_link7")
    R7 = sim.data.body_xmat[link7].reshape(3, 3)
    np.testing.assert_allclose(R7.T @ (sim.data.body_xpos[hand] - sim.data.body_xpos[link7]), [0, 0, 0.1065], atol=1e-9)
    np.testing.assert_allclose(obs["robot0_eef_pos"], sim.data.site_xpos[site] - base_pos, atol=1e-6)
    # The cube rests on the table: ~0.82 m above the floor in world, ~-0.09 m in the base frame.
    assert -0.1 < obs["cube_pos"][2] < -0.08
    fingers = obs["robot0_gripper_qpos"]
    assert raw["robot0_gripper_qpos"][1] < 0 < raw["robot0_gripper_qpos"][0]   # robosuite: (+q, -q)
    assert (fingers > 0).all() and fingers.max() <= 0.041                      # franka_ros2: (+q, +q), m
    np.testing.assert_array_equal(fingers, np.abs(raw["robot0_gripper_qpos"]).astype(np.float32))


def test_pick_place_can_base_frame_is_read_per_task():
    with make_env("pick_place_can", seed=0) as env:
        obs = env.reset(seed=0)
        raw = env.privileged_state()["raw_obs"]
        assert np.allclose(env.base_frame.pos, [-0.5, -0.1, 0.912], atol=1e-6)   # the bins arena mounts it elsewhere
        np.testing.assert_allclose(obs["can_pos"], raw["Can_pos"] - np.asarray(env.base_frame.pos), atol=1e-6)


def test_hdf5_import_uses_the_sims_base_positions():
    """policy_stack/data/convert_hdf5.py falls back to robosuite 1.5.2's base positions: they are the sim's."""
    from policy_stack.data.convert_hdf5 import ROBOSUITE_BASE_POSITIONS
    for name, task in TASKS.items():
        if name in LANGUAGE_TASKS:     # our own MultiCube model, not a robosuite HDF5 source
            continue
        with make_env(name) as env:
            np.testing.assert_allclose(env.base_frame.pos, ROBOSUITE_BASE_POSITIONS[task.robosuite_class], atol=1e-9)
