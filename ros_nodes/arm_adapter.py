"""ROS 2 arm adapter node: the policy's action chunks in, a real arm controller's commands out.

Thin: conversion and publishing. The logic (OSC scaling, differential IK, limits, watchdogs, e-stop)
lives in hardware/arms/ (ArmAdapterCore), without ROS.

Threads: subscriptions and services run on the executor; the control loop runs in its own thread at
rate_hz (`ArmAdapterCore.tick`, then publish). The e-stop service publishes the stop command itself, at
once, without waiting for the next tick, and calls Servo's pause service when it is offered.

Managed (lifecycle) node: configure loads the kinematics and checks the parameters, activate starts the
control loop, deactivate stops it after one hold command. The e-stop and reset services and
/diagnostics work in every state. With autostart (the default) it configures and activates itself.

Topics only: control_msgs (FollowJointTrajectory) and moveit_msgs (Servo's switch_command_type) are not on
PyPI, so their action and service paths need a ROS install; the node says so at start-up.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from policy_stack import safety as S
from ros_nodes import convert as C
from ros_nodes.common import (CHUNK_QOS, DIAGNOSTICS_TOPIC, IMAGE_QOS, STATE_QOS, WorkerThreadMixin,
                              declare_parameters, main_for)

STATUS_NAME = "policy_stack/arm_adapter"
TOPICS_ONLY_NOTE = (
    "control_msgs (FollowJointTrajectory action) and moveit_msgs (MoveIt Servo's ~/switch_command_type "
    "service) are not installable from PyPI: this adapter speaks the controllers' TOPIC interfaces only "
    "(Servo: TwistStamped on delta_twist_cmds; joint_trajectory_controller: JointTrajectory on "
    "~/joint_trajectory; impedance: PoseStamped). With a ROS install, put Servo into twist mode yourself "
    "(ros2 service call /servo_node/switch_command_type moveit_msgs/srv/ServoCommandType '{command_type: 1}').")
# Events worth a /diagnostics message of their own at once (the rest are counted in the periodic summary).
LIMIT_PREFIX = "limited_"


def _duration(t: float) -> Duration:
    ns = int(round(t * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class ArmAdapterNode(WorkerThreadMixin, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("arm_adapter", **kwargs)
        p = self.p = declare_parameters(self, "arm_adapter")
        self.get_logger().info(TOPICS_ONLY_NOTE)
        self.core = None
        self.joint_names = list(p["joint_names"])
        self.cameras = [t.strip() for t in p["camera_topics"].split(",") if t.strip()]
        self._stop = threading.Event()
        self._active = False
        self._thread: threading.Thread | None = None
        # The loop and the e-stop service both publish commands: the service latches and publishes the stop
        # under this lock; the loop publishes under it only what was computed knowing about the latch.
        self._publish_lock = threading.RLock()
        self._fk = None                           # publish_ee_pose: this thread's own kinematics
        self._last_limit_report: dict[str, float] = {}
        self._last_cmd_kind = "none"
        self._source_counts: Counter = Counter()
        self._configure_error = ""

        services = MutuallyExclusiveCallbackGroup()
        inputs = MutuallyExclusiveCallbackGroup()
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STATE_QOS)
        self.create_service(Trigger, p["estop_service"], self._on_estop, callback_group=services)
        self.create_service(Trigger, p["reset_service"], self._on_reset, callback_group=services)
        self.create_timer(p["diagnostics_period_s"], self._publish_summary, callback_group=services)
        # Commands: plain publishers, so the e-stop's stop command goes out in every lifecycle state.
        b = p["backend"]
        self.twist_pub = self.create_publisher(TwistStamped, p["servo_topic"], STATE_QOS) if b == "servo" else None
        self.traj_pub = (self.create_publisher(JointTrajectory, f"/{p['controller'].strip('/')}/joint_trajectory",
                                               STATE_QOS) if b == "jtc" else None)
        self.pose_pub = self.create_publisher(PoseStamped, p["pose_topic"], STATE_QOS) if b == "pose" else None
        self.gripper_pub = (self.create_publisher(Float64MultiArray, p["gripper_topic"], STATE_QOS)
                            if p["gripper_topic"] else None)
        self.ee_pub = self.create_publisher(PoseStamped, p["ee_pose_topic"], STATE_QOS) if p["publish_ee_pose"] else None
        # What each tick executed, stamped with the observation it followed (recordings of interventions).
        self.executed_pub = (self.create_publisher(JointTrajectory, p["executed_action_topic"], STATE_QOS)
                             if p["executed_action_topic"] else None)
        self._executed_writer = None              # made with the core (its action names); used under _publish_lock
        self._obs_stamp: Time | None = None       # newest /joint_states header stamp
        self._pause = (self.create_client(SetBool, p["servo_pause_service"], callback_group=services)
                       if b == "servo" and p["servo_pause_service"] else None)
        self._inputs = inputs
        self._subs_made = False

    # ------------------------------------------------------------------------------ lifecycle
    def autostart(self) -> None:
        if not self.p["autostart"]:
            self.get_logger().info("autostart false: waiting for the lifecycle configure transition")
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ValueError(self._configure_error or "configure failed")
        self.trigger_activate()

    def on_configure(self, state) -> TransitionCallbackReturn:
        from hardware.arms.adapter import AdapterConfig, ArmAdapterCore
        from hardware.arms.limits import MotionLimits
        from hardware.arms.scaling import load_osc_scaling
        p = self.p
        try:
            limits = MotionLimits(tuple(p["workspace_min"]), tuple(p["workspace_max"]), p["max_linear_speed"],
                                  p["max_angular_speed"], p["max_linear_accel"], p["max_angular_accel"])
            scaling = load_osc_scaling()
            ik = None
            if p["backend"] == "jtc" or p["publish_ee_pose"]:
                from hardware.arms.kinematics import PANDA_URDF, DifferentialIK, Kinematics
                urdf = p["urdf_path"] or PANDA_URDF
                if p["backend"] == "jtc":
                    ik = DifferentialIK(Kinematics(urdf, p["ee_frame"], self.joint_names))
                if p["publish_ee_pose"]:
                    self._fk = Kinematics(urdf, p["ee_frame"], self.joint_names)
            config = AdapterConfig(backend=p["backend"], rate_hz=p["rate_hz"], limits=limits,
                                   joint_state_timeout_s=p["joint_state_timeout_s"],
                                   camera_timeout_s=p["camera_timeout_s"], cameras=tuple(self.cameras),
                                   max_chunk_age_s=p["max_chunk_age_s"], blend_steps=p["blend_steps"],
                                   teleop_timeout_s=p["teleop_timeout_s"],
                                   calibration_gain=tuple(p["calibration_gain"]),
                                   joint_count=len(self.joint_names))
            self.core = ArmAdapterCore(config, scaling, ik)
            self._executed_writer = C.TrajectoryWriter(self.core.space.names, 1.0 / p["rate_hz"], p["base_frame"])
        except (ValueError, FileNotFoundError) as exc:
            self._configure_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(
            f"backend {p['backend']} at {p['rate_hz']:g} Hz; OSC_POSE scales from {scaling.source}: "
            f"+1 = {scaling.max_step[0]:g} m / {scaling.max_step[1]:g} rad per policy step; workspace "
            f"{list(limits.workspace_min)}..{list(limits.workspace_max)} m in {p['base_frame']}; speed <= "
            f"{limits.max_linear_speed:g} m/s, {limits.max_angular_speed:g} rad/s")
        self._make_subscriptions()
        return TransitionCallbackReturn.SUCCESS

    def _make_subscriptions(self) -> None:
        if self._subs_made:
            return
        p, g = self.p, self._inputs
        self.create_subscription(JointTrajectory, p["action_chunk_topic"], self._on_chunk, CHUNK_QOS, callback_group=g)
        if p["teleop_topic"]:
            # Teleop hook (human interventions): single-step actions in the policy's space; a fresh one
            # takes over from the policy's chunks (hardware/arms/adapter.py, arbitration).
            self.create_subscription(JointTrajectory, p["teleop_topic"], self._on_teleop, CHUNK_QOS, callback_group=g)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joint_state, STATE_QOS, callback_group=g)
        if not p["publish_ee_pose"] and p["backend"] != "jtc":
            self.create_subscription(PoseStamped, p["ee_pose_topic"], self._on_ee_pose, STATE_QOS, callback_group=g)
        for topic in self.cameras:
            # raw: only the arrival matters, so the image is never deserialized
            self.create_subscription(Image, topic, lambda _m, t=topic: self.core.on_camera(t, self._now()),
                                     IMAGE_QOS, callback_group=g, raw=True)
        self._subs_made = True

    def on_activate(self, state) -> TransitionCallbackReturn:
        self._stop.clear()
        self._active = True
        self._thread = threading.Thread(target=self._loop, name="arm_adapter", daemon=True)
        self._thread.start()
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._stop_thread()
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._stop_thread()
        return super().on_cleanup(state)

    def _wake_worker(self) -> None:
        pass   # the loop sleeps at most one tick

    def _stop_thread(self) -> None:
        was_running = self._thread is not None
        super()._stop_thread()
        self._active = False
        if was_running and self.core is not None:
            # leave the arm holding, not drifting on its last command
            self.core.follower.enabled = False
            self._publish(self.core.tick(self._now()))
            self.core.follower.enabled = True

    def close(self) -> None:
        self._stop_thread()

    # ------------------------------------------------------------------------------ inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_chunk(self, msg) -> None:
        if self.core is None:
            return
        now = self._now()
        try:
            stamp, dt, chunk = C.trajectory_to_chunk(msg, self.p["action_chunk_topic"], names=self.core.space.names)
        except C.ConversionError as exc:
            self._report(self.core.events.add(S.Event(S.BAD_INPUT, str(exc)), now), now)
            return
        accepted, events = self.core.on_chunk(stamp, dt, chunk, now)
        for e in events:
            if e.holds or e.kind == S.LATE_CHUNK:
                self._report(e, now)

    def _on_teleop(self, msg) -> None:
        if self.core is None:
            return
        now = self._now()
        try:
            stamp, _dt, chunk = C.trajectory_to_chunk(msg, self.p["teleop_topic"], names=self.core.space.names)
        except C.ConversionError as exc:
            self._report(self.core.events.add(S.Event(S.BAD_INPUT, str(exc)), now), now)
            return
        if chunk is None or not len(chunk):
            return                      # an explicit hold from teleop: the policy keeps driving
        _accepted, events = self.core.on_teleop(stamp, chunk[0], now)
        for e in events:
            if e.holds or e.kind == S.LATE_CHUNK:
                self._report(e, now)

    def _on_joint_state(self, msg) -> None:
        if self.core is None:
            return
        now = self._now()
        try:
            q = C.joint_state_to_arrays(msg, self.p["joint_states_topic"], {"q": self.joint_names})["q"]
        except C.ConversionError as exc:
            from hardware.arms.adapter import BAD_STATE
            self._report(self.core.events.add(S.Event(BAD_STATE, str(exc)), now), now)
            return
        q = q.astype(np.float64)
        self._obs_stamp = msg.header.stamp
        event = self.core.on_joint_state(q, now)
        if event is not None:
            self._report(event, now)
            return
        if self._fk is not None:
            p, R = self._fk.fk(q)
            from hardware.arms.rotations import matrix_to_quat
            quat = matrix_to_quat(R)
            self.ee_pub.publish(C.pose_msg(p, quat, msg.header.stamp, self.p["base_frame"]))
            self.core.on_ee_pose(p, quat, now)

    def _on_ee_pose(self, msg) -> None:
        if self.core is None:
            return
        now = self._now()
        if msg.header.frame_id and msg.header.frame_id != self.p["base_frame"]:
            from hardware.arms.adapter import BAD_STATE
            self._report(self.core.events.add(S.Event(
                BAD_STATE, f"{self.p['ee_pose_topic']} in frame {msg.header.frame_id!r}, expected {self.p['base_frame']!r}"),
                now), now)
            return
        pos, o = msg.pose.position, msg.pose.orientation
        event = self.core.on_ee_pose([pos.x, pos.y, pos.z], [o.x, o.y, o.z, o.w], now)
        if event is not None:
            self._report(event, now)

    def _on_estop(self, request, response):
        now = self._now()
        if self.core is None:
            response.success, response.message = False, "not configured: nothing is commanded"
            return response
        with self._publish_lock:
            cmd = self.core.estop("e-stop requested on " + self.p["estop_service"], now)
            if cmd is not None:
                self._publish(cmd)      # at once, not at the next tick
        if cmd is not None:
            for e in cmd.events:
                self._report(e, now)
            if self._pause is not None:
                if self._pause.service_is_ready():
                    self._pause.call_async(SetBool.Request(data=True))
                else:
                    self.get_logger().warning(f"{self.p['servo_pause_service']} not offered: Servo not paused "
                                              "(zero twists are sent instead)")
            self.get_logger().error(f"E-STOP latched: zero command sent; only {self.p['reset_service']} releases it")
        response.success = True
        response.message = "e-stop latched" if cmd is not None else "e-stop was already latched"
        return response

    def _on_reset(self, request, response):
        now = self._now()
        if self.core is None:
            response.success, response.message = False, "not configured"
            return response
        released = self.core.reset_estop(now)
        if released:
            self.get_logger().warning("e-stop released: waiting for a chunk newer than the reset")
            self._report(S.Event("estop_reset", "released"), now)
            if self._pause is not None and self._pause.service_is_ready():
                # Unpausing Servo snaps to its last command (moveit2#1885): only zero twists were sent since.
                self._pause.call_async(SetBool.Request(data=False))
        response.success = True
        response.message = "e-stop released" if released else "e-stop was not latched"
        return response

    # ------------------------------------------------------------------------------ control loop
    def _loop(self) -> None:
        period = 1.0 / self.p["rate_hz"]
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                cmd = self.core.tick(self._now())
                with self._publish_lock:
                    # a command computed before the e-stop latched never goes out after the stop command
                    late = self.core.estop_latch.latched and (cmd.hold is None or cmd.hold.kind != "estop")
                    if not late:
                        self._publish(cmd)
                for e in cmd.events:
                    self._report(e, self._now())
            except Exception as exc:    # never die silently with the arm moving: hold and say why
                self.get_logger().error(f"control tick failed: {exc!r}; holding", throttle_duration_sec=1.0)
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_tick = time.monotonic()

    def _publish(self, cmd) -> None:
        p = self.p
        stamp = self.get_clock().now().to_msg()
        with self._publish_lock:
            if cmd.twist is not None and self.twist_pub is not None:
                m = TwistStamped()
                m.header.stamp, m.header.frame_id = stamp, p["base_frame"]
                (m.twist.linear.x, m.twist.linear.y, m.twist.linear.z) = (float(v) for v in cmd.twist[0])
                (m.twist.angular.x, m.twist.angular.y, m.twist.angular.z) = (float(v) for v in cmd.twist[1])
                self.twist_pub.publish(m)
            if cmd.trajectory is not None and self.traj_pub is not None:
                m = JointTrajectory(joint_names=self.joint_names)
                m.header.stamp = Time()          # zero: "start now" (joint_trajectory_controller)
                m.header.frame_id = p["base_frame"]
                m.points = [JointTrajectoryPoint(positions=[float(v) for v in pt.positions],
                                                 velocities=[float(v) for v in pt.velocities],
                                                 time_from_start=_duration(pt.time_from_start))
                            for pt in cmd.trajectory]
                self.traj_pub.publish(m)
            if cmd.pose is not None and self.pose_pub is not None:
                self.pose_pub.publish(C.pose_msg(cmd.pose.p, cmd.pose.quat, stamp, p["base_frame"]))
            if cmd.gripper is not None and self.gripper_pub is not None:
                self.gripper_pub.publish(Float64MultiArray(data=[float(cmd.gripper)]))
            if cmd.action is not None and self.executed_pub is not None and self._obs_stamp is not None:
                self.executed_pub.publish(self._executed_writer(np.asarray(cmd.action, np.float64)[None],
                                                                self._obs_stamp))
            self._last_cmd_kind = "hold" if cmd.hold is not None else "executing"
            self._source_counts[cmd.source] += 1      # policy / teleop (interventions) / hold ticks

    # ------------------------------------------------------------------------------ diagnostics
    def _report(self, event: S.Event, now: float) -> None:
        """One event on /diagnostics at once (limit events at most once per diagnostics period per kind)."""
        if event.kind.startswith(LIMIT_PREFIX):
            if now - self._last_limit_report.get(event.kind, -1e18) < self.p["diagnostics_period_s"]:
                return
            self._last_limit_report[event.kind] = now
        from hardware.arms.adapter import ADAPTER_HOLDS
        level = C.ERROR if event.kind == "estop" else (
            C.WARN if (event.holds or event.kind in ADAPTER_HOLDS or event.kind.startswith(LIMIT_PREFIX)
                       or event.kind in (S.BAD_INPUT, S.LATE_CHUNK, "bad_state", "ik_residual")) else C.OK)
        if event.kind in ADAPTER_HOLDS or event.kind == "bad_state":
            self.get_logger().warning(f"safety: {event}", throttle_duration_sec=1.0)
        values = {"event": event.kind, "detail": event.detail, "backend": self.p["backend"]}
        self.diagnostics_pub.publish(C.diagnostic_array(STATUS_NAME, level, str(event), values, C.sec_to_stamp(now)))

    def _publish_summary(self) -> None:
        lifecycle = self._state_machine.current_state[1]
        now = self._now()
        values = {"lifecycle": lifecycle, "backend": self.p["backend"], "command": self._last_cmd_kind}
        values.update({f"ticks.{k}": v for k, v in sorted(self._source_counts.items())})
        level, message = (C.OK if lifecycle == "active" else C.WARN), lifecycle
        if self.core is not None:
            latched = self.core.estop_latch.latched
            values["estop"] = latched
            values.update({f"events.{k}": v for k, v in sorted(self.core.events.snapshot().items())})
            if latched:
                level, message = C.ERROR, f"e-stop latched: {self.core.estop_latch.reason}"
        elif self._configure_error:
            level, message = C.ERROR, f"{lifecycle}: {self._configure_error}"
        self.diagnostics_pub.publish(C.diagnostic_array(STATUS_NAME, level, message, values, C.sec_to_stamp(now)))


def main(args=None) -> int:
    return main_for(ArmAdapterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
