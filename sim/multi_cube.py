"""`multi_cube`: four cubes in several colours and two sizes, and a language instruction per episode.

Two layers:
- `MultiCube`, a robosuite ManipulationEnv (registered with robosuite by being defined): a table, a Panda,
  four BoxObjects (slots cube0, cube1 small; cube2, cube3 large), and a dedicated `grounding` camera
  looking down at the table from the far side. Each reset recolours the cubes (visual geoms' rgba; the
  model is not rebuilt, so `hard_reset=False` stays valid) and places them with a minimum spacing so the
  open fingers fit between neighbours.
- `LanguageSimEnv`, the project's `SimEnv` plus: a seeded draw of layout colours and instruction
  (sim/instructions.py) at each reset, `obs["instruction"]`, success for the instructed objects only
  (a wrong cube touched by the gripper or moved > WRONG_MOVE_M fails the episode for good), and
  `ground_truth()` with each object's keypoint in the base frame, its pixel, its mask and visibility in
  the grounding camera (sim/keypoint_labels.py).
"""
from __future__ import annotations

import numpy as np

from sim.envs import TaskInfo
from sim.language_task import LanguageTaskEnv
from sim.instructions import SIZES, draw_episode

GROUNDING_CAMERA = "grounding"
# Slot name -> size word. Sizes are fixed per slot (geometry and mass stay valid without a rebuild);
# colours are drawn per episode.
CUBE_SLOTS = (("cube0", "small"), ("cube1", "small"), ("cube2", "large"), ("cube3", "large"))
TABLE_TOP_Z = 0.8                 # robosuite TableArena offset used here (world frame), m
PLACE_RANGE = 0.13                # cube centres within +-PLACE_RANGE of the table centre (x and y), m
MIN_SPACING = 0.10                # m between cube centres: the open hand (about 8 cm) fits between
WRONG_MOVE_M = 0.015              # a cube not named in the instruction moved this far: failure
LIFT_M = 0.04                     # pick success: the target's centre this far above its resting height
# Grounding camera: above the far edge of the table, looking at its centre (pose in robosuite's world).
_GROUNDING_POS = np.array([0.32, 0.0, 1.50])
_GROUNDING_LOOK_AT = np.array([0.0, 0.0, TABLE_TOP_Z])
_GROUNDING_FOVY = 34.0


def _look_at_quat_wxyz(pos, target, up_hint=(-1.0, 0.0, 0.0)) -> np.ndarray:
    """MuJoCo camera orientation (it looks down its -z, image up is its +y) looking from pos at target,
    with image up toward up_hint (the robot side)."""
    from scipy.spatial.transform import Rotation
    z = -(np.asarray(target, float) - np.asarray(pos, float))
    z /= np.linalg.norm(z)
    u = np.asarray(up_hint, float)
    y = u - np.dot(u, z) * z
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    x_, y_, z_, w_ = Rotation.from_matrix(np.stack([x, y, z], axis=1)).as_quat()
    return np.array([w_, x_, y_, z_])


