"""Scripted experts that solve the robosuite tasks from privileged (ground-truth) state.

Each expert is a small phase machine (approach, descend, grasp, lift, carry, place, release) driving the
OSC_POSE delta action with proportional control:
  translation a[:3] = clip(10 * (target - eef), +-1)        (a = 1 moves the goal 5 cm in one step)
  rotation    a[3:6] = clip(2 * rotvec(R_target R_eef^T), +-1) (a = 1 rotates the goal 0.5 rad)
  gripper     a[6] = -1 open, +1 closed
The gripper is kept pointing straight down; only its yaw changes, to line the fingers up with the object.
Ground truth comes from `env.privileged_state()` (robosuite's own observations and the env handle,
e.g. the can's goal bin and the peg position), so the experts also work with image-only observations.

Mixed-quality data for RL: `noise` adds Gaussian noise to the translation dims every step, and with
probability `suboptimal` an episode gets one deliberate flaw (see FLAWS), recorded in `expert.flaw`.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

# The servo law, gripper commands and phase timings are the skill primitives' (one motion code for the
# experts and the keypoint-conditioned skills).
from policy_stack.skills.primitives import (CLOSE_STEPS, CLOSED, OPEN, OPEN_STEPS, PHASE_TIMEOUT,  # noqa: F401
                                            POS_GAIN, ROT_GAIN, Pick, Place, SkillSequence, servo_action)
from policy_stack.skills.object_skills import BIN_CLEARANCE_M, PICK_HOVER_M
from sim.envs import resolve_task

MAX_REGRASPS = 2         # a missed grasp (object left behind on lift) starts over, this many times

# Deliberate flaws for suboptimal episodes. Each still often succeeds or fails late, which is what
# mixed-quality RL data needs (not just garbage):
#   grasp_offset  - grasp 1.5-3 cm off the object's centre line (slips, tilts, or misses)
#   early_release - open the gripper partway through the carry
#   dawdle        - move at 30% speed with random pauses (slow but usually successful)
FLAWS = ("grasp_offset", "early_release", "dawdle")

def _yaw_of(quat_xyzw) -> float:
    """Heading of a body's x axis in the world xy plane."""
    m = Rotation.from_quat(quat_xyzw).as_matrix()
    return float(np.arctan2(m[1, 0], m[0, 0]))


