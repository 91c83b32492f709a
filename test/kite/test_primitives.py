"""policy_stack/skills/primitives.py: the servo law and the pick/place state machines (pure numpy).

The arm here is a kinematic stand-in (the OSC goal moves 5 cm per unit action, as robosuite's
OSC_POSE delta does); the real-sim runs are in test_multi_cube.py."""
import numpy as np

from policy_stack.skills.primitives import (CLOSED, OPEN, Pick, Place, SkillSequence, hand_yaw, servo_action,
                                            wrap)

DOWN_XYZW = np.array([1.0, 0.0, 0.0, 0.0])     # hand pointing down, yaw 0 (R = diag(1, -1, -1))


class KinematicArm:
    def __init__(self, pos, width=0.04):
        self.pos, self.quat, self.width, self.holding = np.array(pos, float), DOWN_XYZW.copy(), width, None

    def obs(self):
        return {"robot0_eef_pos": self.pos.copy(), "robot0_eef_quat": self.quat.copy(),
                "robot0_gripper_qpos": np.array([self.width, self.width])}

    def apply(self, a, object_top=None):
        from scipy.spatial.transform import Rotation
        self.pos = self.pos + 0.05 * np.asarray(a[:3])
        self.quat = (Rotation.from_rotvec(0.5 * np.asarray(a[3:6])) * Rotation.from_quat(self.quat)).as_quat()
        # fingers: close onto the object when one is between them, else fully
        closing = a[6] > 0
        self.width = (0.02 if object_top is not None else 0.0) if closing else 0.04


def test_servo_points_at_the_target_and_saturates():
    a = servo_action([0, 0, 0], DOWN_XYZW, [0.01, -0.5, 0], 0.0, CLOSED)
    np.testing.assert_allclose(a[:3], [0.1, -1.0, 0.0])
    np.testing.assert_allclose(a[3:6], 0.0, atol=1e-9)
    assert a[6] == CLOSED
    turned = servo_action([0, 0, 0], DOWN_XYZW, [0, 0, 0], 0.3, OPEN)
    np.testing.assert_allclose(turned[3:6], [0, 0, 0.6], atol=1e-9)   # 2 x the yaw error, about the base z
    assert abs(wrap(3 * np.pi / 2, np.pi) - (-np.pi / 2)) < 1e-9


def _run(prim, arm, steps=400, object_top=None):
    for _ in range(steps):
        if prim.done:
            break
        arm.apply(prim.step(arm.obs()), object_top)
    return prim


def test_pick_descends_to_the_grasp_point_closes_and_lifts():
    arm = KinematicArm([0.4, 0.0, 0.1])
    kp = np.array([0.5, 0.1, -0.07])
    lowest = []
    pick = Pick(kp, yaw=0.4, object_height=0.04)
    for _ in range(400):
        if pick.done:
            break
        lowest.append(arm.pos[2])
        arm.apply(pick.step(arm.obs()), object_top=kp)
    assert pick.done and not pick.failed
    assert abs(min(lowest) - (kp[2] - 0.02)) < 0.01            # grasped half the height below the top
    assert arm.pos[2] > kp[2] + 0.05                              # lifted
    assert abs(wrap(hand_yaw(arm.quat) - 0.4, 2 * np.pi)) < 0.06
    assert abs(pick.held["eef_above_bottom"] - 0.02) < 0.01


def test_pick_reports_an_empty_grasp_and_the_sequence_retries():
    arm = KinematicArm([0.4, 0.0, 0.1])
    made = []

    def plan(i, obs):
        made.append(i)
        return Pick([0.5, 0.0, -0.07], yaw=0.0)
    seq = SkillSequence(1, plan, retries=2)
    for _ in range(2000):
        if seq.done:
            break
        arm.apply(seq.step(arm.obs()), object_top=None)           # nothing there: fingers close fully
    assert made == [0, 0, 0]                                      # first try + 2 retries


def test_place_releases_above_the_target_surface_and_retreats():
    arm = KinematicArm([0.5, 0.0, 0.0], width=0.02)
    kp_bottom = np.array([0.45, -0.1, -0.06])
    place = Place(kp_bottom, yaw=0.0, held={"eef_above_bottom": 0.02})
    release_z = []
    for _ in range(600):
        if place.done:
            break
        a = place.step(arm.obs())
        if a[6] == OPEN and not release_z:
            release_z.append(arm.pos.copy())
        arm.apply(a, object_top=kp_bottom)
    assert place.done
    assert np.linalg.norm(release_z[0][:2] - kp_bottom[:2]) < 0.012
    assert abs(release_z[0][2] - (kp_bottom[2] + 0.025)) < 0.01
    assert arm.pos[2] > release_z[0][2] + 0.08


def test_numpy_rotations_agree_with_scipy_including_near_pi():
    from scipy.spatial.transform import Rotation

    from policy_stack.skills.primitives import matrix_to_rotvec, quat_to_matrix, yaw_of
    rng = np.random.default_rng(0)
    rots = list(Rotation.random(200, random_state=1))
    rots += [Rotation.from_rotvec(a * np.pi * v / np.linalg.norm(v)) for a in (0.0, 1e-9, 0.999999, 1.0)
             for v in rng.normal(size=(5, 3))]
    for r in rots:
        np.testing.assert_allclose(quat_to_matrix(r.as_quat()), r.as_matrix(), atol=1e-9)
        got, want = matrix_to_rotvec(r.as_matrix()), r.as_rotvec()
        if np.linalg.norm(want) > np.pi - 1e-5:          # at pi, v and -v are the same rotation
            np.testing.assert_allclose(Rotation.from_rotvec(got).as_matrix(), r.as_matrix(), atol=1e-6)
        else:
            np.testing.assert_allclose(got, want, atol=1e-7)
        m = r.as_matrix()
        assert abs(yaw_of(r.as_quat()) - np.arctan2(m[1, 0], m[0, 0])) < 1e-9
