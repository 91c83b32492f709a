"""robosuite tasks behind one small wrapper that speaks the project's observation conventions.

`make_env("lift", cameras=("agentview",), depth=True)` returns a `SimEnv` whose observations hold only
what a real robot could publish (docs/CONVENTIONS.md): joint positions, gripper fingers, end-effector
pose, object poses, upright RGB and metric depth. Everything else robosuite computes (object-to-gripper
vectors, joint velocities, ...) stays behind `privileged_state()` for scripted experts.

Observations are what a real Franka arm reports, converted here ONCE so that in-process evaluation,
`collect`, RL and the sim node all see the same thing:
- poses (end effector and objects) in the robot BASE frame (`panda_link0` = robosuite's `robot0_base`
  body), not robosuite's world frame. The base pose is read from the sim per task (Lift, Stack,
  NutAssemblySquare: (-0.56, 0, 0.912); PickPlaceCan: (-0.5, -0.1, 0.912); orientation identity).
- gripper as franka_ros2 publishes it: both finger joints positive, metres from the hand's centre line
  (robosuite's `finger_joint2` runs negative, so its sign is flipped).
`privileged_state()` keeps robosuite's raw world-frame observation (scripted experts use it).

Speed: camera steps use the fast render settings of docs/background.md (no MSAA, no
shadows or reflections, `hard_reset=False`), about 3x faster than robosuite's defaults on llvmpipe.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from policy_stack.spaces import ActionSpace, FeatureSpec

os.environ.setdefault("MUJOCO_GL", "egl")

ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
GRIPPER_INDEX = 6

# Cameras every task's model has. PickPlaceCan's bins arena has no `sideview`, so it is listed per task.
_COMMON_CAMERAS = ("agentview", "robot0_eye_in_hand", "frontview", "birdview", "robot0_robotview")

# Low-dim robot keys (robosuite quaternions are already xyzw); poses and fingers are converted, see module doc.
ROBOT_KEYS = {"robot0_joint_pos": 7, "robot0_gripper_qpos": 2, "robot0_eef_pos": 3, "robot0_eef_quat": 4}
# robosuite body whose frame is the robot base (the real arm's panda_link0; robosuite's robot0_link0 sits
# at the same pose).
BASE_BODY = "robot0_base"
# make_env(arm_controller=...): robosuite arm controllers this wrapper can drive.
ARM_CONTROLLERS = ("osc_pose", "joint_position")
# Sign per finger joint that turns robosuite's (+q, -q) into franka_ros2's (+q, +q).
GRIPPER_SIGN = np.array([1.0, -1.0], np.float32)


@dataclass(frozen=True)
class TaskInfo:
    name: str                    # project name, e.g. "pick_place_can"
    robosuite_class: str         # e.g. "PickPlaceCan"
    objects: dict                # project object name -> robosuite observation prefix ("can" -> "Can")
    task: str                    # language instruction
    default_horizon: int         # steps; generous vs. the scripted experts (see sim/experts.py)
    cameras: tuple = _COMMON_CAMERAS


TASKS = {
    "lift": TaskInfo("lift", "Lift", {"cube": "cube"}, "lift the cube", 200,
                     _COMMON_CAMERAS + ("sideview",)),
    "pick_place_can": TaskInfo("pick_place_can", "PickPlaceCan", {"can": "Can"},
                               "pick up the can and place it in its bin", 400),
    # In robosuite's Stack, cubeA is the small red cube that goes on top of the green cubeB.
    "stack": TaskInfo("stack", "Stack", {"cubeA": "cubeA", "cubeB": "cubeB"},
                      "stack the red cube on the green cube", 400, _COMMON_CAMERAS + ("sideview",)),
    "nut_assembly_square": TaskInfo("nut_assembly_square", "NutAssemblySquare", {"square_nut": "SquareNut"},
                                    "fit the square nut onto the square peg", 500,
                                    _COMMON_CAMERAS + ("sideview",)),
}
# Language-conditioned multi-object tasks (sim/multi_cube.py, sim/instructions.py): each episode draws a
# layout and an instruction; env name -> the task kinds it draws from.
LANGUAGE_TASKS = {"multi_cube": ("pick", "stack"), "multi_cube_pick": ("pick",),
                  "multi_cube_stack": ("stack",), "multi_cube_tower": ("tower",)}
_CUBES = {f"cube{i}": f"cube{i}" for i in range(4)}
for _name, _horizon in (("multi_cube", 400), ("multi_cube_pick", 200), ("multi_cube_stack", 400),
                        ("multi_cube_tower", 800)):
    TASKS[_name] = TaskInfo(_name, "MultiCube", _CUBES, "", _horizon, _COMMON_CAMERAS + ("sideview", "grounding"))
# PickPlace with all four objects and an instruction naming one (sim/pick_place_multi.py).
LANGUAGE_TASKS["pick_place_multi"] = ("bin",)
TASKS["pick_place_multi"] = TaskInfo("pick_place_multi", "PickPlaceMulti",
                                     {"milk": "Milk", "bread": "Bread", "cereal": "Cereal", "can": "Can"}, "", 500,
                                     _COMMON_CAMERAS + ("grounding",))
# NutAssembly with both nuts and both pegs, an instruction naming one nut (sim/nut_assembly_both.py).
LANGUAGE_TASKS["nut_assembly_both"] = ("grab", "fit")
TASKS["nut_assembly_both"] = TaskInfo("nut_assembly_both", "NutAssemblyBoth",
                                      {"square_nut": "SquareNut", "round_nut": "RoundNut"}, "", 500,
                                      _COMMON_CAMERAS + ("sideview", "grounding"))
_BY_CLASS = {t.robosuite_class: t for t in TASKS.values() if t.name not in LANGUAGE_TASKS}


def resolve_task(name: str) -> TaskInfo:
    """Project name (`lift`) or robosuite class name (`Lift`) -> TaskInfo; ValueError names the bad value."""
    if name in TASKS:
        return TASKS[name]
    if name in _BY_CLASS:
        return _BY_CLASS[name]
    valid = sorted(TASKS) + sorted(_BY_CLASS)
    raise ValueError(f"unknown env name {name!r}; valid names: {valid}")


def default_action_space() -> ActionSpace:
    return ActionSpace(names=list(ACTION_NAMES), low=[-1.0] * 7, high=[1.0] * 7, kind="eef_delta",
                       discrete=[GRIPPER_INDEX])


def make_env(name: str, cameras=(), image_size: int = 84, depth: bool = False, seed: int | None = None,
             horizon: int | None = None, control_freq: int = 20, fast_render: bool = True,
             randomize: dict | None = None, reward_shaping: bool = False,
             arm_controller: str = "osc_pose", instruction_split: str = "train") -> "SimEnv":
    """Build a Panda robosuite task with the BASIC composite controller (OSC_POSE delta arm, 7-d action).

    cameras: names from the task's model (agentview, robot0_eye_in_hand, ...); () renders nothing.
    image_size: square images, pixels. depth: also return `<cam>_depth` in metres.
    seed: seeds the first reset (later `reset(seed=...)` calls reseed). horizon: None = task default.
    randomize: domain randomization (sim/randomization.py): a preset name, dict or RandomizationConfig.
    arm_controller: "osc_pose" (robosuite's default, the policies' action space; `step`) or
    "joint_position" (absolute joint targets, `step_joint_positions`; the fake joint_trajectory_controller
    of sim/fake_controllers.py drives the arm through it).
    instruction_split: language tasks only (LANGUAGE_TASKS): which split of sim/instructions.py the
    episodes' instructions and layouts come from.
    """
    if arm_controller not in ARM_CONTROLLERS:
        raise ValueError(f"unknown arm_controller {arm_controller!r}; valid: {list(ARM_CONTROLLERS)}")
    task = resolve_task(name)
    cameras = tuple(cameras)
    for cam in cameras:
        if cam not in task.cameras:
            raise ValueError(f"unknown camera name {cam!r} for env {task.name!r}; valid cameras: {list(task.cameras)}")
    if randomize:
        from sim.randomization import RandomizationConfig, RandomizedEnv
        randomize = RandomizationConfig.from_spec(randomize)   # a bad spec fails before robosuite starts
    env_args = (task, cameras, int(image_size), bool(depth), seed, int(horizon or task.default_horizon),
                int(control_freq), bool(fast_render), bool(reward_shaping), arm_controller)
    if task.robosuite_class == "PickPlaceMulti":
        from sim.pick_place_multi import PickPlaceLanguageEnv
        env = PickPlaceLanguageEnv(*env_args, split=instruction_split)
    elif task.robosuite_class == "NutAssemblyBoth":
        from sim.nut_assembly_both import NutLanguageEnv
        env = NutLanguageEnv(*env_args, split=instruction_split, kinds=LANGUAGE_TASKS[task.name])
    elif task.name in LANGUAGE_TASKS:
        from sim.instructions import SPLITS
        from sim.multi_cube import LanguageSimEnv
        if instruction_split not in SPLITS:
            raise ValueError(f"unknown instruction split {instruction_split!r}; valid splits: {list(SPLITS)}")
        env = LanguageSimEnv(*env_args, split=instruction_split, kinds=LANGUAGE_TASKS[task.name])
    else:
        env = SimEnv(*env_args)
    if randomize:
        return RandomizedEnv(env, randomize)  # camera/lighting/texture/dynamics, drawn per episode seed
    return env


class SimEnv:
    """One robosuite environment with project-convention observations. Not thread-safe (one GL context)."""

    def __init__(self, task: TaskInfo, cameras: tuple, image_size: int, depth: bool, seed, horizon: int,
                 control_freq: int, fast_render: bool, reward_shaping: bool, arm_controller: str = "osc_pose"):
        import contextlib
        import sys
        # heavy imports (MuJoCo, GL), kept out of module import time; robosuite prints warnings (gym
        # missing) on stdout, which would corrupt the one-JSON-object stdout of `--json` commands
        with contextlib.redirect_stdout(sys.stderr):
            import robosuite as suite
            from robosuite import macros
            from robosuite.utils.camera_utils import get_real_depth_map
        self._real_depth_map = get_real_depth_map

        self._task_info = task
        self.name = task.name
        self.task = task.task
        self.cameras = cameras
        self.image_size = image_size
        self.depth = depth
        self.horizon = horizon
        self.fps = control_freq
        self.action_space = default_action_space()
        # robosuite renders bottom-up (OpenGL) unless its macro says otherwise; flip to a camera's top-down.
        self._flip_images = macros.IMAGE_CONVENTION == "opengl"
        self._next_seed = seed
        render = bool(cameras)
        self.arm_controller = arm_controller
        controller = {}
        if arm_controller == "joint_position":
            from sim.fake_controllers import joint_position_composite
            controller = {"controller_configs": joint_position_composite()}
        self._env = suite.make(
            task.robosuite_class, robots="Panda", has_renderer=False, has_offscreen_renderer=render,
            use_camera_obs=render, use_object_obs=True, camera_names=list(cameras) or "agentview",
            camera_heights=image_size, camera_widths=image_size, camera_depths=depth and render,
            control_freq=control_freq, horizon=horizon, hard_reset=False, ignore_done=False,
            reward_shaping=reward_shaping, seed=seed, **controller)
        if render and fast_render:
            _apply_fast_render(self._env)
        self._raw_obs = None
        self.base_frame = BaseFrame.read(self._env.sim, BASE_BODY)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> dict:
        """Start an episode. With a seed (here or given to make_env) object placement and the robot's
        initial-joint noise are reproducible; without one the env's random stream continues."""
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        if seed is not None:
            self._reseed(int(seed))
        self._raw_obs = self._env.reset()
        return self._convert_obs(self._raw_obs)

    def _reseed(self, seed: int) -> None:
        # robosuite draws every reset-time random number (placement samplers, robot init noise,
        # object choice) from the single Generator `env.rng`, and the samplers hold a reference to that
        # same object. Overwriting its bit-generator state in place reseeds all of them at once.
        self._env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state

    def step(self, action) -> tuple[dict, float, bool, dict]:
        if self.arm_controller != "osc_pose":
            raise ValueError(f"{self.name}: step() takes OSC_POSE deltas; this env's arm is {self.arm_controller}")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (7,):
            raise ValueError(f"{self.name}: action must have 7 values {ACTION_NAMES}, got shape {action.shape}")
        return self._step(np.clip(action, -1.0, 1.0))

    def step_joint_positions(self, qpos, gripper: float) -> tuple[dict, float, bool, dict]:
        """One control step toward absolute joint targets (rad, robosuite's joint order = panda_joint1..7)
        with the gripper command g in [-1, 1] (+1 closes); only with arm_controller="joint_position"."""
        if self.arm_controller != "joint_position":
            raise ValueError(f"{self.name}: step_joint_positions() needs arm_controller='joint_position'")
        q = np.asarray(qpos, dtype=np.float64).reshape(-1)
        if q.shape != (7,) or not np.all(np.isfinite(q)):
            raise ValueError(f"{self.name}: joint targets must be 7 finite values, got {q}")
        return self._step(np.concatenate([q, [float(np.clip(gripper, -1.0, 1.0))]]))

    def _step(self, action: np.ndarray) -> tuple[dict, float, bool, dict]:
        raw, reward, done, info = self._env.step(action)
        self._raw_obs = raw
        info = dict(info)
        info["success"] = bool(self._env._check_success())
        return self._convert_obs(raw), float(reward), bool(done), info

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ observation
    def _convert_obs(self, raw: dict) -> dict:
        base = self.base_frame
        obs = {"robot0_joint_pos": np.asarray(raw["robot0_joint_pos"], dtype=np.float32),
               # sign flip after the float32 cast: exact, so converted statistics stay bit-exact
               "robot0_gripper_qpos": np.asarray(raw["robot0_gripper_qpos"], dtype=np.float32) * GRIPPER_SIGN,
               "robot0_eef_pos": base.position(raw["robot0_eef_pos"]),
               "robot0_eef_quat": base.orientation(raw["robot0_eef_quat"])}
        for obj, prefix in self._task_info.objects.items():
            obs[f"{obj}_pos"] = base.position(raw[f"{prefix}_pos"])
            obs[f"{obj}_quat"] = base.orientation(raw[f"{prefix}_quat"])
        for cam in self.cameras:
            rgb = raw[f"{cam}_image"]
            obs[f"{cam}_rgb"] = np.ascontiguousarray(rgb[::-1] if self._flip_images else rgb, dtype=np.uint8)
            if self.depth:
                obs[f"{cam}_depth"] = self._metric_depth(raw[f"{cam}_depth"])
        return obs

    def _metric_depth(self, normalized: np.ndarray) -> np.ndarray:
        get_real_depth_map = self._real_depth_map
        d = normalized[..., 0]
        if self._flip_images:
            d = d[::-1]
        # MuJoCo's z-buffer value -> distance along the optical axis, using the model's near/far planes.
        metres = get_real_depth_map(self._env.sim, np.clip(d, 0.0, 1.0))
        return np.ascontiguousarray(metres, dtype=np.float32)

    def obs_spec(self) -> dict[str, FeatureSpec]:
        spec = {k: FeatureSpec([n], "float32") for k, n in ROBOT_KEYS.items()}
        for obj in self._task_info.objects:
            spec[f"{obj}_pos"] = FeatureSpec([3], "float32")
            spec[f"{obj}_quat"] = FeatureSpec([4], "float32")
        s = self.image_size
        for cam in self.cameras:
            spec[f"{cam}_rgb"] = FeatureSpec([s, s, 3], "uint8", kind="rgb")
            if self.depth:
                spec[f"{cam}_depth"] = FeatureSpec([s, s], "float32", kind="depth")
        return spec

    def camera_info(self, cam: str) -> dict:
        """Pinhole intrinsics and camera pose for `cam` at this env's image size.

        K: fx = fy = (H/2) / tan(fovy/2), principal point at the image centre in OpenCV pixel coordinates
        ((W-1)/2, (H-1)/2: pixel centres are integers). T_base_cam: camera -> robot base frame (the frame of
        the observations' poses), T_world_cam: camera -> robosuite world; both in OpenCV axes (x right,
        y down, z forward); MuJoCo cameras look down their -z with y up, hence the axis flip.
        The pose is read from the current sim state (the eye-in-hand camera moves with the arm).
        """
        if cam not in self._task_info.cameras:
            raise ValueError(f"unknown camera name {cam!r} for env {self.name!r}; valid cameras: {list(self._task_info.cameras)}")
        sim = self._env.sim
        cam_id = sim.model.camera_name2id(cam)
        h = w = self.image_size
        fovy = float(sim.model.cam_fovy[cam_id])
        f = 0.5 * h / np.tan(np.deg2rad(fovy) / 2.0)
        K = [[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]]
        T = np.eye(4)
        T[:3, :3] = np.asarray(sim.data.cam_xmat[cam_id]).reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        T[:3, 3] = sim.data.cam_xpos[cam_id]
        return {"K": K, "width": w, "height": h, "T_base_cam": self.base_frame.pose(T).tolist(),
                "T_world_cam": T.tolist(), "fovy_deg": fovy}

    def privileged_state(self) -> dict:
        """Ground truth for scripted experts and debugging: never feed this to a policy."""
        return {"raw_obs": self._raw_obs, "env": self._env}

    @property
    def robosuite_env(self):
        return self._env

    def __repr__(self):
        return f"SimEnv({self.name!r}, cameras={self.cameras}, image_size={self.image_size}, depth={self.depth})"


