"""ROS 2 inference node: contract topics in, action chunks out. Thin: conversion + policy + safety calls.

Threads: subscriptions and services run on the executor (ros_nodes.common.make_executor: the
EventsExecutor, or a MultiThreadedExecutor with separate callback groups); the policy runs in a
dedicated inference thread, woken the moment a sample completes a new time-aligned observation (no
timer: an observation never waits for a tick), so a slow inference never starves the subscriptions
(they keep filling the time-alignment buffers meanwhile) and the services (/policy/enable must work
while the network is busy).

Per tick (at most rate_hz, once per new time-aligned observation):
  assemble (policy_stack.time_alignment) -> watchdog on stamps -> policy.observe (observations not planned on)
  -> policy.act -> duration reported
  -> ActionSafety.filter_chunk -> publish JointTrajectory stamped with the newest observation used.
Any failed step publishes a hold (empty JointTrajectory) once and reports it in /policy/status.

Managed (lifecycle) node: see InferenceNode. With autostart (the default) it configures and activates
itself; /diagnostics carries a summary at diagnostics_period_s in every lifecycle state.
"""
from __future__ import annotations

import gc
import math
import os
import threading
import time
from collections import deque

import numpy as np
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import NameValidationException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from diagnostic_msgs.msg import DiagnosticArray
from trajectory_msgs.msg import JointTrajectory

from policy_stack import safety as S
from policy_stack.time_alignment import ObservationSync
from ros_nodes import convert as C
from ros_nodes import policy_io
from ros_nodes.common import (CHUNK_QOS, DIAGNOSTICS_TOPIC, IMAGE_QOS, SENSOR_QOS, STATE_QOS, WorkerThreadMixin,
                              declare_parameters, expand, main_for)

STATUS_NAME = "policy_stack/inference_node"
POLICY_ERROR = "policy_error"