def _register_robosuite_env():
    """Define (and so register with robosuite) the MultiCube environment class; idempotent."""
    from robosuite.environments.base import REGISTERED_ENVS
    if "MultiCube" in REGISTERED_ENVS:
        return REGISTERED_ENVS["MultiCube"]
    from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
    from robosuite.models.arenas import TableArena
    from robosuite.models.objects import BoxObject
    from robosuite.models.tasks import ManipulationTask
    from robosuite.utils.observables import Observable, sensor
    from robosuite.utils.transform_utils import convert_quat

    class MultiCube(ManipulationEnv):
        """Four cubes; `colours` (slot -> rgba) is read at each reset. Success is decided by the wrapper
        (it knows the instruction); `_check_success` here is False so robosuite never ends early."""

        def __init__(self, robots, table_full_size=(0.8, 0.8, 0.05), table_friction=(1.0, 5e-3, 1e-4),
                     use_object_obs=True, reward_scale=1.0, reward_shaping=False, **kwargs):
            self.table_full_size = table_full_size
            self.table_friction = table_friction
            self.table_offset = np.array((0, 0, TABLE_TOP_Z))
            self.use_object_obs = use_object_obs
            self.reward_scale = reward_scale
            self.reward_shaping = reward_shaping
            self.colours = {name: (0.5, 0.5, 0.5, 1.0) for name, _ in CUBE_SLOTS}
            super().__init__(robots=robots, **kwargs)

        def reward(self, action=None):
            return 0.0

        def _load_model(self):
            super()._load_model()
            xpos = self.robots[0].robot_model.base_xpos_offset["table"](self.table_full_size[0])
            self.robots[0].robot_model.set_base_xpos(xpos)
            arena = TableArena(table_full_size=self.table_full_size, table_friction=self.table_friction,
                               table_offset=self.table_offset)
            arena.set_origin([0, 0, 0])
            arena.set_camera(GROUNDING_CAMERA, _GROUNDING_POS, _look_at_quat_wxyz(_GROUNDING_POS, _GROUNDING_LOOK_AT),
                             camera_attribs={"fovy": str(_GROUNDING_FOVY)})
            self.cubes = [BoxObject(name=name, size_min=[SIZES[size]] * 3, size_max=[SIZES[size]] * 3,
                                    rgba=list(self.colours[name]))
                          for name, size in CUBE_SLOTS]
            self.model = ManipulationTask(mujoco_arena=arena, mujoco_robots=[r.robot_model for r in self.robots],
                                          mujoco_objects=self.cubes)

        def _setup_references(self):
            super()._setup_references()
            self.cube_body_ids = {c.name: self.sim.model.body_name2id(c.root_body) for c in self.cubes}
            self.cube_visual_geom_ids = {c.name: [self.sim.model.geom_name2id(g) for g in c.visual_geoms]
                                         for c in self.cubes}

        def _reset_internal(self):
            super()._reset_internal()
            for name, ids in self.cube_visual_geom_ids.items():
                for gid in ids:
                    self.sim.model.geom_rgba[gid] = self.colours[name]
            if self.deterministic_reset:
                return
            for cube, (x, y, yaw) in zip(self.cubes, self._sample_positions()):
                z = TABLE_TOP_Z + cube.size[2] + 0.001
                quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])      # wxyz about z
                self.sim.data.set_joint_qpos(cube.joints[0], np.concatenate([[x, y, z], quat]))

        def _sample_positions(self):
            """Rejection-sample cube centres at least MIN_SPACING apart (and yaws), from env.rng."""
            for _ in range(1000):
                xy = self.rng.uniform(-PLACE_RANGE, PLACE_RANGE, size=(len(self.cubes), 2))
                d = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy))
                if d.min() >= MIN_SPACING:
                    yaw = self.rng.uniform(-np.pi, np.pi, size=len(self.cubes))
                    return [(*p, a) for p, a in zip(xy, yaw)]
            raise RuntimeError("MultiCube: no cube layout with the minimum spacing found in 1000 draws")

        def _setup_observables(self):
            observables = super()._setup_observables()
            if not self.use_object_obs:
                return observables

            def make(name, bid):
                @sensor(modality="object")
                def pos(obs_cache):
                    return np.array(self.sim.data.body_xpos[bid])

                @sensor(modality="object")
                def quat(obs_cache):
                    return convert_quat(np.array(self.sim.data.body_xquat[bid]), to="xyzw")
                pos.__name__, quat.__name__ = f"{name}_pos", f"{name}_quat"
                return pos, quat

            for name, bid in self.cube_body_ids.items():
                for s in make(name, bid):
                    observables[s.__name__] = Observable(name=s.__name__, sensor=s, sampling_rate=self.control_freq)
            return observables

        def _check_success(self):
            return False

    return MultiCube