def _wrap(angle: float, period: float) -> float:
    """angle mapped into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)



def _least_crowded_yaw(nearest: float, obs: dict, name: str, objects, radius: float) -> float:
    """Of the grasp yaws nearest and nearest +- 90 deg, the one whose finger line (the hand's y) points
    least toward the other objects within `radius` (an open finger must not land on a neighbour); ties
    go to the least wrist turn."""
    me = obs[f"{name}_pos"][:2]
    others = [obs[f"{n}_pos"][:2] - me for n in objects if n != name]
    others = [d for d in others if np.linalg.norm(d) < radius]

    def crowding(yaw):
        finger = np.array([-np.sin(yaw), np.cos(yaw)])
        return sum(abs(np.dot(finger, d / np.linalg.norm(d))) / np.linalg.norm(d) for d in others)
    return min((nearest, nearest + np.pi / 2, nearest - np.pi / 2), key=lambda y: crowding(y) + 1e-3 * abs(y - nearest))

class ScriptedExpert:
    """Base: phase bookkeeping, servoing, noise and flaws. Subclasses implement `_plan`."""

    def __init__(self, noise: float = 0.0, suboptimal: float = 0.0, rng=None):
        self.noise = float(noise)
        self.suboptimal = float(suboptimal)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.reset()

    # ----------------------------------------------------------------- episode state
    def reset(self) -> None:
        self.phase = 0
        self.phase_steps = 0
        self.memory = {}          # per-episode values a phase stores for later phases (e.g. grasp height)
        self.regrasps = 0
        self.flaw = None
        if self.suboptimal > 0 and self.rng.random() < self.suboptimal:
            self.flaw = str(self.rng.choice(FLAWS))
        self._offset = np.zeros(3)
        if self.flaw == "grasp_offset":
            angle = self.rng.uniform(0, 2 * np.pi)
            self._offset[:2] = self.rng.uniform(0.015, 0.03) * np.array([np.cos(angle), np.sin(angle)])
        self._release_after = int(self.rng.integers(3, 15))   # carry steps before an early release

    def _next_phase(self) -> None:
        self.phase += 1
        self.phase_steps = 0

    def bind(self, env) -> "BoundExpert":
        """A callable obs -> action for policy_stack.episode.run_episode (it reads privileged state from env)."""
        return BoundExpert(self, env)

    # ----------------------------------------------------------------- acting
    def act(self, obs, env) -> np.ndarray:
        state = env.privileged_state()
        return self.act_from_state(state["raw_obs"], state["env"])

    def act_from_state(self, raw: dict, rs_env=None) -> np.ndarray:
        """One action from robosuite-style state (robot0_eef_pos/quat, <object>_pos/quat). The Lift expert
        needs nothing else (rs_env None), so it can run on observations received over ROS 2, in the
        robot base frame (the plan is translation-invariant and the Panda base is axis-aligned)."""
        self.phase_steps += 1
        action = self._plan(raw, rs_env)
        if self.flaw == "dawdle":
            action[:6] *= 0.3
            if self.rng.random() < 0.1:
                action[:6] = 0.0
        if self.noise > 0:
            action[:3] += self.rng.normal(0.0, self.noise, 3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _plan(self, raw: dict, rs_env) -> np.ndarray:
        raise NotImplementedError

    def _servo(self, raw: dict, target_pos, yaw: float, gripper: float) -> np.ndarray:
        return servo_action(raw["robot0_eef_pos"], raw["robot0_eef_quat"], target_pos, yaw, gripper)

    @staticmethod
    def _eef_yaw(raw) -> float:
        return _yaw_of(raw["robot0_eef_quat"])

    def _grasp_yaw(self, object_yaw: float, symmetry: float, raw) -> float:
        """Among object_yaw + k*symmetry, the yaw closest to the hand's current yaw (least wrist turn)."""
        eef_yaw = self._eef_yaw(raw)
        return eef_yaw + _wrap(object_yaw - eef_yaw, symmetry)

    def _timed_out(self) -> bool:
        return self.phase_steps > PHASE_TIMEOUT

    def _released_early(self) -> bool:
        return self.flaw == "early_release" and self.phase_steps > self._release_after


class BoundExpert:
    """Expert + env as the plain obs -> action callable the rollout loop expects."""

    def __init__(self, expert: ScriptedExpert, env):
        self.expert, self.env = expert, env

    def reset(self) -> None:
        self.expert.reset()

    def __call__(self, obs) -> np.ndarray:
        return self.expert.act(obs, self.env)


class PickAndPlaceExpert(ScriptedExpert):
    """Shared phase machine: grasp an object, lift, carry so that the object lands over a goal, lower,
    release, retreat. Subclasses say where the object is, where it goes and how to hold it.

    Phases: 0 hover above grasp point, 1 descend, 2 close, 3 lift, 4 carry, 5 lower, 6 open, 7 retreat.
    """
    hover = 0.10            # m above the grasp point before descending
    carry_clearance = 0.10  # m the object's centre is lifted above `place_height` for the carry
    lift_only = False       # Lift: stop after lifting

    def grasp_point(self, raw, rs_env) -> np.ndarray: ...
    def grasp_yaw(self, raw, rs_env) -> float: ...
    def object_pos(self, raw) -> np.ndarray: ...
    def goal_xy(self, raw, rs_env) -> np.ndarray: ...
    def place_height(self, raw, rs_env) -> float:
        """z of the object's centre at which to let go."""

    def carry_yaw(self, raw, rs_env) -> float:
        return self.memory["yaw"]

    def _on_grasped(self, raw, rs_env) -> None:
        """Hook: the object is in hand (e.g. plan how to turn it for the carry)."""

    def _missed_grasp(self, raw) -> bool:
        """The hand rose 4 cm but the object did not follow. Flawed episodes are left to fail."""
        if self.flaw is not None or self.regrasps >= MAX_REGRASPS:
            return False
        hand_rise = raw["robot0_eef_pos"][2] - self.memory["grasp_eef"][2]
        object_rise = self.object_pos(raw)[2] - self.memory["grasp_obj_z"]
        return hand_rise > 0.04 and object_rise < 0.01

    def _descended(self, raw, target) -> bool:
        err = target - raw["robot0_eef_pos"]
        return np.linalg.norm(err[:2]) < 0.01 and abs(err[2]) < 0.008

    def _plan(self, raw, rs_env) -> np.ndarray:
        eef = raw["robot0_eef_pos"]
        if self.phase == 0:   # hover above the grasp point, fingers lined up
            self.memory["yaw"] = self.grasp_yaw(raw, rs_env)
            target = self.grasp_point(raw, rs_env) + self._offset + [0, 0, self.hover]
            yaw_err = abs(_wrap(self.memory["yaw"] - self._eef_yaw(raw), 2 * np.pi))
            if (np.linalg.norm(target - eef) < 0.01 and yaw_err < 0.05) or self._timed_out():
                self._next_phase()
            return self._servo(raw, target, self.memory["yaw"], OPEN)
        if self.phase == 1:   # descend onto it
            target = self.grasp_point(raw, rs_env) + self._offset
            if self._descended(raw, target) or self._timed_out():
                self.memory["grasp_eef"] = eef.copy()
                self._next_phase()
            return self._servo(raw, target, self.memory["yaw"], OPEN)
        if self.phase == 2:   # close in place
            if self.phase_steps >= CLOSE_STEPS:
                # The eef-to-object offset while held lets later phases place the object, not the hand.
                self.memory["hold_offset"] = eef - self.object_pos(raw)
                self.memory["grasp_obj_z"] = float(self.object_pos(raw)[2])
                self._on_grasped(raw, rs_env)
                self._next_phase()
            return self._servo(raw, self.memory["grasp_eef"], self.memory["yaw"], CLOSED)
        if self.phase in (3, 4) and self._missed_grasp(raw):
            self.regrasps += 1
            self.phase, self.phase_steps = 0, 0
            return self._servo(raw, eef + [0, 0, 0.02], self.memory["yaw"], OPEN)
        if self.lift_only:    # Lift: straight up and stay there
            if self._released_early():
                return self._servo(raw, eef, self.memory["yaw"], OPEN)
            return self._servo(raw, self.memory["grasp_eef"] + [0, 0, 0.2], self.memory["yaw"], CLOSED)
        carry_z = self.place_height(raw, rs_env) + self.carry_clearance + self.memory["hold_offset"][2]
        if self.phase == 3:   # lift straight up to the carry height
            target = np.array([*self.memory["grasp_eef"][:2], carry_z])
            if abs(carry_z - eef[2]) < 0.02 or self._timed_out():
                self._next_phase()
            return self._servo(raw, target, self.carry_yaw(raw, rs_env), CLOSED)
        # Where the hand must be for the object (not the hand) to sit over the goal.
        hand_xy = self.goal_xy(raw, rs_env) + (eef - self.object_pos(raw))[:2]
        if self.phase == 4:   # carry over the goal
            if self._released_early():
                return self._servo(raw, eef, self.carry_yaw(raw, rs_env), OPEN)
            target = np.array([*hand_xy, carry_z])
            obj_err = np.linalg.norm(self.goal_xy(raw, rs_env) - self.object_pos(raw)[:2])
            if (obj_err < 0.01 and np.linalg.norm(target - eef) < 0.02) or self._timed_out():
                self._next_phase()
            return self._servo(raw, target, self.carry_yaw(raw, rs_env), CLOSED)
        if self.phase == 5:   # lower until the object is at its release height
            release_z = self.place_height(raw, rs_env) + self.memory["hold_offset"][2]
            target = np.array([*hand_xy, release_z])
            if self.object_pos(raw)[2] < self.place_height(raw, rs_env) + 0.005 or self._timed_out():
                self._next_phase()
            return self._servo(raw, target, self.carry_yaw(raw, rs_env), CLOSED)
        if self.phase == 6:   # let go where we are
            if self.phase_steps >= OPEN_STEPS:
                self.memory["release_eef"] = eef.copy()
                self._next_phase()
            return self._servo(raw, eef, self.carry_yaw(raw, rs_env), OPEN)
        # 7: retreat straight up, so the success checks that need the hand away from the object pass
        return self._servo(raw, self.memory["release_eef"] + [0, 0, 0.15], self.carry_yaw(raw, rs_env), OPEN)


class LiftExpert(PickAndPlaceExpert):
    lift_only = True

    def grasp_point(self, raw, rs_env):
        return raw["cube_pos"] - [0, 0, 0.005]

    def grasp_yaw(self, raw, rs_env):
        return self._grasp_yaw(_yaw_of(raw["cube_quat"]), np.pi / 2, raw)   # a cube looks the same every 90 deg

    def object_pos(self, raw):
        return raw["cube_pos"]


class PickPlaceCanExpert(PickAndPlaceExpert):
    carry_clearance = 0.12   # over the bin walls

    def grasp_point(self, raw, rs_env):
        return raw["Can_pos"].copy()

    def _descended(self, raw, target):
        # The fingertips touch the bin floor about 1 cm above the can's centre, so a 3-D threshold on
        # the centre never fires (a first expert with one scored 0/5): accept "low enough" instead.
        err = target - raw["robot0_eef_pos"]
        return np.linalg.norm(err[:2]) < 0.01 and raw["robot0_eef_pos"][2] - target[2] < 0.015

    def grasp_yaw(self, raw, rs_env):
        return 0.0  # a can is round: keep the hand square to the table

    def object_pos(self, raw):
        return raw["Can_pos"]

    def goal_xy(self, raw, rs_env):
        return np.asarray(rs_env.target_bin_placements[rs_env.object_to_id["can"]][:2])

    def place_height(self, raw, rs_env):
        # Let go with the can's centre 8 cm above the bin floor: it drops a few cm and stays upright.
        return float(rs_env.bin2_pos[2]) + 0.08


class StackExpert(PickAndPlaceExpert):
    carry_clearance = 0.05

    def grasp_point(self, raw, rs_env):
        return raw["cubeA_pos"] - [0, 0, 0.005]

    def grasp_yaw(self, raw, rs_env):
        nearest = self._grasp_yaw(_yaw_of(raw["cubeA_quat"]), np.pi / 2, raw)
        a_to_b = raw["cubeB_pos"][:2] - raw["cubeA_pos"][:2]
        if np.linalg.norm(a_to_b) > 0.12:
            return nearest
        # The cubes can start a few cm apart; an open finger between them knocks cubeB away. Close the
        # fingers (along the hand's y) across the A-to-B line instead, so both fingers stay clear of B.
        def finger_along_ab(yaw):
            return abs(np.dot([-np.sin(yaw), np.cos(yaw)], a_to_b / np.linalg.norm(a_to_b)))
        return min((nearest, nearest + np.pi / 2, nearest - np.pi / 2), key=finger_along_ab)

    def carry_yaw(self, raw, rs_env):
        # Turn the held cube so its faces line up with cubeB's (a cleaner, flatter landing).
        return self._eef_yaw(raw) - _wrap(_yaw_of(raw["cubeA_quat"]) - _yaw_of(raw["cubeB_quat"]), np.pi / 2)

    def object_pos(self, raw):
        return raw["cubeA_pos"]

    def goal_xy(self, raw, rs_env):
        return raw["cubeB_pos"][:2]

    def place_height(self, raw, rs_env):
        # cubeA (half-size 2 cm) resting on cubeB (half-size 2.5 cm), plus 5 mm to drop.
        return float(raw["cubeB_pos"][2]) + 0.025 + 0.02 + 0.005


class NutAssemblySquareExpert(PickAndPlaceExpert):
    """Grasp the square nut by its handle, carry it over the square peg with its sides lined up with the
    peg's, lower it down the peg and let go."""
    NUT, PEG = "SquareNut", "peg1_body_id"     # robosuite's observation prefix and peg body attribute
    carry_clearance = 0.14    # the peg top is 13 cm above the table; the nut (2 cm thick) must clear it
    # Grasp point in the nut's frame: on the handle (x 0.029..0.079, square-nut.xml), 1 cm further out
    # than its handle_site so the finger pads clear the ring's wall.
    HANDLE = np.array([0.064, 0.0, 0.0])

    def _nut_rot(self, raw):
        return Rotation.from_quat(raw[f"{self.NUT}_quat"])

    def grasp_point(self, raw, rs_env):
        return raw[f"{self.NUT}_pos"] + self._nut_rot(raw).apply(self.HANDLE) + [0, 0, -0.005]

    def grasp_yaw(self, raw, rs_env):
        # The handle is narrow along the nut's y; the fingers close along the hand's y: match the yaws.
        return self._grasp_yaw(_yaw_of(raw[f"{self.NUT}_quat"]), np.pi, raw)

    # The hand reaches 0.85 m at most; with the handle pointing away from the robot (+x) the hand would
    # have to be at the peg + 5.4 cm, beyond reach. So the nut is turned to put its handle on the
    # robot's side (-x) or to either side (+-y); all three fit the square peg (90-degree symmetric).
    HANDLE_HEADINGS = (np.pi / 2, np.pi, -np.pi / 2)
    # Hand yaws the wrist can hold: joint 7 (limits +-2.90 rad) reads about 0.785 - yaw; 0.3 rad spare.
    YAW_RANGE = (-1.8, 3.4)

    def _held_offset(self, raw) -> float:
        """Nut heading minus hand heading while held (fixed by the grasp, up to slip)."""
        return _wrap(_yaw_of(raw[f"{self.NUT}_quat"]) - self._eef_yaw(raw), 2 * np.pi)

    def _on_grasped(self, raw, rs_env):
        eef_yaw, held = self._eef_yaw(raw), self._held_offset(raw)
        options = [h - held + 2 * np.pi * k for h in self.HANDLE_HEADINGS for k in (-1, 0, 1)]
        options = [y for y in options if self.YAW_RANGE[0] <= y <= self.YAW_RANGE[1]]
        self.memory["carry_eef_yaw"] = min(options, key=lambda y: abs(y - eef_yaw))   # least wrist turn
        self.memory["carry_nut_yaw"] = self.memory["carry_eef_yaw"] + held

    def carry_yaw(self, raw, rs_env):
        # Feedback on the nut's own heading (it may slip a little in the fingers).
        target = self.memory["carry_nut_yaw"] - self._held_offset(raw)
        return self.memory["carry_eef_yaw"] + _wrap(target - self.memory["carry_eef_yaw"], 2 * np.pi)

    def object_pos(self, raw):
        return raw[f"{self.NUT}_pos"]

    def goal_xy(self, raw, rs_env):
        return np.asarray(rs_env.sim.data.body_xpos[getattr(rs_env, self.PEG)][:2])

    def place_height(self, raw, rs_env):
        # Success needs the nut's centre below table + 5 cm; lower it to 2 cm above the table top.
        return float(rs_env.table_offset[2]) + 0.02


class MultiCubeExpert(ScriptedExpert):
    """The instructed multi-cube task (pick, stack, tower) as a sequence of skill primitives
    (policy_stack/skills/primitives.py) on ground-truth keypoints: the oracle a KITE policy is compared
    with, and the demonstrator of the language-conditioned baselines. It reads the instruction's steps
    and each target's top-surface keypoint from the env (privileged), everything else from the
    base-frame observation, exactly what the primitives get when a policy drives them."""
    NEIGHBOUR_M = 0.15     # cubes closer than this to the grasped one steer the finger direction

    def reset(self) -> None:
        super().reset()
        self.flaw = None          # the flaws are the phase machine's; noise still applies
        self.sequence = None

    def act(self, obs, env) -> np.ndarray:
        if self.sequence is None:
            steps = env.episode.steps
            self.sequence = SkillSequence(len(steps), lambda i, o: self._primitive(steps[i], o, env))
        action = self.sequence.step(obs)
        if self.noise > 0:
            action[:3] += self.rng.normal(0.0, self.noise, 3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    @staticmethod
    def _keypoint(env, name) -> np.ndarray:
        return env.base_frame.position(env.keypoint_world(name)).astype(np.float64)

    def _primitive(self, step, obs, env):
        name = step.target
        if step.skill == "pick":
            return Pick(self._keypoint(env, name), self._pick_yaw(obs, env, name),
                        object_height=2 * env._cube_half(name))
        # place: line the held cube's faces up with the target's (a flatter landing)
        held = env.episode.steps[self.sequence.index - 1].target
        turn = _wrap(_yaw_of(obs[f"{held}_quat"]) - _yaw_of(obs[f"{name}_quat"]), np.pi / 2)
        return Place(self._keypoint(env, name), self._eef_yaw(obs) - turn)

    def _pick_yaw(self, obs, env, name) -> float:
        """Of the cube's four grasp yaws, the one whose finger line (the hand's y) points least toward
        nearby cubes (an open finger must not land on a neighbour); then the least wrist turn."""
        nearest = self._grasp_yaw(_yaw_of(obs[f"{name}_quat"]), np.pi / 2, obs)
        return _least_crowded_yaw(nearest, obs, name, env.object_names(), self.NEIGHBOUR_M)


class PickPlaceMultiExpert(ScriptedExpert):
    """pick_place_multi: the instructed object into its bin, as the skill primitives on ground-truth
    keypoints (the oracle a KITE policy is compared with). Pick grasps the object by its top (the can
    expert's motion, via the shared primitives), fingers across its narrow side; Place carries it high
    enough to clear the bins' 8 cm walls and lowers it onto the quadrant's floor. Hover and carry heights
    are the keypoint skills' (policy_stack/skills/object_skills.py): both clear the 15 cm objects."""
    NEIGHBOUR_M = 0.18      # objects closer than this steer the finger direction of a square-ish object

    def reset(self) -> None:
        super().reset()
        self.flaw = None
        self.sequence = None

    def act(self, obs, env) -> np.ndarray:
        if self.sequence is None:
            steps = env.episode.steps
            self.sequence = SkillSequence(len(steps), lambda i, o: self._primitive(steps[i], o, env))
        action = self.sequence.step(obs)
        if self.noise > 0:
            action[:3] += self.rng.normal(0.0, self.noise, 3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _primitive(self, step, obs, env):
        kp = env.base_frame.position(env.keypoint_world(step.target)).astype(np.float64)
        if step.skill == "pick_object":
            floor = env.base_frame.position([0.0, 0.0, env._floor_z])[2]
            return Pick(kp, self._pick_yaw(obs, env, step.target), object_height=float(kp[2] - floor),
                        hover=PICK_HOVER_M, rise_first=True)
        return Place(kp, self._eef_yaw(obs), clearance=BIN_CLEARANCE_M)

    def _pick_yaw(self, obs, env, name) -> float:
        yaw, symmetry = env.object_grasp_yaw_options(name)
        nearest = self._grasp_yaw(yaw, symmetry, obs)
        if symmetry >= np.pi:
            return nearest
        return _least_crowded_yaw(nearest, obs, name, env.episode_objects(), self.NEIGHBOUR_M)


class NutBothExpert(NutAssemblySquareExpert):
    """nut_assembly_both: the square expert's motion on the instructed nut (square or round) and its peg.
    `grab` episodes stop after the lift (as the Lift expert), `fit` episodes put the nut down its peg.
    The round nut's handle bar spans 3.5-8.5 cm from its centre (round-nut.xml); the grasp is at 7 cm,
    clear of the ring. Any heading fits the round peg; the reachable headings are the square nut's."""
    HANDLES = {"SquareNut": NutAssemblySquareExpert.HANDLE, "RoundNut": np.array([0.07, 0.0, 0.0])}

    def act(self, obs, env) -> np.ndarray:
        shape = env.episode.objects["a"].split("_")[0]
        self.NUT = "SquareNut" if shape == "square" else "RoundNut"
        self.PEG = "peg1_body_id" if shape == "square" else "peg2_body_id"
        self.HANDLE = self.HANDLES[self.NUT]
        self.lift_only = env.episode.kind == "grab"
        return super().act(obs, env)


EXPERTS = {
    "lift": LiftExpert,
    "pick_place_can": PickPlaceCanExpert,
    "stack": StackExpert,
    "nut_assembly_square": NutAssemblySquareExpert,
    "multi_cube": MultiCubeExpert,
    "multi_cube_pick": MultiCubeExpert,
    "multi_cube_stack": MultiCubeExpert,
    "multi_cube_tower": MultiCubeExpert,
    "pick_place_multi": PickPlaceMultiExpert,
    "nut_assembly_both": NutBothExpert,
}


def make_expert(env_name: str, noise: float = 0.0, suboptimal: float = 0.0, rng=None) -> ScriptedExpert:
    """Scripted expert for a task (project or robosuite class name). rng: Generator or seed."""
    task = resolve_task(env_name)
    return EXPERTS[task.name](noise=noise, suboptimal=suboptimal, rng=rng)
