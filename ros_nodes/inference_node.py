"""ROS 2 inference node: contract topics in, action chunks out. Thin: conversion + policy + safety calls.

Threads: subscriptions and services run on the executor (ros_nodes.common.make_executor: the
EventsExecutor, or a MultiThreadedExecutor with separate callback groups); the policy runs in a
dedicated inference thread, woken the moment a sample completes a new time-aligned observation (no
timer: an observation never waits for a tick), so a slow inference never starves the subscriptions
(they keep filling the time-alignment buffers meanwhile) and the services (/policy/enable must work
while the network is busy).

Per tick (at most rate_hz, once per new time-aligned observation):
  assemble (policy_stack.obs_history) -> watchdog on stamps -> policy.act -> watchdog on duration
  -> ActionSafety.filter_chunk -> publish JointTrajectory stamped with the newest observation used.
Any failed step publishes a hold (empty JointTrajectory) once and reports it in /policy/status.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import SetBool, Trigger
from diagnostic_msgs.msg import DiagnosticArray
from trajectory_msgs.msg import JointTrajectory

from policy_stack import safety as S
from policy_stack.obs_history import ObservationSync
from ros_nodes import convert as C
from ros_nodes import policy_io
from ros_nodes.common import CHUNK_QOS, IMAGE_QOS, SENSOR_QOS, STATE_QOS, declare_parameters, expand, main_for

STATUS_NAME = "policy_stack/inference_node"
POLICY_ERROR = "policy_error"


class InferenceNode(Node):
    def __init__(self, **kwargs):
        super().__init__("inference_node", **kwargs)
        p = self.p = declare_parameters(self, "inference_node")
        threads = p["torch_threads"]
        if not threads and "OMP_NUM_THREADS" not in os.environ and (os.cpu_count() or 1) <= 4:
            threads = 1   # auto on small machines: the robot side and DDS need the other core(s)
        if threads:
            import torch  # only to cap its CPU threads; the policy itself comes from the core's loader
            torch.set_num_threads(threads)
        self.get_logger().info(f"loading policy {p['policy'] or '(shipped default)'} on {p['device']} ({p['backend']}), "
                               f"torch threads {threads or 'default'}")
        self.policy = policy_io.load(p["policy"], p["device"], p["backend"], p["sampler"], p["steps"])
        self.space = self.policy.action_space
        # Refuse (one line, exit 2) a policy whose actions have no known meaning; print what they mean.
        self.get_logger().info("action space: " + policy_io.describe_action_space(self.space))
        self.spec = dict(self.policy.obs_spec)
        self.plan = policy_io.plan_inputs(self.spec)
        self.limits = S.SafetyLimits(p["max_obs_age_s"], p["max_inference_s"], p["max_step_delta"] or None)
        self.safety = S.ActionSafety(self.space, self.limits)
        self.watchdog = S.Watchdog(self.limits)
        self.events = S.EventLog()
        self.period = 1.0 / p["rate_hz"]

        sync_keys = [k for k in self.spec if k not in self.plan.intrinsics.values()]
        # Stamps are integer nanoseconds here (copied verbatim into the chunk), so is the tolerance.
        self.sync = ObservationSync(sync_keys, self._anchor(sync_keys), p["sync_tolerance_s"] * 1e9)
        self._K: dict[str, np.ndarray] = {}           # camera -> intrinsics (latched, not time-aligned)

        self._lock = threading.Lock()                  # enabled / state / fault / last anchor
        self._policy_lock = threading.Lock()           # act() vs reset() from the service thread
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.enabled = bool(p["start_enabled"])
        self.state, self.reason = ("waiting", "no observation yet") if self.enabled else ("disabled", "")
        self._fault: tuple[S.Event, float] | None = None
        self._last_anchor = -math.inf
        self._prev_chunk: tuple[float, np.ndarray] | None = None
        self._latencies: deque = deque(maxlen=200)
        self._last_latency_ms = float("nan")
        self._last_obs_age_ms = float("nan")
        self._last_chunk_stamp = ""                    # header.stamp of the last chunk, "%.6f" s
        self._chunks = 0
        self._holds = 0
        self._last_status = 0.0
        self._last_hold_log = 0.0

        if p["warmup"]:
            self._warmup()

        sensors, services = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.chunk_pub = self.create_publisher(JointTrajectory, p["action_chunk_topic"], CHUNK_QOS)
        # header.frame_id of chunks and holds: the frame the actions are expressed in (docs/ros2.md)
        self._action_frame = p["base_frame"] if self.space.kind == "eef_delta" else ""
        self._trajectory = C.TrajectoryWriter(self.space.names, p["action_dt_s"], self._action_frame)   # _tick only
        self.status_pub = self.create_publisher(DiagnosticArray, p["status_topic"], STATE_QOS)
        self._subscribe(sensors)
        self.create_service(SetBool, p["enable_service"], self._on_enable, callback_group=services)
        self.create_service(Trigger, p["reset_service"], self._on_reset, callback_group=services)

        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"ready: keys {list(self.spec)} (anchor {self.sync.anchor}), action {self.space.names} "
            f"({self.space.kind}), {p['rate_hz']:g} Hz -> {p['action_chunk_topic']}")

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
        sub = lambda typ, topic, cb, qos=SENSOR_QOS: self.create_subscription(typ, topic, cb, qos, callback_group=group)
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
        try:
            values = convert()
            stamp = C.stamp_to_ns(msg.header.stamp)     # exact: it may become a chunk's stamp
        except C.ConversionError as exc:
            self._input_fault(exc, topic)
            return
        except Exception as exc:   # anything unexpected in a message is still "malformed input"
            self._input_fault(C.ConversionError(topic, repr(exc)), topic)
            return
        for k, v in values.items():
            self.sync.push(k, stamp, v)
        # Wake the inference thread only when this sample completes a new observation: an RGB-D tick is
        # 6-8 messages, and a wake per message is a thread switch and GIL hand-over per message, while
        # this thread still has the next frames to convert. Waiting, stale-input holds and status run
        # on the inference thread's own period timeout.
        if self.sync.assemble(after=self._last_anchor) is not None:
            self._wake.set()

    def _input_fault(self, exc: C.ConversionError, topic: str) -> None:
        event = self.events.add(S.Event(S.BAD_INPUT, str(exc)), self._now())
        # Drop what that stream delivered before the fault: nothing older than a bad message is trusted.
        for key in self._keys_of_topic(topic):
            self.sync.invalidate(key)
        with self._lock:
            self._fault = (event, self._now())
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
        with self._lock:
            was, self.enabled = self.enabled, bool(request.data)
        if not request.data:
            self._hold(S.Event(S.DISABLED, "through the enable service"), state="disabled")
        elif not was:
            # The history would have a gap spanning the disabled time: start it afresh.
            self._reset_policy()
            with self._lock:
                self.state, self.reason = "waiting", "enabled, waiting for an observation"
        self.get_logger().info(f"enable -> {bool(request.data)}")
        response.success, response.message = True, f"enabled={bool(request.data)}"
        self._wake.set()
        return response

    def _on_reset(self, request, response):
        self._reset_policy()
        self.get_logger().info("reset: policy history and warm start cleared")
        response.success, response.message = True, "policy reset"
        self._wake.set()
        return response

    def _reset_policy(self) -> None:
        with self._policy_lock:
            self.policy.reset()
            self.sync.clear()
            with self._lock:
                # Observations stamped before the reset belong to the previous episode.
                self._last_anchor = self.get_clock().now().nanoseconds
                self._fault, self._prev_chunk = None, None

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
            return self._hold(fault[0], stamp=aligned.newest if aligned is not None else None)
        if aligned is None:
            missing = self.sync.missing() + [f"{c} camera_info" for c in self.plan.intrinsics if c not in self._K]
            if missing:
                return self._hold(S.Event(S.STALE_OBS, f"waiting for {missing}"), state="waiting")
            event = self.watchdog.check_observation(now, _seconds(self.sync.latest()))
            return self._hold(event) if event else self._status(now)
        if aligned.anchor_stamp - after < 0.5 * self.period * 1e9:
            return self._status(now)   # faster than the control rate: wait for a later sample
        self._last_anchor = aligned.anchor_stamp
        stamp = aligned.newest          # int ns: every chunk or hold answering this observation carries it
        event = self.watchdog.check_observation(now, _seconds(aligned.stamps))
        if event is not None:
            return self._hold(event, stamp=stamp)

        obs = dict(aligned.obs)
        for cam, key in self.plan.intrinsics.items():
            obs[key] = self._K[cam]
        with self._policy_lock:
            t0 = time.perf_counter()
            try:
                chunk = self.policy.act(obs)
            except Exception as exc:
                self.get_logger().error(f"policy.act failed: {exc!r}", throttle_duration_sec=1.0)
                return self._hold(S.Event(POLICY_ERROR, repr(exc)), stamp=stamp)
            duration = time.perf_counter() - t0
        self._last_latency_ms = duration * 1e3
        self._latencies.append(duration * 1e3)
        event = self.watchdog.check_inference(duration)
        if event is not None:
            return self._hold(event, stamp=stamp)
        verdict = self.safety.filter_chunk(chunk, self._prev_action(stamp))
        for e in verdict.events:
            self.events.add(e, now)
        if not verdict.ok:
            return self._hold(verdict.events[0], stamp=stamp)
        with self._lock:
            if not self.enabled:     # disabled while act() ran: its chunk must not go out
                return None
            self.chunk_pub.publish(self._trajectory(verdict.chunk, C.ns_to_stamp(stamp)))
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
            entering = self.state == "running" or (state == "disabled" and self.state != "disabled")
            self.state, self.reason = state, str(event)
            if entering:
                # Explicit stop for the executing side; it would also stop on the chunk going stale.
                hold_stamp = C.ns_to_stamp(stamp) if stamp is not None else self.get_clock().now().to_msg()
                self.chunk_pub.publish(C.hold_trajectory(self.space.names, hold_stamp, self._action_frame))
                self._holds += 1
        if state != "waiting" and (new_kind or now - self._last_hold_log > 5.0):
            self._last_hold_log = now
            self.get_logger().warning(str(event) if state == event.kind else f"{state}: {event}")
        self._status(now, force=changed)

    def _status(self, now: float, force: bool = False) -> None:
        if not force and now - self._last_status < self.period:
            return
        self._last_status = now
        info = {}
        try:
            info = dict(self.policy.info or {})
        except Exception:
            pass
        lat = np.asarray(self._latencies) if self._latencies else np.array([np.nan])
        with self._lock:
            state, reason, enabled = self.state, self.reason, self.enabled
        last = self.events.last()
        level = C.OK if state == "running" else C.WARN
        if state == "hold" and reason.split(":")[0] in (S.BAD_INPUT, S.NAN_CHUNK, S.BAD_SHAPE, POLICY_ERROR):
            level = C.ERROR
        values = {
            "state": state, "reason": reason, "enabled": enabled,
            "latency_ms": self._last_latency_ms,
            "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p99_ms": float(np.percentile(lat, 99)),
            "obs_age_ms": self._last_obs_age_ms, "chunk_stamp": self._last_chunk_stamp,
            "sampler": info.get("sampler", self.p["sampler"] or "default"),
            "steps": info.get("steps", self.p["steps"] or "default"),
            "uncertainty": info.get("uncertainty", float("nan")),
            "chunks": self._chunks, "holds": self._holds,
            "last_event": str(last) if last else "",
            "policy": self.p["policy"] or "(shipped default)", "device": self.p["device"], "backend": self.p["backend"],
        }
        values.update({f"events.{k}": v for k, v in sorted(self.events.snapshot().items())})
        self.status_pub.publish(C.diagnostic_array(STATUS_NAME, level, f"{state}: {reason}" if reason else state,
                                                   values, C.sec_to_stamp(now), self.p["device"]))

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)


def _seconds(stamps: dict) -> dict:
    """{key: int ns} -> {key: float s} for the watchdog's age checks (floats are fine for ages)."""
    return {k: v * 1e-9 for k, v in stamps.items()}


def main(args=None) -> int:
    return main_for(InferenceNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
