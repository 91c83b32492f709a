"""`pick_place_multi`: robosuite PickPlace with all four objects and a language instruction per episode.

Two layers, as sim/multi_cube.py:
- `PickPlaceMulti`, robosuite's PickPlace (milk carton, bread, cereal box, can in bin 1; four target
  quadrants in bin 2, one per object, robosuite's assignment) plus a top-down `grounding` camera over
  both bins. Changes to the stock task: the objects are placed with a minimum spacing in the middle of
  bin 1 (the open hand fits between them and clears the walls), and robosuite's translucent "visual"
  copies of the objects that mark the target quadrants are moved out of the scene, so the bins'
  floors are what the depth camera sees there (a bin keypoint is its floor centre) and a bin is found
  by where it is ("the can bin"), which is robosuite's fixed assignment.
- `PickPlaceLanguageEnv`, the project's SimEnv plus: a seeded instruction at each reset
  (sim/pick_place_language.py), `obs["instruction"]`, success for the instructed object only (it rests
  in its quadrant and is let go; the gripper touching another object, or another object moving more
  than WRONG_MOVE_M, fails the episode for good), and `ground_truth()` with every object's and bin's
  keypoint, pixel, mask and visibility in the grounding camera (sim/keypoint_labels.py).

Keypoints: an object's is the centre of its top surface (its most upward-facing bounding-box face, from
the collision mesh's bounding box and the body pose); a bin's is the centre of its quadrant's floor.
"""
from __future__ import annotations

import random

import numpy as np

from sim.envs import TaskInfo
from sim.language_task import LanguageTaskEnv
from sim.multi_cube import _look_at_quat_wxyz
from sim.pick_place_language import OBJECTS, bin_name, draw_episode, grounding_queries, layout_seed, split_instruction

GROUNDING_CAMERA = "grounding"
WRONG_MOVE_M = 0.02        # an object not named in the instruction moved this far (3-D): failure
MIN_SPACING = 0.13         # m between object centres in bin 1 (the cereal box is 10 cm long)
PLACE_HALF = (0.10, 0.15)  # object centres within this of bin 1's centre (x, y): hand clears the walls
# Top-down camera over both bins (robosuite world frame; the bins span y -0.5..0.53), image up toward
# the robot (-x). At 128 px one pixel is about 9 mm on the bins' floors.
_GROUNDING_POS = np.array([0.1, 0.015, 2.0])
_GROUNDING_LOOK_AT = np.array([0.1, 0.015, 0.8])
_GROUNDING_FOVY = 50.0


def _register_robosuite_env():
    from robosuite.environments.base import REGISTERED_ENVS
    if "PickPlaceMulti" in REGISTERED_ENVS:
        return REGISTERED_ENVS["PickPlaceMulti"]
    from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
    from robosuite.environments.manipulation.pick_place import PickPlace
    from robosuite.models.arenas import BinsArena
    from robosuite.models.tasks import ManipulationTask

    class PickPlaceMulti(PickPlace):
        """All four objects, spaced; the grounding camera; target markers hidden. Success is decided by
        the wrapper (it knows the instruction)."""

        def __init__(self, robots, **kwargs):
            kwargs.setdefault("single_object_mode", 0)
            super().__init__(robots, **kwargs)

        def _load_model(self):
            # PickPlace._load_model with a camera added to the arena before the task merges it
            ManipulationEnv._load_model(self)
            self.robots[0].robot_model.set_base_xpos(self.robots[0].robot_model.base_xpos_offset["bins"])
            arena = BinsArena(bin1_pos=self.bin1_pos, table_full_size=self.table_full_size,
                              table_friction=self.table_friction)
            arena.set_origin([0, 0, 0])
            arena.set_camera(GROUNDING_CAMERA, _GROUNDING_POS,
                             _look_at_quat_wxyz(_GROUNDING_POS, _GROUNDING_LOOK_AT),
                             camera_attribs={"fovy": str(_GROUNDING_FOVY)})
            self.bin_size = arena.table_full_size
            self._construct_visual_objects()
            self._construct_objects()
            self.model = ManipulationTask(mujoco_arena=arena, mujoco_robots=[r.robot_model for r in self.robots],
                                          mujoco_objects=self.visual_objects + self.objects)
            self._get_placement_initializer()

        def _reset_internal(self):
            super()._reset_internal()
            for vis in self.visual_objects:     # target markers out of the scene (below the floor)
                self.sim.model.body_pos[self.obj_body_id[vis.name]] = [0.0, 0.0, -2.0]
            if self.deterministic_reset:
                return
            for obj, (x, y, yaw) in zip(self.objects, self._sample_positions()):
                quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])      # wxyz about z
                z = self.bin1_pos[2] + 0.02 - self._local_bottom(obj) + 0.002    # resting on the floor
                self.sim.data.set_joint_qpos(obj.joints[0], np.concatenate([[x, y, z], quat]))

        def _local_bottom(self, obj) -> float:
            """z of the collision mesh's lowest point in the object's body frame (the bottom_site of
            robosuite's object files is a few cm off for some meshes)."""
            m = self.sim.model
            gid = m.geom_name2id(obj.contact_geoms[0])
            return float(m.geom_pos[gid][2] + m.geom_aabb[gid][2] - m.geom_aabb[gid][5])

        def _sample_positions(self):
            for _ in range(2000):
                xy = self.rng.uniform(-1.0, 1.0, size=(len(self.objects), 2)) * PLACE_HALF + self.bin1_pos[:2]
                d = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy))
                if d.min() >= MIN_SPACING:
                    yaw = self.rng.uniform(-np.pi, np.pi, size=len(self.objects))
                    return [(*p, a) for p, a in zip(xy, yaw)]
            raise RuntimeError("PickPlaceMulti: no object layout with the minimum spacing in 2000 draws")

        def _check_success(self):
            return False

    return PickPlaceMulti