@dataclass(frozen=True)
class BaseFrame:
    """The robot base's pose in robosuite's world: converts world-frame poses into the base frame."""
    pos: tuple            # base origin in world, m
    quat_xyzw: tuple      # base orientation in world

    @classmethod
    def read(cls, sim, body: str) -> "BaseFrame":
        i = sim.model.body_name2id(body)
        w, x, y, z = (float(v) for v in sim.data.body_xquat[i])     # MuJoCo: wxyz
        return cls(tuple(float(v) for v in sim.data.body_xpos[i]), (x, y, z, w))

    @property
    def is_axis_aligned(self) -> bool:
        return self.quat_xyzw[:3] == (0.0, 0.0, 0.0)

    def _rotation(self):
        from scipy.spatial.transform import Rotation
        return Rotation.from_quat(self.quat_xyzw)

    def position(self, p_world) -> np.ndarray:
        """p_base = R_world_base^T (p_world - t_world_base), float32."""
        d = np.asarray(p_world, np.float64) - np.asarray(self.pos, np.float64)
        if not self.is_axis_aligned:
            d = self._rotation().inv().apply(d)
        return d.astype(np.float32)

    def pose(self, T_world_x) -> np.ndarray:
        """4x4 pose in world -> the same pose in the base frame (float64)."""
        T_world_base = np.eye(4)
        T_world_base[:3, :3] = self._rotation().as_matrix()
        T_world_base[:3, 3] = self.pos
        return np.linalg.inv(T_world_base) @ np.asarray(T_world_x, np.float64)

    def orientation(self, q_world_xyzw) -> np.ndarray:
        """q_base = q_world_base^-1 * q_world (xyzw, float32); unchanged for an axis-aligned base (every
        robosuite task here), which keeps the quaternions bit-identical to robosuite's."""
        q = np.asarray(q_world_xyzw, np.float64)
        if not self.is_axis_aligned:
            from scipy.spatial.transform import Rotation
            q = (self._rotation().inv() * Rotation.from_quat(q)).as_quat()
        return q.astype(np.float32)


def _apply_fast_render(env) -> None:
    """No MSAA, shadows or reflections: ~3x faster camera steps on llvmpipe (docs/background.md).

    offsamples is read when the MjrContext is created, so the context is rebuilt after changing it.
    Valid only with hard_reset=False (a hard reset rebuilds the sim and its render context).
    """
    import mujoco
    ctx = env.sim._render_context_offscreen
    ctx.gl_ctx.make_current()
    env.sim.model._model.vis.quality.offsamples = 0
    ctx.con.free()
    ctx._set_mujoco_context_and_buffers()
    ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    ctx.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
