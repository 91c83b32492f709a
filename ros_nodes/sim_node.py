"""ROS 2 simulation node: a sim/ environment that behaves like the robot side of the contract.

It publishes the observation topics (stamped with wall time at capture, or simulated time with use_sim_time: see config/sim_node_parameters.yaml),
executes the newest received chunk receding-horizon through policy_stack.safety.ChunkFollower (the
same code a hardware node uses) and holds whenever that chunk is missing, stale or used up. The env
runs in its own thread in real time at rate_hz; the executor thread receives chunks and services.

Per tick: capture + publish observation (stamp T) -> wait up to action_wait_s for the chunk computed
from it -> action = chunk[floor((now - stamp)/dt)] or hold (or, with teleop_topic, a fresh teleop action:
a human intervention takes over while the deadman is held) -> env.step -> /clock, /episode/success,
/sim/status. Per episode it logs success and loop latency (observation stamp -> chunk received here)
and appends one JSON line to results_file for `policy-stack up`.

Teleop recording (`policy-stack record`): with wait_for_engage a new episode does not step until the
teleop state says engaged (the reset observation is published again every period meanwhile), so the
recording starts from the reset scene; with teleop_answer_wait_s each step waits for the teleop node's
answer to its observation (the scripted expert, answer_observations), so each executed and recorded
action is the one computed from that step's observation.

Fake real arm (arm_interface servo | jtc | pose; default chunk = the above): the node does NOT consume
/policy/action_chunk; it is the robot's controller instead (MoveIt Servo twists, a
joint_trajectory_controller, or a Cartesian impedance equilibrium pose, plus the gripper's
forward_command_controller; ros_nodes/fake_arm.py, logic in sim/fake_controllers.py), so the arm adapter
drives the robosuite arm as it would drive a real one. Observations, /clock and episodes stay as above.

Managed (lifecycle) node: configure builds the environment, activate starts (or resumes) stepping,
deactivate pauses it between steps, cleanup closes the environment. With autostart (the default) it
configures and activates itself. Simulated time: /clock advances one period per env step; with
use_sim_time true the observations are stamped with it (otherwise with the wall clock).
"""
from __future__ import annotations

import json
import threading
import time
import traceback
from collections import Counter, deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState, Joy
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from builtin_interfaces.msg import Time

from policy_stack import safety as S
from policy_stack.delay import DelayLine
from ros_nodes import convert as C
from ros_nodes.common import (CHUNK_QOS, DIAGNOSTICS_TOPIC, LATCHED_QOS, SENSOR_QOS, STATE_QOS, WorkerThreadMixin, declare_parameters,
                              expand, main_for)

STATUS_NAME = "policy_stack/sim_node"
# /clock: only the newest time matters; reliable matches rclpy's best-effort TimeSource subscription too.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
CONFIGURE_TIMEOUT_S = 300.0    # building a robosuite env with cameras takes seconds, more on a loaded machine
# Where an executed step's action came from (/sim/status "source", results "sources").
SOURCE_POLICY, SOURCE_TELEOP, SOURCE_HOLD, SOURCE_ARM = "policy", "teleop", "hold", "arm"