class PickPlaceLanguageEnv(LanguageTaskEnv):
    """SimEnv for pick_place_multi: per-episode instruction, instructed-object success, labels."""

    def __init__(self, task: TaskInfo, *args, split: str = "train", **kwargs):
        from sim.pick_place_language import SPLITS
        if split not in SPLITS:
            raise ValueError(f"unknown instruction split {split!r} for {task.name}; valid splits: {list(SPLITS)}")
        _register_robosuite_env()
        self.split = split
        self.episode = None
        self._seed_rng = np.random.default_rng()
        super().__init__(task, *args, **kwargs)
        self.task = ""
        rs = self._env
        self._obj = {o.name.lower(): o for o in rs.objects}
        self._bin2_body = rs.sim.model.body_name2id("bin2")
        self._floor_z = float(rs.bin2_pos[2]) + 0.02    # BinsArena: floor box 2 cm half-thick at the bin's z

    # the instruction grammar of this task (policy-stack eval installs it as the policy's parser)
    parse_instruction = staticmethod(split_instruction)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> dict:
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        if seed is None:
            seed = int(self._seed_rng.integers(0, 2**31 - 1))
        self.episode = draw_episode(int(seed), self.split)
        self.task = self.episode.instruction
        self.episode_seed = int(seed)
        obs = super().reset(seed=layout_seed(int(seed), self.split))
        self._start_pos = {n: self._obj_pos(n) for n in OBJECTS}
        self._failure = None
        return obs

    # ------------------------------------------------------------------ success
    def _obj_pos(self, name: str) -> np.ndarray:
        rs = self._env
        return np.array(rs.sim.data.body_xpos[rs.obj_body_id[self._obj[name].name]])

    def _grippers(self):
        g = self._env.robots[0].gripper
        return list(g.values()) if isinstance(g, dict) else [g]

    def _update_failure(self) -> None:
        if self._failure is not None:
            return
        rs = self._env
        target = self.episode.objects["a"]
        for name in OBJECTS:
            if name == target:
                continue
            if any(rs.check_contact(g, self._obj[name]) for g in self._grippers()):
                self._failure = f"gripper touched {name}"
                return
            if np.linalg.norm(self._obj_pos(name) - self._start_pos[name]) > WRONG_MOVE_M:
                self._failure = f"{name} moved"
                return

    def in_bin(self, name: str) -> bool:
        """The object rests in its own quadrant of bin 2 (robosuite's test) and the gripper lets go of it."""
        rs = self._env
        inside = not rs.not_in_bin(self._obj_pos(name), rs.object_to_id[name])
        return inside and not any(rs.check_contact(g, self._obj[name]) for g in self._grippers())

    def _instruction_done(self) -> bool:
        return self.in_bin(self.episode.objects["a"])

    # ------------------------------------------------------------------ geometry (ground truth)
    def object_names(self) -> list[str]:
        return list(OBJECTS) + [bin_name(o) for o in OBJECTS]

    def episode_objects(self) -> list[str]:
        """The movable objects (not the bins)."""
        return list(OBJECTS)

    def object_body_id(self, name: str) -> int:
        rs = self._env
        if name.endswith("_bin"):
            return int(self._bin2_body)
        return int(rs.obj_body_id[self._obj[name].name])

    def _box(self, name: str):
        """(centre (3,), rotation (3,3), half extents (3,)) of the object's collision-mesh bounding box, world."""
        rs = self._env
        m, d = rs.sim.model._model, rs.sim.data._data
        gid = rs.sim.model.geom_name2id(self._obj[name].contact_geoms[0])
        aabb = np.asarray(m.geom_aabb[gid], np.float64)     # (centre, half size) in the geom's frame
        R = np.asarray(d.geom_xmat[gid], np.float64).reshape(3, 3)
        return np.asarray(d.geom_xpos[gid], np.float64) + R @ aabb[:3], R, aabb[3:]

    def object_height(self, name: str) -> float:
        _, R, half = self._box(name)
        k = int(np.argmax(np.abs(R[2])))
        return float(2 * half[k])

    def object_grasp_yaw_options(self, name: str) -> tuple[float, float]:
        """(yaw of the hand that closes the fingers across the box's narrow horizontal side, symmetry):
        symmetry pi for an elongated top (the cereal box), pi/2 for a square-ish one."""
        _, R, half = self._box(name)
        k = int(np.argmax(np.abs(R[2])))
        i, j = [a for a in range(3) if a != k]
        short, long_ = (i, j) if half[i] <= half[j] else (j, i)
        axis = R[:, short]
        # fingers close along the hand's y; hand yaw psi puts its y at angle psi + pi/2
        yaw = float(np.arctan2(axis[1], axis[0]) - np.pi / 2)
        return yaw, (np.pi if half[long_] > 1.3 * half[short] else np.pi / 2)

    def keypoint_world(self, name: str) -> np.ndarray:
        """Robosuite world: an object's top-surface centre, a bin's floor centre."""
        rs = self._env
        if name.endswith("_bin"):
            xy = rs.target_bin_placements[rs.object_to_id[name[:-len("_bin")]]][:2]
            return np.array([xy[0], xy[1], self._floor_z])
        c, R, half = self._box(name)
        k = int(np.argmax(np.abs(R[2])))
        normal = R[:, k] * np.sign(R[2, k])
        # The surface the camera sees at the top face's centre: rays down the face normal onto the mesh at
        # a 3x3 grid 6 mm apart (about one pixel's footprint), the median hit distance. A carton's gable
        # ridge or a can's rim put the bounding box's top above what a pixel there shows.
        import mujoco
        rs = self._env
        gid = rs.sim.model.geom_name2id(self._obj[name].contact_geoms[0])
        a, b = (R[:, i] for i in range(3) if i != k)
        start = c + normal * (half[k] + 0.05)
        hits = [mujoco.mj_rayMesh(rs.sim.model._model, rs.sim.data._data, gid, start + 0.006 * (i * a + j * b), -normal)
                for i in (-1, 0, 1) for j in (-1, 0, 1)]
        hits = [h for h in hits if h >= 0]
        return start - normal * float(np.median(hits)) if hits else c + normal * half[k]

    def _seen_keypoint(self, name: str, info: dict) -> np.ndarray:
        """The keypoint as a label in `info`'s camera: an object's top-surface centre moved to the surface
        point seen through the pixel centre nearest to it (a ray cast from the camera onto the object's
        mesh). The milk carton's top is a steep gable: half a pixel (4 mm) off its centre line the surface
        is up to 1 cm lower, so an unsnapped label would not match the pixel it is drawn on. Bins (flat
        floors) are left as they are."""
        kp = self.keypoint_world(name)
        if name.endswith("_bin"):
            return kp
        import mujoco
        from policy_stack.skills.geometry import project
        T = np.asarray(info["T_world_cam"], np.float64)
        K = np.asarray(info["K"], np.float64)
        uv, _ = project(kp[None], K, T)
        u, v = np.round(uv[0])
        ray = T[:3, :3] @ np.linalg.solve(K, [u, v, 1.0])
        ray /= np.linalg.norm(ray)
        rs = self._env
        gid = rs.sim.model.geom_name2id(self._obj[name].contact_geoms[0])
        dist = mujoco.mj_rayMesh(rs.sim.model._model, rs.sim.data._data, gid, T[:3, 3].copy(), ray)
        return T[:3, 3] + ray * dist if dist >= 0 else kp

    def bin_bounds(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(low xy, high xy) of an object's quadrant in bin 2, world."""
        rs = self._env
        c = rs.target_bin_placements[rs.object_to_id[name[:-len("_bin")] if name.endswith("_bin") else name]][:2]
        q = np.asarray(rs.bin_size[:2]) / 4.0
        return c - q, c + q

    def object_mask(self, name: str, body: np.ndarray, depth: np.ndarray, info: dict) -> np.ndarray:
        """Segmentation mask of `name` in the labelled image: an object's body; for a bin, the pixels of
        bin 2 whose 3-D point lies in that quadrant."""
        mask = body == self.object_body_id(name)
        if not name.endswith("_bin"):
            return mask.astype(np.uint8)
        from policy_stack.skills.geometry import deproject
        rows, cols = np.nonzero(mask)
        pts = deproject(np.stack([cols, rows], 1).astype(np.float64), depth[rows, cols], info["K"], info["T_world_cam"])
        lo, hi = self.bin_bounds(name)
        inside = np.all((pts[:, :2] > lo) & (pts[:, :2] < hi), axis=1)
        out = np.zeros(mask.shape, np.uint8)
        out[rows[inside], cols[inside]] = 1
        return out

    def _label_keypoint_world(self, name: str, info: dict) -> np.ndarray:
        return self._seen_keypoint(name, info)

    def _object_attributes(self, name: str) -> dict:
        return {"category": "bin" if name.endswith("_bin") else name, "colour": "", "size": ""}

    # ------------------------------------------------------------------ grounding data hooks
    def grounding_queries(self, rng: random.Random, split: str, target: str, n: int = 1) -> list[tuple]:
        return grounding_queries(rng, split, target, n)

    # where sim/grounding_data.py moves the open hand for its second frame (world, m): over both bins
    arm_frame_box = ((-0.05, 0.25), (-0.45, 0.48), (0.92, 1.15))