class InferenceNode(WorkerThreadMixin, LifecycleNode):
    """Managed node. configure: load and warm up the policy, subscribe what its obs_spec needs; activate:
    publish chunks; deactivate: hold (one empty chunk) and stay silent; cleanup: free the policy and the
    subscriptions. /policy/enable true/false is a shortcut for activate/deactivate."""

    def __init__(self, **kwargs):
        super().__init__("inference_node", **kwargs)
        p = self.p = declare_parameters(self, "inference_node")
        threads = p["torch_threads"]
        if not threads and "OMP_NUM_THREADS" not in os.environ and (os.cpu_count() or 1) <= 4:
            threads = 1   # auto on small machines: the robot side and DDS need the other core(s)
        if threads:
            import torch  # only to cap its CPU threads; the policy itself comes from the core's loader
            torch.set_num_threads(threads)
        self._threads = threads
        self.period = 1.0 / p["rate_hz"]
        self.policy = None
        self.events = S.EventLog()
        self._lock = threading.Lock()                  # enabled / state / fault / last anchor
        self._policy_lock = threading.Lock()           # act() vs reset() from the service thread
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._input_subs: list = []
        self.enabled = False
        self.state, self.reason = "unconfigured", "waiting for the configure transition"
        self._configure_error = ""
        self._reset_counters()

        # Status and diagnostics are plain publishers: they report in every lifecycle state.
        self.status_pub = self.create_publisher(DiagnosticArray, p["status_topic"], STATE_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STATE_QOS)
        self.chunk_pub = self.create_lifecycle_publisher(JointTrajectory, p["action_chunk_topic"], CHUNK_QOS)
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(SetBool, p["enable_service"], self._on_enable, callback_group=services)
        self.create_service(Trigger, p["reset_service"], self._on_reset, callback_group=services)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics, callback_group=services)
        # Language-conditioned policies (KITE): the operator's instruction is part of every observation
        # (obs["instruction"]); a policy that grounds it exposes debug_outputs() (keypoint, heatmap),
        # published here for visualisation. Policies without them ignore both.
        self._instruction = ""
        self._debug_sent = None
        self.create_subscription(String, p["instruction_topic"], self._on_instruction, STATE_QOS,
                                 callback_group=services)
        self.keypoint_pub = self.create_publisher(PointStamped, p["keypoint_topic"], STATE_QOS)
        self.heatmap_pub = self.create_publisher(Image, p["heatmap_topic"], STATE_QOS)

    def _reset_counters(self) -> None:
        # (event, node time, stamp in ns of the refused message or None): a hold answering it carries the stamp
        self._fault: tuple[S.Event, float, int | None] | None = None
        self._last_anchor = -math.inf
        self._rate_ref: int | None = None             # anchor stamp of the last observation planned on
        self._prev_chunk: tuple[float, np.ndarray] | None = None
        self._latencies: deque = deque(maxlen=200)
        self._last_latency_ms = float("nan")
        self._last_obs_age_ms = float("nan")
        self._last_chunk_stamp = ""                    # header.stamp of the last chunk, "%.6f" s
        self._chunks = 0
        self._holds = 0
        self._last_publish = -math.inf               # node clock (s) of the last chunk published
        self._last_status = 0.0
        self._last_hold_log = 0.0

    # ------------------------------------------------------------------------------ lifecycle
    def autostart(self) -> None:
        """Without a lifecycle manager (autostart, the default): configure now and, with start_enabled,
        activate. A checkpoint that cannot be loaded is a start-up error (ValueError: one line, exit 2)."""
        if not self.p["autostart"]:
            self.get_logger().info("autostart false: waiting for the lifecycle configure transition")
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ValueError(self._configure_error or "configure failed")
        if self.p["start_enabled"]:
            self.trigger_activate()

    def on_configure(self, state) -> TransitionCallbackReturn:
        p = self.p
        self._configure_error = ""
        self.get_logger().info(f"loading policy {p['policy'] or '(shipped default)'} on {p['device']} ({p['backend']}), "
                               f"torch threads {self._threads or 'default'}")
        try:
            policy = policy_io.load(p["policy"], p["device"], p["backend"], p["sampler"], p["steps"])
            space, spec = policy.action_space, dict(policy.obs_spec)
            # Refuse a policy whose actions have no known meaning; log what they mean.
            described = policy_io.describe_action_space(space)
            plan = policy_io.plan_inputs(spec)
        except Exception as exc:   # a bad checkpoint fails the transition; the node stays up, unconfigured
            return self._configure_failed(f"cannot load policy {p['policy'] or '(shipped default)'}: {exc}")
        self.policy, self.space, self.spec, self.plan = policy, space, spec, plan
        self.get_logger().info("action space: " + described)
        self.limits = S.SafetyLimits(p["max_obs_age_s"], p["max_inference_s"], p["max_step_delta"] or None)
        self.safety = S.ActionSafety(self.space, self.limits)
        self.watchdog = S.Watchdog(self.limits)
        sync_keys = [k for k in self.spec if k not in self.plan.intrinsics.values()]
        # Stamps are integer nanoseconds here (copied verbatim into the chunk), so is the tolerance.
        self.sync = ObservationSync(sync_keys, self._anchor(sync_keys), p["sync_tolerance_s"] * 1e9)
        self._K: dict[str, np.ndarray] = {}           # camera -> intrinsics (latched, not time-aligned)
        # header.frame_id of chunks and holds: the frame the actions are expressed in (docs/ros2.md)
        self._action_frame = p["base_frame"] if self.space.kind == "eef_delta" else ""
        self._trajectory = C.TrajectoryWriter(self.space.names, p["action_dt_s"], self._action_frame)   # _tick only
        self._reset_counters()
        if p["warmup"]:
            self._warmup()
        try:
            self._subscribe(MutuallyExclusiveCallbackGroup())
        except (NameValidationException, ValueError, KeyError) as exc:     # a bad topic name or pattern
            self._drop_inputs()
            return self._configure_failed(f"cannot subscribe the inputs: {exc}")
        self.enabled = False
        self.state, self.reason = "disabled", "configured, not active"
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"configured: keys {list(self.spec)} (anchor {self.sync.anchor}), action {self.space.names} "
            f"({self.space.kind}), {p['rate_hz']:g} Hz -> {p['action_chunk_topic']}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        super().on_activate(state)                    # the chunk publisher goes live
        self._reset_policy()      # a fresh history: anything from before the activation is a gap
        with self._lock:
            self.enabled = True
            self.state, self.reason = "waiting", "active, waiting for an observation"
        self.get_logger().info("active: publishing action chunks")
        self._wake.set()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        with self._lock:
            self.enabled = False
        # The explicit stop goes out while the publisher is still live.
        self._hold(S.Event(S.DISABLED, "deactivated"), state="disabled")
        self.get_logger().info("inactive: holding")
        return super().on_deactivate(state)

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        """The node stays up and unconfigured; the reason goes to the log, the status and /diagnostics."""
        self._configure_error = reason
        self.get_logger().error(reason)
        self.state, self.reason = "unconfigured", reason
        return TransitionCallbackReturn.FAILURE

    def _drop_inputs(self) -> None:
        """Unsubscribe every input and free the policy."""
        for sub in self._input_subs:
            self.destroy_subscription(sub)
        self._input_subs = []
        self.policy = None
        gc.collect()

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._stop_thread()
        self._drop_inputs()
        self.state, self.reason = "unconfigured", "cleaned up"
        self.get_logger().info("cleaned up: policy and subscriptions freed")
        return super().on_cleanup(state)

    def _wake_worker(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------------------ set-up
    def _anchor(self, keys) -> str:
        if self.p["anchor_key"]:
            return self.p["anchor_key"]
        return policy_io.default_anchor(keys, self.plan)

    def _warmup(self) -> None:
        obs = {}
        for k, f in self.spec.items():
            a = np.zeros(f.shape, np.dtype(f.dtype))
            if k.endswith("_quat"):
                a[..., -1] = 1          # a zero quaternion would make a normalizing policy produce NaN
            obs[k] = a
        try:
            t0 = time.perf_counter()
            self.policy.act(obs)
            self.get_logger().info(f"warm-up inference {1e3 * (time.perf_counter() - t0):.1f} ms")
        except Exception as exc:  # warm-up is best effort; real errors show up (and hold) per tick
            self.get_logger().warning(f"warm-up inference failed: {exc!r}")
        self.policy.reset()

    def _subscribe(self, group) -> None:
        p, plan = self.p, self.plan
        sub = lambda typ, topic, cb, qos=SENSOR_QOS: self._input_subs.append(
            self.create_subscription(typ, topic, cb, qos, callback_group=group))
        if plan.joint_groups:
            names = {"arm": list(p["joint_names"]), "gripper": list(p["gripper_joint_names"])}
            groups = {k: names[g] for k, g in plan.joint_groups.items()}
            topic = p["joint_states_topic"]
            # Default arguments bind each topic now: `topic` is reassigned below (late-binding closures).
            sub(JointState, topic, lambda m, t=topic: self._ingest(m, t, lambda: C.joint_state_to_arrays(m, t, groups)))
        if plan.ee_keys:
            self._pose_sub(sub, p["ee_pose_topic"], policy_io.EEF_POS_KEY, policy_io.EEF_QUAT_KEY, plan.ee_keys)
        for obj, keys in plan.objects.items():
            self._pose_sub(sub, expand(p["object_pose_topic"], name=obj), f"{obj}_pos", f"{obj}_quat", keys)
        mb = p["max_message_bytes"]
        for cam, key in plan.rgb.items():
            topic, shape = expand(p["color_topic"], camera=cam), self.spec[key].shape
            sub(Image, topic, lambda m, t=topic, k=key, s=shape: self._ingest(
                m, t, lambda: {k: C.image_to_rgb(m, t, s, mb)}), IMAGE_QOS)
        for cam, key in plan.depth.items():
            topic, f = expand(p["depth_topic"], camera=cam), self.spec[key]
            sub(Image, topic, lambda m, t=topic, k=key, f=f: self._ingest(
                m, t, lambda: {k: C.image_to_depth(m, t, f.shape, f.dtype, mb)}), IMAGE_QOS)
        for cam in plan.cameras:
            topic = expand(p["camera_info_topic"], camera=cam)
            sub(CameraInfo, topic, lambda m, t=topic, c=cam: self._on_camera_info(m, t, c))

    def _pose_sub(self, sub, topic, pos_key, quat_key, wanted) -> None:
        base = self.p["base_frame"]

        def convert(m):
            if m.header.frame_id != base:   # a pose in another frame would be silently wrong: refuse it
                raise C.ConversionError(topic, f"frame_id {m.header.frame_id!r}, expected the robot base frame "
                                               f"{base!r} (parameter base_frame)")
            pos, quat = C.pose_to_arrays(m, topic)
            return {k: v for k, v in ((pos_key, pos), (quat_key, quat)) if k in wanted}
        sub(PoseStamped, topic, lambda m: self._ingest(m, topic, lambda: convert(m)))

    # ------------------------------------------------------------------------------ inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _ingest(self, msg, topic: str, convert) -> None:
        """Convert one input message into observation samples; malformed input -> fault, never raise."""
        stamp = None
        try:
            stamp = C.stamp_to_ns(msg.header.stamp)     # exact: it may become a chunk's stamp
            values = convert()
            ahead = stamp - self.get_clock().now().nanoseconds
            if ahead > self.limits.max_obs_age_s * 1e9:
                # Refused on arrival: a future sample would be the newest in its buffer for as long as
                # it stays in the future, and every real sample after it would look old.
                raise C.ConversionError(topic, f"stamp {ahead * 1e-9:.3f} s in the future (clocks out of sync?)")
        except C.ConversionError as exc:
            self._input_fault(exc, topic, stamp)
            return
        except Exception as exc:   # anything unexpected in a message is still "malformed input"
            self._input_fault(C.ConversionError(topic, repr(exc)), topic, stamp)
            return
        for k, v in values.items():
            self.sync.push(k, stamp, v)
        # Wake the inference thread only when this sample completes a new observation: an RGB-D tick is
        # 6-8 messages, and a wake per message is a thread switch and GIL hand-over per message, while
        # this thread still has the next frames to convert. Waiting, stale-input holds and status run
        # on the inference thread's own period timeout.
        if self.sync.assemble(after=self._last_anchor) is not None:
            self._wake.set()

    def _input_fault(self, exc: C.ConversionError, topic: str, stamp: int | None = None) -> None:
        event = self.events.add(S.Event(S.BAD_INPUT, str(exc)), self._now())
        # Drop what that stream delivered before the fault: nothing older than a bad message is trusted.
        for key in self._keys_of_topic(topic):
            self.sync.invalidate(key)
        with self._lock:
            self._fault = (event, self._now(), stamp)
        self.get_logger().warning(f"rejected input: {exc}", throttle_duration_sec=1.0)
        self._wake.set()

    def _keys_of_topic(self, topic: str) -> list[str]:
        p, plan = self.p, self.plan
        if topic == p["joint_states_topic"]:
            return list(plan.joint_groups)
        if topic == p["ee_pose_topic"]:
            return list(plan.ee_keys)
        for obj, keys in plan.objects.items():
            if topic == expand(p["object_pose_topic"], name=obj):
                return list(keys)
        for cam, key in plan.rgb.items():
            if topic == expand(p["color_topic"], camera=cam):
                return [key]
        for cam, key in plan.depth.items():
            if topic == expand(p["depth_topic"], camera=cam):
                return [key]
        return []

    def _on_camera_info(self, msg, topic, cam) -> None:
        try:
            self._K[cam] = C.camera_info_to_K(msg, topic)
        except C.ConversionError as exc:
            self._input_fault(exc, topic)

    # ------------------------------------------------------------------------------ services
    def _on_enable(self, request, response):
        """Shortcut for the lifecycle: true = activate, false = deactivate (hold)."""
        current = self._state_machine.current_state[1]
        if current not in ("inactive", "active"):
            response.success, response.message = False, f"not configured (lifecycle state {current})"
            return response
        want = "active" if request.data else "inactive"
        if current != want:
            ok = (self.trigger_activate() if request.data else self.trigger_deactivate()) == TransitionCallbackReturn.SUCCESS
        else:
            ok = True
        self.get_logger().info(f"enable -> {bool(request.data)}")
        response.success, response.message = ok, f"enabled={bool(request.data)}"
        self._wake.set()
        return response

    def _on_reset(self, request, response):
        if self.policy is None:
            response.success, response.message = False, "not configured"
            return response
        self._reset_policy()
        self.get_logger().info("reset: policy history and warm start cleared")
        response.success, response.message = True, "policy reset"
        self._wake.set()
        return response

    def _reset_policy(self) -> None:
        with self._policy_lock:
            seed = self.p["policy_seed"]
            self.policy.reset(seed=None if seed < 0 else seed)
            with self._lock:
                # Observations stamped before the reset belong to the previous episode; the first one at
                # or after it is answered at once (no control-rate spacing to keep yet). Under sim time
                # it carries exactly the reset's time, hence the -1 ns.
                self._last_anchor = self.get_clock().now().nanoseconds - 1
                # The previous episode's chunk must not keep driving the new one: an arm adapter executes
                # a chunk for up to max_chunk_age_s, so right after a reset it would close the gripper and
                # lift from the reset pose (seen in recordings through the fake arm). An explicit hold,
                # stamped just before the reset, cancels every older chunk and none answering the new episode.
                # (Not before the clock has started: a sim clock at 0 has no earlier stamp to give.)
                if self.chunk_pub is not None and self._last_anchor > 0:
                    self.chunk_pub.publish(C.hold_trajectory(self.space.names, C.ns_to_stamp(self._last_anchor),
                                                             self._action_frame))
                self._rate_ref = None
                self._fault, self._prev_chunk = None, None
                if self.enabled:
                    # A new episode: the emptied buffers are not a fault to announce with a hold (under
                    # sim time that hold would carry the new episode's first stamp and cancel its chunk).
                    self.state, self.reason = "waiting", "reset, waiting for an observation"
            # Emptied after the state is set: a tick in between must not see "running" and missing inputs.
            self.sync.clear()

    # ------------------------------------------------------------------------------ inference
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self.period)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._tick()
            except Exception as exc:  # the loop must survive anything; report and hold
                self._hold(S.Event(POLICY_ERROR, repr(exc)))
                self.get_logger().error(f"inference tick failed: {exc!r}", throttle_duration_sec=1.0)

    def _tick(self) -> None:
        now = self._now()
        with self._lock:
            enabled, fault = self.enabled, self._fault
            if fault is not None and now - fault[1] > self.limits.max_obs_age_s:
                fault = self._fault = None       # a fault holds for one watchdog window after the last one
            after = self._last_anchor
        if not enabled:
            return self._status(now)
        aligned = self.sync.assemble(after=after)
        if fault is not None:
            if aligned is not None:
                self._last_anchor = aligned.anchor_stamp   # consumed: a faulted window is never acted on
            # The hold answers the refused message (its stamp), else the observation it kept from acting on.
            return self._hold(fault[0], stamp=fault[2] if fault[2] is not None else (
                aligned.newest if aligned is not None else None))
        if aligned is None:
            missing = self.sync.missing() + [f"{c} camera_info" for c in self.plan.intrinsics if c not in self._K]
            if missing:
                return self._hold(S.Event(S.STALE_OBS, f"waiting for {missing}"), state="waiting")
            # Nothing new to answer. Inputs that went quiet are reported, but no hold is published: the
            # executing side stops by itself when its chunk is used up or its observation passes the
            # horizon, and a robot that waits for a slow answer must not be told its own input is stale.
            event = self.watchdog.check_observation(now, _seconds(self.sync.latest()))
            quiet_s = now - self._last_publish
            if event is None and self.state == "running" and quiet_s > self.limits.max_obs_age_s:
                # Inputs look fresh but none completes an observation (e.g. the anchor stream stalled):
                # "running" would be a lie once no chunk goes out.
                event = S.Event(S.STALE_OBS, f"no new complete observation for {quiet_s * 1e3:.0f} ms")
            return self._waiting(event) if event else self._status(now)
        spacing = 0.5 * self.period * 1e9
        if self._rate_ref is not None and aligned.anchor_stamp - self._rate_ref < spacing:
            return self._status(now)   # faster than the control rate: wait for a later sample
        # Steps the robot took while the previous inference ran: the policy sees them (observe()) so its
        # history stays one control period apart and its warm start shifts by the steps actually taken
        # since the last plan (one per observation), as in training and in-process evaluation.
        skipped = ([] if self._rate_ref is None else
                   self.sync.assemble_between(self._rate_ref, aligned.anchor_stamp, spacing))
        self._last_anchor = self._rate_ref = aligned.anchor_stamp
        stamp = aligned.newest          # int ns: every chunk or hold answering this observation carries it
        event = self.watchdog.check_observation(now, _seconds(aligned.stamps))
        if event is not None:
            return self._hold(event, stamp=stamp)

        obs = self._with_intrinsics(aligned.obs)
        with self._policy_lock:
            t0 = time.perf_counter()
            try:
                for past in skipped:
                    self.policy.observe(self._with_intrinsics(past.obs))
                chunk = self.policy.act(obs)
                self._publish_debug(stamp)
            except Exception as exc:
                self.get_logger().error(f"policy.act failed: {exc!r}", throttle_duration_sec=1.0)
                return self._hold(S.Event(POLICY_ERROR, repr(exc)), stamp=stamp)
            duration = time.perf_counter() - t0
        self._last_latency_ms = duration * 1e3
        self._latencies.append(duration * 1e3)
        event = self.watchdog.check_inference(duration)
        if event is not None:
            # Slow is latency, not a fault: the chunk still goes out with its observation's stamp and
            # the executing side starts at the action due now. Counted and logged, never a hold.
            self.events.add(event, now)
            self.get_logger().warning(str(event), throttle_duration_sec=5.0)
        verdict = self.safety.filter_chunk(chunk, self._prev_action(stamp))
        for e in verdict.events:
            self.events.add(e, now)
        if not verdict.ok:
            return self._hold(verdict.events[0], stamp=stamp)
        with self._lock:
            if not self.enabled:     # disabled while act() ran: its chunk must not go out
                return None
            self.chunk_pub.publish(self._trajectory(verdict.chunk, C.ns_to_stamp(stamp)))
            self._last_publish = now
            self._prev_chunk = (stamp, verdict.chunk)
            self._chunks += 1
            if self.state != "running":
                self.get_logger().info("running: publishing action chunks")
            self.state, self.reason = "running", ""
        self._last_obs_age_ms = (self._now() - stamp * 1e-9) * 1e3
        sec, nsec = divmod(stamp, 1_000_000_000)
        # pairs latency_ms with its chunk (bench, monitoring): seconds, rounded to microseconds
        self._last_chunk_stamp = f"{sec + nsec * 1e-9:.6f}"
        self._status(now, force=True)

    def _on_instruction(self, msg: String) -> None:
        text = " ".join(str(msg.data).split())
        if len(text) > 1000:
            self.get_logger().warning(f"instruction of {len(text)} characters ignored (limit 1000)")
            return
        with self._lock:
            changed, self._instruction = text != self._instruction, text
        if changed:
            self.get_logger().info(f"instruction: {text!r}")

    def _publish_debug(self, stamp: int) -> None:
        """The policy's last grounding (if any, once per new keypoint): PointStamped in the base frame and
        the heatmap as mono8, both stamped with the observation they were computed from."""
        outputs = self.policy.debug_outputs()
        point = outputs.get("keypoint_base")
        if point is None:
            return
        key = tuple(np.round(np.asarray(point, np.float64), 6))
        if key == self._debug_sent:
            return
        self._debug_sent = key
        msg = PointStamped()
        msg.header.stamp, msg.header.frame_id = C.ns_to_stamp(stamp), self.p["base_frame"]
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in point)
        self.keypoint_pub.publish(msg)
        heat = outputs.get("heatmap")
        if heat is not None:
            h, w = heat.shape
            self.heatmap_pub.publish(Image(header=msg.header, height=h, width=w, encoding="mono8", is_bigendian=0,
                                           step=w, data=np.ascontiguousarray(heat, np.uint8).tobytes()))

    def _with_intrinsics(self, obs: dict) -> dict:
        obs = dict(obs)
        if self._instruction:
            obs["instruction"] = self._instruction
        for cam, key in self.plan.intrinsics.items():
            obs[key] = self._K[cam]
        return obs

    def _prev_action(self, stamp: int):
        """The previous chunk's action for the step just before this chunk's first (rate-limit anchor)."""
        if self._prev_chunk is None:
            return None
        prev_stamp, prev = self._prev_chunk
        j = int(round((stamp - prev_stamp) * 1e-9 / self.p["action_dt_s"])) - 1
        return prev[j] if 0 <= j < len(prev) else None

    def _hold(self, event: S.Event, state: str = "hold", stamp: int | None = None) -> None:
        """stamp: integer ns of the observation this hold answers (None: it answers none, e.g. a
        disable or a stream that stopped; then the node's clock)."""
        now = self._now()
        self.events.add(event, now)
        with self._lock:
            changed = (self.state, self.reason) != (state, str(event))
            # Log a new kind of hold at once; the same hold (e.g. a growing observation age) every 5 s.
            new_kind = self.state != state or self.reason.split(":")[0] != event.kind
            # Tell the executing side at once when the node stops answering with chunks (from running, or
            # from waiting: the robot may still be executing its last chunk); not again while it stays so.
            entering = (self.state in ("running", "waiting") and state != self.state) or (
                state == "disabled" and self.state != "disabled")
            self.state, self.reason = state, str(event)
            if entering:
                # Explicit stop for the executing side; it would also stop on the chunk going stale.
                hold_stamp = C.ns_to_stamp(stamp) if stamp is not None else self.get_clock().now().to_msg()
                self.chunk_pub.publish(C.hold_trajectory(self.space.names, hold_stamp, self._action_frame))
                self._holds += 1
        if state != "waiting" and (new_kind or now - self._last_hold_log > 5.0):
            self._last_hold_log = now
            self.get_logger().warning(C.clip_text(event if state == event.kind else f"{state}: {event}"))
        self._status(now, force=changed)

    def _waiting(self, event: S.Event) -> None:
        """No new observation to answer: report why (state "waiting"), publish nothing on the chunk topic."""
        now = self._now()
        with self._lock:
            changed = (self.state, self.reason) != ("waiting", str(event))
            self.state, self.reason = "waiting", str(event)
        self._status(now, force=changed)

    def _status(self, now: float, force: bool = False) -> None:
        """/policy/status: per chunk (force) and at most once a period otherwise."""
        if not force and now - self._last_status < self.period:
            return
        self._last_status = now
        self.status_pub.publish(self._summary(now))

    def _publish_diagnostics(self) -> None:
        """/diagnostics at diagnostics_period_s, for rqt_robot_monitor, diagnostic_aggregator and the like."""
        self.diagnostics_pub.publish(self._summary(self._now()))

    def _summary(self, now: float) -> DiagnosticArray:
        info = {}
        try:
            info = dict(self.policy.info or {}) if self.policy is not None else {}
        except Exception:
            pass
        lat = np.asarray(self._latencies) if self._latencies else np.array([np.nan])
        with self._lock:
            state, reason, enabled = self.state, self.reason, self.enabled
        last = self.events.last()
        level = C.OK if state == "running" else C.WARN
        if (state == "hold" and reason.split(":")[0] in (S.BAD_INPUT, S.NAN_CHUNK, S.BAD_SHAPE, POLICY_ERROR)) or (
                state == "unconfigured" and self._configure_error):
            level = C.ERROR
        values = {
            "state": state, "reason": C.clip_text(reason), "enabled": enabled,
            "lifecycle": self._state_machine.current_state[1],
            "latency_ms": self._last_latency_ms,
            "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p99_ms": float(np.percentile(lat, 99)),
            "obs_age_ms": self._last_obs_age_ms, "chunk_stamp": self._last_chunk_stamp,
            "sampler": info.get("sampler", self.p["sampler"] or "default"),
            "steps": info.get("steps", self.p["steps"] or "default"),
            "uncertainty": info.get("uncertainty", float("nan")),
            "chunks": self._chunks, "holds": self._holds,
            "last_event": C.clip_text(last) if last else "",
            "policy": self.p["policy"] or "(shipped default)", "device": self.p["device"], "backend": self.p["backend"],
        }
        values.update({f"events.{k}": v for k, v in sorted(self.events.snapshot().items())})
        return C.diagnostic_array(STATUS_NAME, level, C.clip_text(f"{state}: {reason}" if reason else state),
                                  values, C.sec_to_stamp(now), self.p["device"])

    def close(self) -> None:
        """Stop the inference thread before the context goes (ros_nodes.common.main_for calls this)."""
        self._stop_thread()


def _seconds(stamps: dict) -> dict:
    """{key: int ns} -> {key: float s} for the watchdog's age checks (floats are fine for ages)."""
    return {k: v * 1e-9 for k, v in stamps.items()}


def main(args=None) -> int:
    return main_for(InferenceNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