class LanguageSimEnv(LanguageTaskEnv):
    """SimEnv for a language task: per-episode layout + instruction, instructed-object success, labels."""

    def __init__(self, task: TaskInfo, *args, split: str = "train", kinds=("pick", "stack"), **kwargs):
        _register_robosuite_env()
        self.split = split
        self.kinds = tuple(kinds)
        self.episode = None
        self._seed_rng = np.random.default_rng()
        super().__init__(task, *args, **kwargs)
        self.task = ""

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> dict:
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        if seed is None:     # keep going without a seed: draw one, so the instruction is still reproducible
            seed = int(self._seed_rng.integers(0, 2**31 - 1))
        self.episode = draw_episode(int(seed), self.split, list(CUBE_SLOTS), self.kinds)
        colours = _rgba(self.episode.layout)
        self._env.colours.update(colours)
        self.task = self.episode.instruction
        self.episode_seed = int(seed)
        obs = super().reset(seed=seed)
        self._start_pos = {name: self._cube_pos(name) for name, _ in CUBE_SLOTS}
        self._failure = None
        return obs

    def _convert_obs(self, raw: dict) -> dict:
        obs = super()._convert_obs(raw)     # with `instruction` (sim/language_task.py)
        # What a state-based policy needs to tell the cubes apart by the instruction's words (the
        # language-conditioned Diffusion Policy baseline): each cube's colour (RGB in [0, 1]) and
        # half-size (m), as one key `<cube>_attributes` (r, g, b, half_size). Privileged: a real arm
        # gets neither without a perception stack.
        for name, _ in CUBE_SLOTS:
            obs[f"{name}_attributes"] = cube_attributes(self._env.colours[name], self._cube_half(name))
        return obs

    def obs_spec(self):
        from policy_stack.spaces import FeatureSpec
        spec = super().obs_spec()
        for name, _ in CUBE_SLOTS:
            spec[f"{name}_attributes"] = FeatureSpec([4], "float32")
        return spec

    # ------------------------------------------------------------------ success
    def _cube_pos(self, name: str) -> np.ndarray:
        rs = self._env
        return np.array(rs.sim.data.body_xpos[rs.cube_body_ids[name]])

    def _cube_half(self, name: str) -> float:
        return SIZES[dict(CUBE_SLOTS)[name]]

    def _involved(self) -> set:
        return {s.target for s in self.episode.steps}

    def _update_failure(self) -> None:
        """Latch the first wrong-object event: the gripper touching, or anything moving, a cube the
        instruction does not name."""
        if self._failure is not None:
            return
        rs = self._env
        grippers = rs.robots[0].gripper      # robosuite 1.5: {arm: GripperModel}
        grippers = list(grippers.values()) if isinstance(grippers, dict) else [grippers]
        for cube in rs.cubes:
            if cube.name in self._involved():
                continue
            if any(rs.check_contact(g, cube) for g in grippers):
                self._failure = f"gripper touched {cube.name}"
                return
            if np.linalg.norm(self._cube_pos(cube.name)[:2] - self._start_pos[cube.name][:2]) > WRONG_MOVE_M:
                self._failure = f"{cube.name} moved"
                return

    def _grasped(self, name: str) -> bool:
        rs = self._env
        cube = next(c for c in rs.cubes if c.name == name)
        return bool(rs._check_grasp(gripper=rs.robots[0].gripper, object_geoms=cube))

    def _on_top(self, top: str, bottom: str) -> bool:
        """`top` rests on `bottom`: in contact, centred within the bottom's half-size, at the right
        height, and not held."""
        rs = self._env
        a, b = self._cube_pos(top), self._cube_pos(bottom)
        cube_a = next(c for c in rs.cubes if c.name == top)
        cube_b = next(c for c in rs.cubes if c.name == bottom)
        height = a[2] - b[2]
        expected = self._cube_half(top) + self._cube_half(bottom)
        return (rs.check_contact(cube_a, cube_b) and np.linalg.norm(a[:2] - b[:2]) < self._cube_half(bottom)
                and abs(height - expected) < 0.01 and not self._grasped(top))

    def _instruction_done(self) -> bool:
        ep = self.episode
        if ep.kind == "pick":
            name = ep.objects["a"]
            return bool(self._cube_pos(name)[2] > self._start_pos[name][2] + LIFT_M and self._grasped(name))
        if ep.kind == "stack":
            return self._on_top(ep.objects["a"], ep.objects["b"])
        if ep.kind == "tower":
            return self._on_top(ep.objects["a"], ep.objects["b"]) and self._on_top(ep.objects["c"], ep.objects["a"])
        raise ValueError(f"unknown task kind {ep.kind!r}")

    # ------------------------------------------------------------------ ground truth
    def object_names(self) -> list[str]:
        return [name for name, _ in CUBE_SLOTS]

    def object_body_id(self, name: str) -> int:
        return int(self._env.cube_body_ids[name])

    def keypoint_world(self, name: str) -> np.ndarray:
        """The object's keypoint in robosuite's world: a cube's top-surface centre (its grasp and place
        point), whatever its yaw; a tilted cube's top face moves with it."""
        from scipy.spatial.transform import Rotation
        rs = self._env
        w, x, y, z = rs.sim.data.body_xquat[rs.cube_body_ids[name]]
        axes = Rotation.from_quat([x, y, z, w]).as_matrix()
        k = int(np.argmax(np.abs(axes[2])))          # the face whose normal points most upward
        normal = axes[:, k] * np.sign(axes[2, k])
        return self._cube_pos(name) + normal * self._cube_half(name)

    def _object_attributes(self, name: str) -> dict:
        spec = {c.name: c for c in self.episode.layout}[name]
        return {"colour": spec.colour, "size": spec.size}


def cube_attributes(rgba, half_size: float) -> np.ndarray:
    """The `<cube>_attributes` observation: (r, g, b, half-size in m), float32."""
    return np.array([*rgba[:3], half_size], np.float32)


def _rgba(layout) -> dict:
    from sim.instructions import COLOURS
    return {c.name: COLOURS[c.colour] for c in layout}
