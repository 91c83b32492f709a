"""Panda forward kinematics and differential IK with pinocchio on the shipped URDF (urdf/panda.urdf).

The end-effector frame is the policy's control point (panda_grip_site: robosuite's grip site, with
panda_hand's orientation). Jacobians are LOCAL_WORLD_ALIGNED: linear and angular velocity of that point
in the base frame, the frame the OSC_POSE deltas are expressed in.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hardware.arms.rotations import rotation_error

PANDA_URDF = Path(__file__).resolve().parent / "urdf" / "panda.urdf"
PANDA_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
EE_FRAME = "panda_grip_site"
# A comfortable mid-range posture (robosuite's Panda init_qpos): the IK's null-space pulls toward it.
PANDA_NEUTRAL = np.array([0.0, np.pi / 16.0, 0.0, -np.pi / 2.0 - np.pi / 3.0, 0.0, np.pi - 0.2, np.pi / 4])


class Kinematics:
    """FK and Jacobian of one serial arm. Not thread-safe (pinocchio Data is scratch space)."""

    def __init__(self, urdf: str | Path = PANDA_URDF, ee_frame: str = EE_FRAME, joint_names=PANDA_JOINTS):
        import pinocchio as pin
        self.pin = pin
        urdf = Path(urdf)
        if not urdf.is_file():
            raise FileNotFoundError(f"URDF {urdf} not found")
        self.model = pin.buildModelFromUrdf(str(urdf))
        self.data = self.model.createData()
        if not self.model.existFrame(ee_frame):
            raise ValueError(f"URDF {urdf.name} has no frame {ee_frame!r}")
        self.ee_id = self.model.getFrameId(ee_frame)
        names = list(self.model.names)[1:]      # [0] is the universe
        if list(joint_names) != names:
            raise ValueError(f"URDF {urdf.name} joints {names} != joint_names {list(joint_names)}")
        if self.model.nq != len(names):
            raise ValueError(f"URDF {urdf.name}: only revolute/prismatic joints supported (nq {self.model.nq})")
        self.joint_names = tuple(names)
        self.lower = np.array(self.model.lowerPositionLimit, np.float64)
        self.upper = np.array(self.model.upperPositionLimit, np.float64)
        self.max_velocity = np.array(self.model.velocityLimit, np.float64)

    def copy(self) -> "Kinematics":
        """The same model with its own scratch data: for another thread."""
        other = object.__new__(Kinematics)
        other.__dict__.update(self.__dict__)
        other.data = self.model.createData()
        return other

    @property
    def dof(self) -> int:
        return self.model.nq

    def fk(self, q) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), rotation matrix (3, 3)) of the end-effector frame in the base frame."""
        pin = self.pin
        pin.framesForwardKinematics(self.model, self.data, np.asarray(q, np.float64))
        M = self.data.oMf[self.ee_id]
        return np.array(M.translation), np.array(M.rotation)

    def jacobian(self, q) -> np.ndarray:
        """(6, dof): [linear; angular] velocity of the end-effector point in the base frame per joint velocity."""
        pin = self.pin
        q = np.asarray(q, np.float64)
        pin.computeJointJacobians(self.model, self.data, q)
        pin.updateFramePlacements(self.model, self.data)
        return np.array(pin.getFrameJacobian(self.model, self.data, self.ee_id, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED))


class DifferentialIK:
    """Joint positions that put the end effector at a target pose, a small step from the current ones.

    Damped least squares on the pose error (a few Newton steps), a null-space pull toward a neutral
    posture (keeps the redundant 7th DoF away from limits), joint velocity limits (the step is scaled
    down as a whole, so the direction is kept) and position limits with a margin."""

    def __init__(self, kin: Kinematics, damping: float = 0.02, posture_gain: float = 0.2, iterations: int = 3,
                 limit_margin: float = 0.02, neutral=None, velocity_scale: float = 0.9):
        self.kin = kin
        self.damping = damping
        self.posture_gain = posture_gain
        self.iterations = iterations
        self.lower = kin.lower + limit_margin
        self.upper = kin.upper - limit_margin
        if neutral is None:
            # the Panda's comfortable posture for the Panda model, the middle of the joint ranges otherwise
            neutral = PANDA_NEUTRAL if kin.dof == len(PANDA_NEUTRAL) else (kin.lower + kin.upper) / 2.0
        self.neutral = np.clip(np.asarray(neutral, np.float64), self.lower, self.upper)
        self.max_velocity = kin.max_velocity * velocity_scale

    def solve(self, q0, p_target, R_target, dt: float) -> tuple[np.ndarray, float]:
        """(q, remaining position error in m) for a step of dt seconds starting at q0."""
        q0 = np.asarray(q0, np.float64)
        q = q0.copy()
        eye = np.eye(6)
        for _ in range(self.iterations):
            p, R = self.kin.fk(q)
            err = np.concatenate([np.asarray(p_target) - p, rotation_error(R_target, R)])
            if np.linalg.norm(err[:3]) < 1e-6 and np.linalg.norm(err[3:]) < 1e-5:
                break
            J = self.kin.jacobian(q)
            JJt = J @ J.T + (self.damping ** 2) * eye
            J_pinv = J.T @ np.linalg.solve(JJt, eye)
            null = np.eye(self.kin.dof) - J_pinv @ J
            dq = J_pinv @ err + null @ (self.posture_gain * (self.neutral - q) * min(1.0, dt * 10))
            q = np.clip(q + dq, self.lower, self.upper)
        step = q - q0
        limit = self.max_velocity * max(dt, 1e-6)
        ratio = float(np.max(np.abs(step) / limit))
        if ratio > 1.0:
            q = q0 + step / ratio
        p, _ = self.kin.fk(q)
        return q, float(np.linalg.norm(np.asarray(p_target) - p))
