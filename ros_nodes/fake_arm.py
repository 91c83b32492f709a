"""The sim node's fake real-robot controllers on ROS topics (arm_interface servo | jtc | pose).

The logic (validation, timeouts, conversion to robosuite actions) lives in sim/fake_controllers.py;
this module only subscribes to the controllers' real topic interfaces, hands each message to that
logic under a lock (callbacks run in the executor thread, actions are read by the sim thread), logs
every rejection and counts it as a safety event (bad_input), so it shows on /diagnostics.

    servo: geometry_msgs/TwistStamped on servo_topic + std_srvs/SetBool servo_pause_service
    jtc:   trajectory_msgs/JointTrajectory on /<controller>/joint_trajectory
    pose:  geometry_msgs/PoseStamped on pose_topic
    all:   std_msgs/Float64MultiArray on gripper_topic (finger position, m)
"""
from __future__ import annotations

import threading

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from policy_stack import safety as S
from ros_nodes import convert as C
from ros_nodes.common import CHUNK_QOS
from sim.fake_controllers import (CommandRejected, FakeCartesianImpedance, FakeGripper,
                                  FakeJointTrajectoryController, FakeServo, osc_config)

MODES = ("servo", "jtc", "pose")


class FakeArm:
    """One fake controller (by mode) plus the gripper, on `node`'s topics. `action(obs, now)` gives what
    the sim thread steps the env with: ("osc", 7 values) or ("joints", 7 targets, gripper value)."""

    def __init__(self, node, mode: str, callback_group=None):
        if mode not in MODES:
            raise ValueError(f"arm_interface {mode!r}: expected chunk or one of {list(MODES)}")
        p = node.p
        self.node, self.mode = node, mode
        self.dt = 1.0 / p["rate_hz"]
        self._lock = threading.Lock()
        self._arrived = threading.Condition()   # notified at every accepted arm command
        self._last_command = -np.inf            # node time of the newest accepted arm command
        self.rejections = 0
        self.gripper = FakeGripper()
        self._measured_q = np.zeros(7)
        self._measured_pose = (np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
        scale = osc_config().scale
        profile = getattr(node, "real_profile", None)
        if profile is not None and mode != "jtc":
            # The "real" controller moves actuation_gain x the training OSC's displacement per command
            # (sim/real_profiles.py): the same as dividing the OSC scale by it.
            scale = np.asarray(scale, float) / np.asarray(profile.actuation_gain, float)
        sub = lambda t, topic, cb: node.create_subscription(t, topic, cb, CHUNK_QOS, callback_group=callback_group)
        self.topics = {"gripper": p["gripper_topic"]}
        if mode == "servo":
            self.servo = FakeServo(p["base_frame"], scale, self.dt, timeout_s=p["servo_timeout_s"])
            self.topics["arm"] = p["servo_topic"]
            sub(TwistStamped, p["servo_topic"], self._on_twist)
            node.create_service(SetBool, p["servo_pause_service"], self._on_pause, callback_group=callback_group)
        elif mode == "jtc":
            self.jtc = FakeJointTrajectoryController(p["joint_names"])
            self.topics["arm"] = f"/{p['controller'].strip('/')}/joint_trajectory"
            sub(JointTrajectory, self.topics["arm"], self._on_trajectory)
        else:
            self.impedance = FakeCartesianImpedance(p["base_frame"], scale, p["pose_max_jump_m"], p["pose_max_jump_rad"])
            self.topics["arm"] = p["pose_topic"]
            sub(PoseStamped, p["pose_topic"], self._on_pose)
        sub(Float64MultiArray, p["gripper_topic"], self._on_gripper)

    # ------------------------------------------------------------------ commands (executor thread)
    def _accept(self, what: str, apply) -> None:
        try:
            with self._lock:
                apply()
        except CommandRejected as exc:
            self.rejections += 1
            self.node.events.add(S.Event(S.BAD_INPUT, f"{what}: {exc}"), self.node._now())
            self.node.get_logger().warning(f"fake {self.mode}: rejected {what}: {exc}", throttle_duration_sec=1.0)
            return
        if what != "gripper command":
            with self._arrived:
                self._last_command = self.node._now()
                self._arrived.notify_all()

    def wait_for_command(self, newer_than: float, timeout: float) -> bool:
        """Block up to timeout (s, wall) until an arm command newer than `newer_than` was accepted."""
        with self._arrived:
            return self._arrived.wait_for(lambda: self._last_command > newer_than, timeout)

    def _on_twist(self, msg: TwistStamped) -> None:
        t = msg.twist
        self._accept("twist", lambda: self.servo.command(
            msg.header.frame_id, [t.linear.x, t.linear.y, t.linear.z], [t.angular.x, t.angular.y, t.angular.z],
            self.node._now()))

    def _on_pause(self, request, response):
        with self._lock:
            response.message = self.servo.set_paused(request.data)
        response.success = True
        self.node.get_logger().info(f"fake servo {response.message}")
        return response

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        stamp = C.stamp_to_sec(msg.header.stamp)
        points = [(C.stamp_to_sec(pt.time_from_start), list(pt.positions), list(pt.velocities)) for pt in msg.points]
        self._accept("joint trajectory", lambda: self.jtc.command(
            list(msg.joint_names), stamp, points, self.node._now(), self._measured_q))

    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        self._accept("pose target", lambda: self.impedance.command(
            msg.header.frame_id, [p.x, p.y, p.z], [q.x, q.y, q.z, q.w], *self._measured_pose))

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        self._accept("gripper command", lambda: self.gripper.command(list(msg.data)))

    # ------------------------------------------------------------------ sim thread
    def observe(self, obs: dict) -> None:
        """The measured state the controllers start from (joint positions, end-effector pose)."""
        with self._lock:
            self._measured_q = np.asarray(obs["robot0_joint_pos"], float)
            self._measured_pose = (np.asarray(obs["robot0_eef_pos"], float), np.asarray(obs["robot0_eef_quat"], float))

    def reset(self, obs: dict) -> None:
        """New episode: every command of the old one is dropped; the arm holds where it starts."""
        self.observe(obs)
        with self._lock:
            self.gripper.reset()
            if self.mode == "servo":
                self.servo.reset()
            elif self.mode == "jtc":
                self.jtc.stop(self._measured_q)
            else:
                self.impedance.reset()

    def action(self, now: float) -> tuple[str, np.ndarray, str]:
        """(kind, action, hold reason or "") for the control step that starts at `now`.

        servo/pose: kind "osc", the 7-d OSC_POSE delta + gripper. jtc: kind "joints", the 7 joint targets
        then the gripper value: the trajectory's setpoint at the END of the step (now + dt), the position
        a real controller's setpoint has reached by then."""
        with self._lock:
            g = self.gripper.value
            if self.mode == "servo":
                state = self.servo.state(now)
                return "osc", np.append(self.servo.arm_delta(now), g), "" if state == "moving" else state
            if self.mode == "jtc":
                hold = "" if self.jtc.executing else "no trajectory"
                return "joints", np.append(self.jtc.setpoint(now + self.dt, self._measured_q), g), hold
            hold = "discontinuity reflex" if self.impedance.reflex else ""
            return "osc", np.append(self.impedance.arm_delta(*self._measured_pose), g), hold
