"""ROS 2 teleop node: a teleop device (hardware/teleop) -> `/teleop/action` at the control rate.

Per tick (timer at rate_hz, while active): poll the device -> publish the action as a one-point
JointTrajectory (names = action dimensions, the layout of /policy/action_chunk, stamped with the
publish time) on `action_topic`, the same command as a TwistStamped on `twist_topic` (for MoveIt Servo
users), and every episode event as std_msgs/String (JSON {"event", "stamp_ns", "sim_episode"}) on
`episode_event_topic`. The executing side (the sim node with teleop_topic set, or an arm adapter)
runs it through the same safety path as a policy chunk; a recorder splits episodes on the events.

Episode controls as LeRobot record has them, as std_srvs/Trigger services under service_prefix
(start, stop_success, stop_failure, rerecord, reset) and on the device's buttons/keys. reset and
rerecord also call sim_reset_service (the sim then starts its next episode, next seed); with
sim_status_topic set, the next episode may start only when the sim reports it.

The scripted device acts like an operator: the task's scripted expert (sim/experts.py) on the poses
received here, or a waypoint file; it starts, stops (success on `success_topic`, else failure after
max_steps) and resets episodes by itself, and quits after `episodes`. With answer_observations it ticks
once per received observation (not on the timer) and stamps the tick with that observation's stamp, so
an executing side in lockstep (the sim's teleop_answer_wait_s) runs each answer at the step it answers.

Managed (lifecycle) node: configure opens the device, activate starts the tick, deactivate publishes
one zero command and stops it, cleanup closes the device.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool, Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from policy_stack.spaces import ActionSpace
from ros_nodes import convert as C
from ros_nodes.common import CHUNK_QOS, DIAGNOSTICS_TOPIC, STATE_QOS, declare_parameters, expand, main_for

STATUS_NAME = "policy_stack/teleop_node"
# Episode events must all arrive, in order: reliable and a deep queue.
EVENT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
SERVICES = {"start": "start", "stop_success": "success", "stop_failure": "failure", "rerecord": "rerecord",
            "reset": "reset"}
QUIT_LINGER_S = 1.0      # after quit: keep the node up this long so the last events reach the recorder


class ExpertSource:
    """sim/experts.py's scripted expert on poses received over ROS 2 (robot base frame)."""

    def __init__(self, env: str, seed: int):
        from sim.envs import resolve_task
        from sim.experts import make_expert
        task = resolve_task(env)
        if task.name != "lift":
            raise ValueError(f"scripted expert over ROS 2: only lift needs nothing but poses; for {task.name!r} "
                             "give a waypoints_file")
        self.objects = dict(task.objects)          # project name -> robosuite prefix (the expert's keys)
        self.expert = make_expert(env, rng=np.random.default_rng(seed))

    def reset(self) -> None:
        self.expert.reset()

    def __call__(self, obs: dict) -> np.ndarray:
        return self.expert.act_from_state(obs, None)


class TeleopNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("teleop_node", **kwargs)
        p = self.p = declare_parameters(self, "teleop_node")
        names = list(p["action_names"])
        self.space = ActionSpace(names, [-1.0] * len(names), [1.0] * len(names),
                                 discrete=[names.index("gripper")] if "gripper" in names else [])
        self.period = 1.0 / p["rate_hz"]
        self.device = None
        self.source = None
        self.finished, self.exit_code = False, 0
        self._lock = threading.Lock()
        self._pending: list[str] = []             # events requested through the services
        self._poses: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}   # key -> (stamp ns, pos, quat)
        self._success = False
        self._sim_episode: int | None = None      # newest episode the sim reported
        self._waiting_for_episode: int | None = None   # after a reset: ready once the sim is past this one
        self._reset_answered = True
        self._reset_needed = False
        self._quit_at: float | None = None
        self._timer = None
        self._answering = False                   # answer_observations: ticks come from observations (while active)
        self._answered_ns = -1                    # stamp of the newest observation answered
        self._log = None
        self._counts = {"ticks": 0, "engaged": 0, "events": 0}
        self._writer = C.TrajectoryWriter(names, self.period)

        services = MutuallyExclusiveCallbackGroup()
        for srv, event in SERVICES.items():
            self.create_service(Trigger, f"{p['service_prefix'].rstrip('/')}/{srv}",
                                lambda req, res, e=event: self._on_service(e, res), callback_group=services)
        self._sim_reset = (self.create_client(Trigger, p["sim_reset_service"], callback_group=services)
                           if p["sim_reset_service"] else None)
        self.action_pub = self.create_lifecycle_publisher(JointTrajectory, p["action_topic"], CHUNK_QOS)
        self.twist_pub = (self.create_lifecycle_publisher(TwistStamped, p["twist_topic"], CHUNK_QOS)
                          if p["twist_topic"] else None)
        self.state_pub = (self.create_lifecycle_publisher(Joy, p["state_topic"], CHUNK_QOS)
                          if p["state_topic"] else None)
        self.event_pub = self.create_publisher(String, p["episode_event_topic"], EVENT_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STATE_QOS)
        self.create_subscription(Bool, p["success_topic"], self._on_success, STATE_QOS)
        if p["sim_status_topic"]:
            self.create_subscription(DiagnosticArray, p["sim_status_topic"], self._on_sim_status, STATE_QOS)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics, callback_group=services)

    # ------------------------------------------------------------------------------ lifecycle
    def autostart(self) -> None:
        if not self.p["autostart"]:
            self.get_logger().info("autostart false: waiting for the lifecycle configure transition")
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ValueError(self._config_error)
        self.trigger_activate()

    def on_configure(self, state) -> TransitionCallbackReturn:
        from hardware.teleop import make_device
        p = self.p
        self._config_error = ""
        try:
            options = {"translation_scale": p["translation_scale"], "rotation_scale": p["rotation_scale"],
                       "deadman_timeout_s": p["deadman_timeout_s"]}
            if p["device"] == "scripted":
                if p["waypoints_file"]:
                    from hardware.teleop.scripted import WaypointSource
                    self.source = WaypointSource(p["waypoints_file"])
                else:
                    self.source = ExpertSource(p["env"], p["expert_seed"])
                    self._subscribe_poses()
                options.update(episodes=p["episodes"], max_steps=p["max_steps"],
                               success_hold_steps=p["success_hold_steps"],
                               takeover_after_steps=p["takeover_after_steps"])
            elif p["device"] == "spacemouse":
                options["hid_path"] = p["hid_path"]
            elif p["device"] == "gamepad":
                options["index"] = p["gamepad_index"]
            elif p["device"] == "keyboard":
                options["tty"] = p["keyboard_tty"]
            if p["answer_observations"] and not isinstance(self.source, ExpertSource):
                raise ValueError("answer_observations needs the scripted expert (device scripted, no waypoints_file): "
                                 "only it computes its action from the observation")
            self.device = make_device(p["device"], self.space, period_s=self.period, source=self.source, **options)
        except (ValueError, OSError, ImportError) as exc:
            self._config_error = f"device {p['device']}: {exc}"
            self.get_logger().error(f"configure failed: {self._config_error}")
            return TransitionCallbackReturn.FAILURE
        if p["command_log"]:
            self._log = open(p["command_log"], "a", buffering=1)
        self.get_logger().info(f"device {p['device']} at {p['rate_hz']:g} Hz -> {p['action_topic']}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        if self.p["answer_observations"]:
            self._answering = True            # _on_pose ticks; the timer only ends a quit's linger
            self._timer = self.create_timer(self.period, self._linger_tick)
        else:
            # a lambda: rclpy passes a TimerInfo to a callback that takes an argument (_tick's stamp_ns)
            self._timer = self.create_timer(self.period, lambda: self._tick())
        return result

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._answering = False
        self._stop_timer()
        if self.device is not None and self.p["publish_when_released"]:
            # one zero command so the executing side stops now, not at its timeout
            self._publish(self.device.mapper.zero(self.device.gripper), self._now_ns(), [], False)
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._close_device()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._stop_timer()
        self._close_device()
        return TransitionCallbackReturn.SUCCESS

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _close_device(self) -> None:
        if self.device is not None:
            self.device.close()
            self.device = None
        if self._log is not None:
            self._log.close()
            self._log = None

    # ------------------------------------------------------------------------------ inputs
    def _subscribe_poses(self) -> None:
        p = self.p
        self.create_subscription(PoseStamped, p["ee_pose_topic"],
                                 lambda m: self._on_pose("robot0_eef", m, p["ee_pose_topic"]), STATE_QOS)
        for name, prefix in self.source.objects.items():
            topic = expand(p["object_pose_topic"], name=name)
            self.create_subscription(PoseStamped, topic, lambda m, k=prefix, t=topic: self._on_pose(k, m, t), STATE_QOS)

    def _on_pose(self, key: str, msg, topic: str) -> None:
        try:
            pos, quat = C.pose_to_arrays(msg, topic)
        except C.ConversionError as exc:
            self.get_logger().warning(f"ignored pose: {exc}", throttle_duration_sec=1.0)
            return
        stamp_ns = C.stamp_to_ns(msg.header.stamp)
        with self._lock:
            self._poses[key] = (stamp_ns, pos.astype(np.float64), quat.astype(np.float64))
        if self._answering:
            self._answer(stamp_ns)

    def _answer(self, stamp_ns: int) -> None:
        """answer_observations: tick once every pose of this stamp is in (one observation, one answer)."""
        need = ["robot0_eef", *self.source.objects.values()]
        with self._lock:
            if stamp_ns <= self._answered_ns or any(k not in self._poses or self._poses[k][0] != stamp_ns
                                                    for k in need):
                return
            self._answered_ns = stamp_ns
        self._tick(stamp_ns)

    def _linger_tick(self) -> None:
        """answer_observations: after quit, the node ends QUIT_LINGER_S later even if no observation comes."""
        if self._quit_at is not None and time.monotonic() >= self._quit_at:
            self.finished = True

    def _on_success(self, msg) -> None:
        self._success = bool(msg.data)

    def _on_sim_status(self, msg) -> None:
        values = C.diagnostic_values(msg)
        try:
            episode = int(values.get("episode", ""))
        except ValueError:
            return
        with self._lock:
            self._sim_episode = episode

    def _on_service(self, event: str, response):
        with self._lock:
            self._pending.append(event)
        response.success, response.message = True, f"{event} at the next tick"
        return response

    # ------------------------------------------------------------------------------ tick
    def _ready(self) -> bool:
        """May a new episode start: the reset was answered, the sim (if followed) reports a new episode,
        and the expert has every pose it needs."""
        with self._lock:
            if not self._reset_answered:
                return False
            if self.p["sim_status_topic"]:
                if self._sim_episode is None:
                    return False
                if self._waiting_for_episode is not None and self._sim_episode <= self._waiting_for_episode:
                    return False
            if isinstance(self.source, ExpertSource):
                need = ["robot0_eef", *self.source.objects.values()]
                return all(k in self._poses for k in need)
            return True

    def _obs(self) -> dict:
        obs = {"success": self._success, "ready": self._ready()}
        with self._lock:
            for key, (_, pos, quat) in self._poses.items():
                obs[f"{key}_pos"], obs[f"{key}_quat"] = pos, quat
        return obs

    def _tick(self, stamp_ns: int | None = None) -> None:
        """One tick: poll the device and publish. stamp_ns: the observation this tick answers
        (answer_observations); None = a timer tick, stamped now."""
        if self.device is None:
            return
        if self._sim_reset is not None:
            self._call_reset()
        now_ns = self._now_ns() if stamp_ns is None else stamp_ns
        if self._quit_at is not None:
            if time.monotonic() >= self._quit_at:
                self.finished = True
            cmd_action, events, engaged = self.device.mapper.zero(self.device.gripper), [], False
        else:
            try:
                cmd = self.device.poll(now_ns * 1e-9, self._obs())
            except (ValueError, OSError) as exc:   # a device that broke mid-run: zero command, say why
                self.get_logger().error(f"device {self.p['device']}: {exc}; publishing zero commands",
                                        throttle_duration_sec=1.0)
                cmd_action, events, engaged = self.device.mapper.zero(self.device.gripper), [], False
            else:
                cmd_action, events, engaged = cmd.action, cmd.events, cmd.engaged
                self._counts["engaged"] += int(cmd.engaged)
            with self._lock:
                events = self._pending + events
                self._pending = []
        self._counts["ticks"] += 1
        # A recorder opens the episode on "start" before this tick's action arrives, and closes it on a
        # stop after this tick's action: the episode holds every action its frames may be paired with.
        for event in events:
            if event == "start":
                self._publish_event(event, now_ns)
        self._publish(cmd_action, now_ns, events, engaged)
        for event in events:
            if event != "start":
                self._publish_event(event, now_ns)
        for event in events:
            self._handle_event(event)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds     # wall time, or /clock with use_sim_time

    def _publish(self, action: np.ndarray, stamp_ns: int, events: list, engaged: bool) -> None:
        stamp = C.ns_to_stamp(stamp_ns)
        if self.state_pub is not None:
            # Stamped device state, every tick: what a recording needs to mark interventions (HIL-SERL).
            self.state_pub.publish(Joy(header=Header(stamp=stamp, frame_id=self.p["base_frame"]),
                                       axes=[float(a) for a in action], buttons=[int(engaged)]))
        if not (engaged or self.p["publish_when_released"]):
            return                        # intervention mode: released = the policy drives
        self.action_pub.publish(self._writer(np.asarray(action, np.float64)[None], stamp))
        if self.twist_pub is not None:
            tw = self.device.mapper.twist(action)
            msg = TwistStamped()
            msg.header.stamp, msg.header.frame_id = stamp, self.p["base_frame"]
            (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z,
             msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z) = (float(v) for v in tw)
            self.twist_pub.publish(msg)
        if self._log is not None:
            self._log.write(json.dumps({"stamp_ns": stamp_ns, "action": [float(a) for a in action],
                                        "engaged": bool(engaged), "events": events}) + "\n")

    def _publish_event(self, event: str, now_ns: int) -> None:
        self._counts["events"] += 1
        with self._lock:
            sim_episode = self._sim_episode
        self.event_pub.publish(String(data=json.dumps({"event": event, "stamp_ns": now_ns,
                                                       "sim_episode": sim_episode})))
        self.get_logger().info(f"episode event: {event}" + (f" (sim episode {sim_episode})" if sim_episode is not None else ""))

    def _handle_event(self, event: str) -> None:
        with self._lock:
            sim_episode = self._sim_episode
        if event in ("reset", "rerecord"):
            self._reset_scene(sim_episode)
        elif event == "quit" and self.p["exit_on_quit"]:
            self._quit_at = time.monotonic() + QUIT_LINGER_S

    def _reset_scene(self, sim_episode) -> None:
        self._success = False
        if self._sim_reset is None:
            return
        with self._lock:
            self._waiting_for_episode = sim_episode if sim_episode is not None else -1
            self._reset_answered = False
            self._reset_needed = True
        self._call_reset()

    def _call_reset(self) -> None:
        """Call the sim reset once its server is discovered (a request sent before that is lost)."""
        with self._lock:
            if not self._reset_needed:
                return
            if not self._sim_reset.service_is_ready():
                self.get_logger().warning(f"{self.p['sim_reset_service']} not discovered yet; retrying",
                                          throttle_duration_sec=2.0)
                return
            self._reset_needed = False

        def done(_f):
            with self._lock:
                self._reset_answered = True
        self._sim_reset.call_async(Trigger.Request()).add_done_callback(done)

    def _publish_diagnostics(self) -> None:
        lifecycle = self._state_machine.current_state[1]
        values = {"lifecycle": lifecycle, "device": self.p["device"], **self._counts}
        self.diagnostics_pub.publish(C.diagnostic_array(STATUS_NAME, C.OK if lifecycle == "active" else C.WARN,
                                                        lifecycle, values, C.ns_to_stamp(self._now_ns())))

    def close(self) -> None:
        self._stop_timer()
        self._close_device()


def main(args=None) -> int:
    return main_for(TeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