class SimNode(WorkerThreadMixin, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("sim_node", **kwargs)
        p = self.p = declare_parameters(self, "sim_node")
        self.use_sim_time = bool(self.get_parameter("use_sim_time").value)
        self._sim_ns = 0                       # simulated time: one period per env step
        self._period_ns = int(round(1e9 / p["rate_hz"]))
        from sim.envs import default_action_space, make_env  # heavy (robosuite, MuJoCo): only in the process that simulates

        self.arm_interface = p["arm_interface"]
        self.cameras = [c.strip() for c in p["cameras"].split(",") if c.strip()]
        render = list(self.cameras)
        if p["video_path"] and p["video_camera"] not in render:
            render.append(p["video_camera"])    # rendered for the video only, not published
        self.period = 1.0 / p["rate_hz"]
        # The env (and its GL context, current only in the creating thread) is built in the sim thread.
        # real_profile (sim-to-real sessions): the sim stands in for a real arm that differs from training
        # (sim/real_profiles.py); validated here so a bad name fails at start-up.
        self.real_profile = None
        if p["real_profile"]:
            from sim.real_profiles import load_profile
            self.real_profile = load_profile(p["real_profile"])
        self._make_env = lambda: self._wear_profile(make_env(
            p["env"], cameras=render, image_size=p["image_size"], depth=p["depth"], seed=p["seed"],
            horizon=p["max_steps"], control_freq=int(round(p["rate_hz"])),
            arm_controller="joint_position" if self.arm_interface == "jtc" else "osc_pose"))
        self.env = None
        self.space = default_action_space()
        safety = S.ActionSafety(self.space, S.SafetyLimits(max_step_delta=p["max_step_delta"] or None))
        self.follower = S.ChunkFollower(safety, max_age_s=p["max_chunk_age_s"], blend_steps=p["blend_steps"])
        # Teleop (human interventions) has its own follower on the same safety path: a teleop action is
        # valid for teleop_timeout_s, and while one is, it takes over from the policy's chunk (see _choose).
        self.teleop_follower = S.ChunkFollower(safety, max_age_s=p["teleop_timeout_s"])
        self._policy_seen = False              # a policy chunk was accepted (else teleop-only: hold when released)
        # Injected latency (sim-to-real randomization); zero delays run inline.
        self._obs_delay = DelayLine(p["obs_delay_s"], p["delay_jitter"], seed=p["seed"], name="obs_delay")
        self._action_delay = DelayLine(p["action_delay_s"], p["delay_jitter"], seed=p["seed"] + 1, name="action_delay")
        self.events = S.EventLog()
        self.finished, self.exit_code = False, 0
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._active = threading.Event()       # lifecycle active: the sim thread steps only while set
        self._configured = threading.Event()   # the sim thread built the env (or failed: _config_error)
        self._config_error = ""
        self._progress = {"episode": -1, "step": 0, "success": False}
        self._latencies: list[float] = []     # this episode's loop latencies, ms
        self._lat_lock = threading.Lock()
        self._video = None
        if p["video_path"]:
            from ros_nodes.video import Mp4Writer
            self._video = Mp4Writer(p["video_path"], fps=p["rate_hz"])

        inputs, services = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.fake_arm = None
        if self.arm_interface == "chunk":
            self.create_subscription(JointTrajectory, p["action_chunk_topic"], self._on_chunk, CHUNK_QOS,
                                     callback_group=inputs)
        else:
            from ros_nodes.fake_arm import FakeArm
            self.fake_arm = FakeArm(self, self.arm_interface, callback_group=inputs)
        self.create_service(Trigger, p["reset_service"], self._on_reset, callback_group=services)
        # Teleop (policy-stack record): one-point actions on teleop_topic; see _teleop_action.
        self._teleop: deque | None = deque(maxlen=64) if p["teleop_topic"] else None
        self._teleop_lock = threading.Lock()     # executor thread appends, sim thread reads
        self._teleop_arrived = threading.Condition(self._teleop_lock)   # teleop_answer_wait_s waits on it
        if p["wait_for_engage"] and not (p["teleop_topic"] and p["teleop_state_topic"]):
            raise ValueError("wait_for_engage needs teleop_topic and teleop_state_topic (the deadman it waits for)")
        if p["teleop_topic"]:
            self.create_subscription(JointTrajectory, p["teleop_topic"], self._on_teleop, CHUNK_QOS,
                                     callback_group=inputs)
        self._deadman: deque = deque(maxlen=64)   # (stamp, held) from teleop_state_topic
        if p["teleop_topic"] and p["teleop_state_topic"]:
            self.create_subscription(Joy, p["teleop_state_topic"], self._on_teleop_state, CHUNK_QOS,
                                     callback_group=inputs)
        self._policy_reset = (self.create_client(Trigger, p["policy_reset_service"], callback_group=services)
                              if p["policy_reset_service"] else None)
        self.clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STATE_QOS)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics, callback_group=services)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle
    def autostart(self) -> None:
        """Without a lifecycle manager (autostart, the default): configure and activate now. An env that
        cannot be built (unknown task or camera) is a start-up error: ValueError, one line, exit 2."""
        if not self.p["autostart"]:
            self.get_logger().info("autostart false: waiting for the lifecycle configure transition")
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ValueError(self._config_error or "configure failed")
        self.trigger_activate()

    def on_configure(self, state) -> TransitionCallbackReturn:
        # The env (and its GL context, current only in the creating thread) is built in the sim thread.
        self._stop.clear()
        self._configured.clear()
        self._config_error = ""
        self._thread = threading.Thread(target=self._loop, name="sim", daemon=True)
        self._thread.start()
        if not self._configured.wait(CONFIGURE_TIMEOUT_S):
            self._config_error = f"environment not built after {CONFIGURE_TIMEOUT_S:g} s"
        if self._config_error:
            self.get_logger().error(f"configure failed: {self._config_error}")
            self._stop_thread()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self._active.set()
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._active.clear()         # the sim thread pauses before its next step
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._stop_thread()
        return super().on_cleanup(state)

    def _wake_worker(self) -> None:
        self._active.set()           # a paused sim thread wakes and sees _stop

    def _stop_thread(self) -> None:
        super()._stop_thread()
        self._active.clear()

    def _wear_profile(self, env):
        if self.real_profile is None:
            return env
        from sim.real_profiles import RealSideEnv
        return RealSideEnv(env, self.real_profile)

    def _make_publishers(self) -> None:
        p = self.p
        self.joint_pub = self.create_publisher(JointState, p["joint_states_topic"], STATE_QOS)
        self.ee_pub = self.create_publisher(PoseStamped, p["ee_pose_topic"], STATE_QOS)
        self.objects = [k[:-4] for k in self.env.obs_spec() if k.endswith("_pos") and not k.startswith("robot0")]
        self.obj_pubs = {o: self.create_publisher(PoseStamped, expand(p["object_pose_topic"], name=o), STATE_QOS)
                         for o in self.objects}
        self.cam_pubs = {}
        for cam in self.cameras:
            self.cam_pubs[cam] = (
                self.create_publisher(Image, expand(p["color_topic"], camera=cam), SENSOR_QOS),
                self.create_publisher(Image, expand(p["depth_topic"], camera=cam), SENSOR_QOS) if p["depth"] else None,
                self.create_publisher(CameraInfo, expand(p["camera_info_topic"], camera=cam), SENSOR_QOS),
                self.env.camera_info(cam))
        self.success_pub = self.create_publisher(Bool, p["success_topic"], STATE_QOS)
        # Language tasks: the sim stands in for the operator and says each episode's instruction.
        self.instruction_pub = self.create_publisher(String, p["instruction_topic"], LATCHED_QOS)
        self.executed_pub = None
        if p["executed_action_topic"] and self.fake_arm is None:
            self.executed_pub = self.create_publisher(JointTrajectory, p["executed_action_topic"], STATE_QOS)
            self._executed_writer = C.TrajectoryWriter(self.space.names, self.period, p["base_frame"])
        self.status_pub = self.create_publisher(DiagnosticArray, p["status_topic"], STATE_QOS)

    # ------------------------------------------------------------------------------ ROS side
    def _now(self) -> float:
        if self.use_sim_time:
            # Through the same Time -> float conversion as the stamps: sim_ns * 1e-9 can differ from it in
            # the last bit, and a chunk stamped T must compare equal to "now" = T.
            return C.stamp_to_sec(self._sim_stamp())
        return self.get_clock().now().nanoseconds * 1e-9

    def _sim_stamp(self) -> Time:
        return Time(sec=self._sim_ns // 1_000_000_000, nanosec=self._sim_ns % 1_000_000_000)

    def _advance_clock(self) -> None:
        """One env step of simulated time, published on /clock."""
        self._sim_ns += self._period_ns
        self._publish_clock()

    def _publish_clock(self) -> None:
        self.clock_pub.publish(Clock(clock=self._sim_stamp()))

    def _on_chunk(self, msg) -> None:
        topic = self.p["action_chunk_topic"]
        try:
            stamp, dt, chunk = C.trajectory_to_chunk(msg, topic, names=self.space.names)
        except C.ConversionError as exc:
            self.events.add(S.Event(S.BAD_INPUT, str(exc)), self._now())
            self.get_logger().warning(f"rejected chunk: {exc}", throttle_duration_sec=1.0)
            return
        self._action_delay.submit(lambda: self._take_chunk(stamp, dt, chunk))

    def _take_chunk(self, stamp: float, dt: float, chunk) -> None:
        """A received chunk takes effect (after the injected action delay, if any)."""
        received = self._now()
        if chunk is None:
            self.follower.set_hold(stamp)
            return
        accepted, events = self.follower.set_chunk(stamp, dt, chunk, now=received)
        for e in events:
            self.events.add(e, received)
            if e.holds or e.kind == S.LATE_CHUNK:
                self.get_logger().warning(f"rejected chunk: {e}", throttle_duration_sec=1.0)
        if accepted:
            self._policy_seen = True
            with self._lat_lock:
                self._latencies.append((received - stamp) * 1e3)

    def _on_teleop(self, msg) -> None:
        try:
            stamp, _dt, chunk = C.trajectory_to_chunk(msg, self.p["teleop_topic"], names=self.space.names)
        except C.ConversionError as exc:
            self.events.add(S.Event(S.BAD_INPUT, str(exc)), self._now())
            self.get_logger().warning(f"rejected teleop action: {exc}", throttle_duration_sec=1.0)
            return
        if chunk is not None and len(chunk):
            with self._teleop_lock:
                self._teleop.append((stamp, np.asarray(chunk[0], np.float32)))
                self._teleop_arrived.notify_all()

    def _on_teleop_state(self, msg) -> None:
        if msg.buttons:
            with self._teleop_lock:
                self._deadman.append((C.stamp_to_sec(msg.header.stamp), bool(msg.buttons[0])))
                self._teleop_arrived.notify_all()

    def _wait_for_teleop_answer(self, t_obs: float) -> bool:
        """teleop_answer_wait_s > 0: wait for the teleop node's answer to the observation stamped t_obs (an
        action, and a state with teleop_state_topic, stamped t_obs or later). True if it came in time."""
        wait = self.p["teleop_answer_wait_s"]
        if wait <= 0 or self._teleop is None:
            return True

        def answered():
            if not (self._teleop and self._teleop[-1][0] >= t_obs):
                return False
            return not self.p["teleop_state_topic"] or bool(self._deadman and self._deadman[-1][0] >= t_obs)
        with self._teleop_lock:
            return self._teleop_arrived.wait_for(answered, timeout=wait)

    def _engaged_at(self, t_obs: float) -> bool:
        """wait_for_engage: does the newest teleop state at or before this observation say engaged?"""
        self._wait_for_teleop_answer(t_obs)
        with self._teleop_lock:
            state = next((held for st, held in reversed(self._deadman) if st <= t_obs), False)
        return bool(state)

    def _teleop_action(self, t_obs: float):
        """The newest teleop action stamped at or before this observation (the pairing a recording
        converted with `policy-stack convert` makes, so recorded and executed actions agree), through the
        safety path; hold when none, or when it is older than teleop_timeout_s. With teleop_answer_wait_s,
        first wait for the answer to this observation (stamped with it): lockstep with the teleop node."""
        if not self._wait_for_teleop_answer(t_obs):
            self.get_logger().warning(f"no teleop answer to the observation at {t_obs:.3f} within "
                                      f"{self.p['teleop_answer_wait_s']:g} s; using the newest action",
                                      throttle_duration_sec=1.0)
        with self._teleop_lock:
            chosen = next(((st, a) for st, a in reversed(self._teleop) if st <= t_obs), None)
            state = next(((st, held) for st, held in reversed(self._deadman) if st <= t_obs), None)
        if chosen is not None:
            self.teleop_follower.set_chunk(chosen[0], self.p["teleop_timeout_s"], chosen[1][None])
        if state is not None and not state[1]:
            # The operator let go (teleop_state_topic): the intervention ends now, not teleop_timeout_s later.
            self.teleop_follower.set_hold(state[0])
        return self.teleop_follower.action_at(t_obs)

    def _policy_action(self, t_obs: float):
        """The policy chunk's action for this step (waiting for the chunk as the timing mode says)."""
        p = self.p
        if p["timing"] == "lockstep":
            # Wait for the answer to exactly this observation and execute its first action.
            if not self.follower.wait_for_chunk(t_obs, p["lockstep_timeout_s"]):
                self.get_logger().warning(f"lockstep: no chunk for the observation at {t_obs:.3f} "
                                          f"within {p['lockstep_timeout_s']:g} s; holding this step")
            return self.follower.action_at(t_obs)
        # Give the policy up to action_wait_s to answer this observation (see module doc).
        self.follower.wait_for_chunk(t_obs, p["action_wait_s"])
        return self.follower.action_at(self._now())

    def _choose(self, t_obs: float):
        """Arbitration: (action, hold, chunk index, source). A fresh teleop action (the operator holds the
        deadman) takes over; otherwise the policy's chunk, which resumes by time once the operator
        releases (chunks computed during the intervention are stale by then and the follower drops them).
        Without teleop_topic this is the policy path alone; without any policy (teleop recording) a released
        deadman holds."""
        if self._teleop is not None:
            action, hold, idx = self._teleop_action(t_obs)
            if hold is None:
                return action, None, idx, SOURCE_TELEOP
            if not self._policy_seen:
                return action, hold, idx, SOURCE_HOLD
        action, hold, idx = self._policy_action(t_obs)
        return action, hold, idx, SOURCE_HOLD if hold is not None else SOURCE_POLICY

    def _on_reset(self, request, response):
        self._restart.set()
        response.success, response.message = True, "episode restarts at the next tick"
        return response

    def _reset_policy(self) -> None:
        """Call /policy/reset and wait for the answer, so the new episode's first observation meets a
        fresh policy history (discovery can take seconds: generous timeouts)."""
        if self._policy_reset is None:
            return
        if not self._policy_reset.wait_for_service(timeout_sec=10.0):
            self.get_logger().warning(f"{self.p['policy_reset_service']} not available; policy not reset")
            return
        done = threading.Event()
        future = self._policy_reset.call_async(Trigger.Request())
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(5.0):
            self.get_logger().warning(f"{self.p['policy_reset_service']} did not answer in 5 s")

    # ------------------------------------------------------------------------------ publishing
    def _capture_stamp(self):
        """(Time, float s) of an observation taken now. The float is derived FROM the Time, so a chunk
        whose header carries this Time verbatim converts to exactly the same float (pairing by stamp)."""
        if self.use_sim_time:
            stamp = self._sim_stamp()
        else:
            stamp = self.get_clock().now().to_msg()
        return stamp, C.stamp_to_sec(stamp)

    def _publish_obs(self, obs: dict, stamp) -> None:
        """Publish one observation, every topic with the same builtin_interfaces/Time `stamp`."""
        p = self.p
        self.joint_pub.publish(C.joint_state_msg(
            list(p["joint_names"]) + list(p["gripper_joint_names"]),
            np.concatenate([obs["robot0_joint_pos"], obs["robot0_gripper_qpos"]]), stamp))
        self.ee_pub.publish(C.pose_msg(obs["robot0_eef_pos"], obs["robot0_eef_quat"], stamp, p["base_frame"]))
        for o, pub in self.obj_pubs.items():
            pub.publish(C.pose_msg(obs[f"{o}_pos"], obs[f"{o}_quat"], stamp, p["base_frame"]))
        for cam, (rgb_pub, depth_pub, info_pub, info) in self.cam_pubs.items():
            frame = f"{cam}_color_optical_frame"
            info_pub.publish(C.camera_info_msg(info, stamp, frame))
            if depth_pub is not None:
                depth_pub.publish(C.depth_to_image(obs[f"{cam}_depth"], stamp, frame))
            # RGB last: it is the inference node's default anchor, so the rest is there when it lands.
            rgb_pub.publish(C.rgb_to_image(obs[f"{cam}_rgb"], stamp, frame))

    def _publish_status(self, t, episode, step, action, hold, idx, age, success, source, obs_stamp=None) -> None:
        """age: of the newest chunk when this step's action was chosen (not when status is sent);
        source: where the executed action came from (policy, teleop = a human intervention, hold, arm);
        obs_stamp: the step's observation stamp, exact ("sec.nanosec"), the key /sim/executed_action carries
        too, so a learner (ros_nodes/rl_env.py) pairs each executed action with its source and success."""
        values = {"state": "hold" if hold else "executing", "reason": str(hold) if hold else "", "source": source,
                  "episode": episode, "step": step, "chunk_index": idx,
                  "chunk_age_ms": age * 1e3 if np.isfinite(age) else float("nan"),
                  "action": [float(a) for a in action], "success": bool(success)}
        if obs_stamp is not None:
            values["observation_stamp"] = f"{obs_stamp.sec}.{obs_stamp.nanosec:09d}"
        values.update({f"events.{k}": v for k, v in sorted(self.events.snapshot().items())})
        self.status_pub.publish(C.diagnostic_array(STATUS_NAME, C.WARN if hold else C.OK, values["state"],
                                                   values, C.sec_to_stamp(t)))

    # ------------------------------------------------------------------------------ sim thread
    def _loop(self) -> None:
        configured = False
        try:
            try:
                self.env = self._make_env()
                if self.arm_interface != "jtc" and self.env.action_space.names != self.space.names:
                    raise ValueError(f"env action names {self.env.action_space.names} != {self.space.names}")
                self._make_publishers()
            except (ValueError, FileNotFoundError, KeyError) as exc:   # bad parameters (env, cameras): one line
                self._config_error = str(exc)
                return
            finally:
                configured = True
                self._configured.set()
            self.get_logger().info(f"{self.env!r} at {self.p['rate_hz']:g} Hz, publishing cameras {self.cameras}"
                                   + (f", fake {self.arm_interface} controller on {self.fake_arm.topics}"
                                      if self.fake_arm else ""))
            self._publish_clock()
            if not self._wait_active():
                return
            obs = self.env.reset(seed=self.p["seed"])
            if self.p["wait_for_engage"]:
                # The first step of a fresh env is several times slower (measured 59 ms against 8 ms at 20 Hz):
                # take it here, so the first recorded episode's first step does not stretch its frame grid.
                # Every episode starts from env.reset, so this step leaves nothing behind.
                self.env.step(np.zeros(self.space.dim, np.float32))
                obs = self.env.reset(seed=self.p["seed"])
            self._wait_for_policy(obs)
            episode, n = 0, self.p["episodes"]
            while not self._stop.is_set() and (n == 0 or episode < n):
                if self._run_episode(episode) is not None:
                    episode += 1
        except ValueError as exc:     # bad parameters found while running: one line
            self.get_logger().error(f"error: {exc}")
            self.exit_code = 2
        except Exception as exc:
            if not self._stop.is_set():
                self.get_logger().error(f"sim loop failed: {exc!r}\n{traceback.format_exc()}")
                self.exit_code = 1
        finally:
            self._close_video()
            if self.env is not None:
                self.env.close()      # in the thread that owns its GL context
                self.env = None
            if configured and not self._config_error and not self._stop.is_set():
                self.finished = True  # the run is over (episodes done, or failed): main_for exits

    def _wait_active(self) -> bool:
        """Block while the node is inactive (lifecycle); False once it is being stopped."""
        while not self._active.wait(0.1):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()

    def _wait_for_policy(self, obs) -> None:
        """Publish the initial state (without stepping) until the policy answers: start-up and DDS
        discovery take seconds, and an episode should not start with its clock running on holds."""
        deadline = time.monotonic() + self.p["wait_for_policy_s"]
        what = "action chunk" if self.fake_arm is None else f"{self.arm_interface} command"
        self.get_logger().info(f"waiting for the first {what}")
        if self.fake_arm is not None:
            self.fake_arm.reset(obs)
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._publish_obs(obs, self._capture_stamp()[0])
            if self.fake_arm is not None:
                if self.fake_arm.wait_for_command(-np.inf, self.period):
                    self.get_logger().info(f"{self.arm_interface} commands are coming")
                    return
            elif self.follower.wait_for_chunk(-np.inf, self.period) or self._teleop:
                self.get_logger().info("policy is up")
                return
        if not self._stop.is_set():
            self.get_logger().warning(f"no {what} after {self.p['wait_for_policy_s']:g} s; starting anyway (hold)")

    def _run_episode(self, episode: int) -> dict | None:
        """One episode; returns its result, or None if it was restarted through /sim/reset."""
        p = self.p
        seed = p["seed"] + episode
        self._restart.clear()
        obs = self.env.reset(seed=seed)
        if self.fake_arm is not None:
            self.fake_arm.reset(obs)
        self._reset_policy()
        if isinstance(obs.get("instruction"), str):      # before the episode's first observation goes out
            self.instruction_pub.publish(String(data=obs["instruction"]))
            self.get_logger().info(f"episode {episode}: instruction {obs['instruction']!r}")
        self.follower.reset(not_before=self._now())
        self.teleop_follower.reset(not_before=self._now())
        jumps_before = len(self.follower.handover_jumps)
        rejections_before = self.fake_arm.rejections if self.fake_arm is not None else 0
        with self._lat_lock:
            self._latencies = []
        holds: Counter = Counter()
        executed: list[list[float]] = []      # every action sent to the env (lockstep comparisons)
        sources: list[str] = []               # where each executed action came from (policy/teleop/hold/arm)
        success = False
        ret, step, t_start = 0.0, 0, time.monotonic()
        next_tick = time.monotonic()
        waiting = bool(p["wait_for_engage"])      # the scene stays at its reset until the operator engages
        while step < p["max_steps"] and not self._stop.is_set():
            if not self._active.is_set() and not self._wait_active():
                break
            if self._restart.is_set():
                self.get_logger().info(f"episode {episode}: restarted through {p['reset_service']}")
                if not p["next_seed_on_reset"]:
                    return None
                break                           # teleop recording: the reset ends it; next seed next
            stamp, t_obs = self._capture_stamp()
            if waiting:
                # Says which episode this is (the teleop node starts one only after the sim reports it), before
                # the observation it may answer; no observation_stamp: not an executed step.
                self._publish_status(self._now(), episode, 0, np.zeros(self.space.dim), "waiting for the operator",
                                     -1, float("nan"), False, SOURCE_HOLD)
            self._obs_delay.submit(lambda o=obs, st=stamp: self._publish_obs(o, st))
            if waiting:
                if not self._engaged_at(t_obs):
                    next_tick = self._sleep_to_next_tick(next_tick)   # no step: the same state again next period
                    continue
                waiting = False
                self.get_logger().info(f"episode {episode}: the operator engaged; stepping")
            if self.fake_arm is not None:
                # The arm adapter gets the same budget a policy gets in chunk mode: up to action_wait_s
                # for a command sent after this observation (the sim cannot move while it waits).
                self.fake_arm.wait_for_command(self._now(), p["action_wait_s"])
                kind, action, reason = self.fake_arm.action(self._now())
                hold, idx = reason or None, -1
                source = SOURCE_HOLD if hold else SOURCE_ARM
            else:
                action, hold, idx, source = self._choose(t_obs)
            chunk_age = (float("nan") if self.fake_arm is not None else
                         self.teleop_follower.last_age if source == SOURCE_TELEOP else self.follower.last_age)
            if isinstance(hold, str):
                holds[hold] += 1
            elif hold is not None:
                holds[hold.kind] += 1
                self.events.add(hold)
            executed.append([round(float(a), 7) for a in action])
            if self.executed_pub is not None:      # stamped like this step's observation: exact pairing
                self.executed_pub.publish(self._executed_writer(np.asarray(action, np.float64)[None], stamp))
            sources.append(source)
            if self.fake_arm is not None and kind == "joints":
                obs, reward, done, info = self.env.step_joint_positions(action[:7], action[7])
            else:
                obs, reward, done, info = self.env.step(action)
            if self.fake_arm is not None:
                self.fake_arm.observe(obs)
            self._advance_clock()
            step += 1
            ret += reward
            success = bool(info.get("success", False))
            self._progress = {"episode": episode, "step": step, "success": success}
            self.success_pub.publish(Bool(data=success))
            self._publish_status(self._now(), episode, step, action, hold, idx, chunk_age, success, source, stamp)
            if self._video is not None:
                self._video.write(obs[f"{p['video_camera']}_rgb"])
            if (success and p["end_on_success"]) or done:
                break
            next_tick = self._sleep_to_next_tick(next_tick)
        with self._lat_lock:
            lat = list(self._latencies)
        jumps = list(self.follower.handover_jumps)[jumps_before:]
        result = {"episode": episode, "seed": seed, "success": success, "steps": step, "return": round(ret, 4),
                  "wall_s": round(time.monotonic() - t_start, 3), "holds": dict(holds),
                  "latency_ms": [round(x, 3) for x in lat], "handover_jumps": [round(x, 5) for x in jumps],
                  "actions": executed, "sources": sources}
        if self.fake_arm is not None:     # commands the fake controller refused during the episode
            result["controller_rejections"] = self.fake_arm.rejections - rejections_before
        pct = (lambda q: float(np.percentile(lat, q))) if lat else (lambda q: float("nan"))
        self.get_logger().info(
            f"episode {episode}: success={success} steps={step} loop latency p50={pct(50):.1f} ms "
            f"p99={pct(99):.1f} ms ({len(lat)} chunks) holds={sum(holds.values())}")
        if p["results_file"]:
            with open(p["results_file"], "a") as f:
                f.write(json.dumps(result) + "\n")
        return result

    def _sleep_to_next_tick(self, next_tick: float) -> float:
        next_tick += self.period
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()    # running late: do not try to catch up with a burst
        return next_tick

    def _close_video(self) -> None:
        if self._video is not None:
            self._video.close()
            self.get_logger().info(f"video: {self.p['video_path']} ({self._video.frames} frames)")
            self._video = None

    def _publish_diagnostics(self) -> None:
        """/diagnostics at diagnostics_period_s: lifecycle state, episode progress, safety event counters."""
        lifecycle = self._state_machine.current_state[1]
        values = {"lifecycle": lifecycle, "sim_time_s": self._sim_ns * 1e-9, "use_sim_time": self.use_sim_time,
                  **self._progress}
        values.update({f"events.{k}": v for k, v in sorted(self.events.snapshot().items())})
        level = C.ERROR if self._config_error else (C.OK if lifecycle == "active" else C.WARN)
        message = f"{lifecycle}: {self._config_error}" if self._config_error else lifecycle
        self.diagnostics_pub.publish(C.diagnostic_array(STATUS_NAME, level, message, values, C.sec_to_stamp(self._now())))

    def close(self) -> None:
        """Stop the sim thread before the context goes (ros_nodes.common.main_for calls this)."""
        self._stop_thread()
        self._obs_delay.close()
        self._action_delay.close()
        self._close_video()


def main(args=None) -> int:
    return main_for(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
