"""The RL session's environment over ROS 2 topics (`policy-stack finetune --env ros`).

It stands where the inference node stands in the graph (same contract, docs/ros2.md), so the
robot side is unchanged: the sim node, or a real arm + cameras + a success detector/operator.

  reset()      -> publish a hold, call the reset Trigger (default /sim/reset), wait for the episode
                  start, return the first complete observation received after it.
  step(chunk)  -> execute the (Ta, A) executed slice of a chunk, filtered by policy_stack.safety,
                  on /policy/action_chunk, for Ta control periods; per period record the newest
                  observation and the /episode/success flag. Reward 1 on success (sparse, as the
                  sim adapter and the offline data). Ends on success (terminal) or at
                  max_episode_steps (truncated).
`accepts_chunks = True`: the session hands over whole chunks (docs/rl.md env protocol).

Two deliberate differences from the inference node, both because Q learns from exactly the actions
the session records:
- Stamps. The slice is stamped with the time it is published, not with its observation's stamp:
  a chunk stamped with the (older) observation time would make the executing side skip
  floor(latency/dt) of its actions (ChunkFollower indexes by time since stamp) and the replay would
  record actions that never ran. Compute latency then shows up as a delay of the state, which a
  real robot has anyway.
- Re-publishing. Each control period the remaining actions are published again, stamped at their
  scheduled start. A chunk spans Ta*dt (0.4 s at Ta=8, 20 Hz), longer than the executing side's
  default max_chunk_age_s (0.2 s); re-stamping keeps it fresh without loosening that safety limit.

Episode start: the sim node calls /policy/reset at each episode start; this env serves that
service (it is the policy side), which both answers the call (else the sim waits 10 s for it) and
tells us exactly when the new episode began. Without such a call (a real robot whose reset service
answers when the scene is reset), `settle_s` after the Trigger answer marks the start.
No rclpy import outside this module's functions' reach: policy_stack/ never imports it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields

import numpy as np


@dataclass
class RosEnvConfig:
    rate_hz: float = 20.0                              # control rate of the executing side
    max_episode_steps: int = 200
    reset_service: str = "/sim/reset"                  # std_srvs/Trigger; "" = no reset call
    policy_reset_service: str = "/policy/reset"        # served here (see module doc); "" = not served
    action_chunk_topic: str = "/policy/action_chunk"
    success_topic: str = "/episode/success"
    joint_states_topic: str = "/joint_states"
    ee_pose_topic: str = "/ee_pose"
    object_pose_topic: str = "/objects/{name}/pose"
    color_topic: str = "/{camera}/color/image_raw"
    depth_topic: str = "/{camera}/aligned_depth_to_color/image_raw"
    camera_info_topic: str = "/{camera}/color/camera_info"
    joint_names: list = field(default_factory=lambda: [f"panda_joint{i}" for i in range(1, 8)])
    gripper_joint_names: list = field(default_factory=lambda: ["panda_finger_joint1", "panda_finger_joint2"])
    service_timeout_s: float = 20.0                    # discovery of the reset service can take seconds
    episode_start_timeout_s: float = 15.0              # wait for the /policy/reset call after a reset
    settle_s: float = 0.5                              # fallback episode-start delay (no policy reset call)
    obs_timeout_s: float = 10.0                        # a complete observation must arrive within this
    max_step_delta: float | None = None                # safety rate limit (action units); None = off
    node_name: str = "rl_env"

    @classmethod
    def from_dict(cls, d: dict) -> "RosEnvConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"RosEnvConfig: unknown option(s) {sorted(unknown)}; valid: {[f.name for f in fields(cls)]}")
        cfg = cls(**d)
        if cfg.rate_hz <= 0 or cfg.max_episode_steps < 1:
            raise ValueError(f"RosEnvConfig: rate_hz must be > 0 and max_episode_steps >= 1, got "
                             f"{cfg.rate_hz}, {cfg.max_episode_steps}")
        return cfg


class RosRLEnv:
    accepts_chunks = True

    def __init__(self, policy, cfg: RosEnvConfig | None = None):
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from std_msgs.msg import Bool
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        from policy_stack import safety as S
        from ros_nodes import convert as C
        from ros_nodes import policy_io
        from ros_nodes.common import CHUNK_QOS, SENSOR_QOS, STATE_QOS, expand, spin_in_background

        self.cfg = cfg or RosEnvConfig()
        self.C, self.Trigger = C, Trigger
        self.dt = 1.0 / self.cfg.rate_hz
        self.space = policy.action_space
        self.spec = dict(policy.obs_spec)
        self.plan = policy_io.plan_inputs(self.spec)     # ValueError names a key no topic carries
        self.safety = S.ActionSafety(self.space, S.SafetyLimits(max_step_delta=self.cfg.max_step_delta))

        # Private context: the session (or a test) may have its own rclpy use in the same process.
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(self.cfg.node_name, context=self.context)
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, np.ndarray]] = {}   # key -> (receive time, value)
        self._K: dict[str, np.ndarray] = {}
        self._success_true_at = -np.inf                          # receive time of the newest True
        self._episode_start = threading.Event()
        self._episode_start_t = -np.inf
        self.errors: list[str] = []                              # malformed input seen (for reports/tests)
        self.t = 0                                               # steps in this episode
        # What arrived, for reports and tests: /episode/success messages, episode starts seen
        # through the policy reset service, reset calls, control steps executed.
        self.stats = {"success_msgs": 0, "episode_starts": 0, "resets": 0, "steps": 0}
        self._last_action = None

        n, c = self.node, self.cfg
        self.chunk_pub = n.create_publisher(JointTrajectory, c.action_chunk_topic, CHUNK_QOS)
        n.create_subscription(Bool, c.success_topic, self._on_success, STATE_QOS)
        sub = lambda typ, topic, conv: n.create_subscription(typ, topic, lambda m: self._ingest(topic, conv, m), SENSOR_QOS)
        if self.plan.joint_groups:
            names = {"arm": list(c.joint_names), "gripper": list(c.gripper_joint_names)}
            groups = {k: names[g] for k, g in self.plan.joint_groups.items()}
            sub(JointState, c.joint_states_topic, lambda m, t=c.joint_states_topic: C.joint_state_to_arrays(m, t, groups))
        if self.plan.ee_keys:
            sub(PoseStamped, c.ee_pose_topic, self._pose_conv(c.ee_pose_topic, "robot0_eef_pos", "robot0_eef_quat"))
        for obj in self.plan.objects:
            topic = expand(c.object_pose_topic, name=obj)
            sub(PoseStamped, topic, self._pose_conv(topic, f"{obj}_pos", f"{obj}_quat"))
        for cam, key in self.plan.rgb.items():
            topic, shape = expand(c.color_topic, camera=cam), self.spec[key].shape
            sub(Image, topic, lambda m, t=topic, k=key, s=shape: {k: C.image_to_rgb(m, t, s)})
        for cam, key in self.plan.depth.items():
            topic, f = expand(c.depth_topic, camera=cam), self.spec[key]
            sub(Image, topic, lambda m, t=topic, k=key, f=f: {k: C.image_to_depth(m, t, f.shape, f.dtype)})
        for cam in self.plan.intrinsics:
            topic = expand(c.camera_info_topic, camera=cam)
            n.create_subscription(CameraInfo, topic, lambda m, t=topic, cam=cam: self._on_info(m, t, cam), SENSOR_QOS)
        self._reset_client = n.create_client(Trigger, c.reset_service) if c.reset_service else None
        if c.policy_reset_service:
            n.create_service(Trigger, c.policy_reset_service, self._on_policy_reset)

        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self._spin_thread = spin_in_background(self.executor, self.context, "rl_env_spin")

    # ----------------------------------------------------------------------------- callbacks

    def _pose_conv(self, topic, pos_key, quat_key):
        wanted = set(self.plan.ee_keys) | {k for ks in self.plan.objects.values() for k in ks}

        def conv(m):
            pos, quat = self.C.pose_to_arrays(m, topic)
            return {k: v for k, v in ((pos_key, pos), (quat_key, quat)) if k in wanted}
        return conv

    def _ingest(self, topic, conv, msg):
        try:
            values = conv(msg)
        except Exception as exc:   # malformed input must not kill the spin thread; keep the old value
            self.errors.append(f"{topic}: {exc}")
            return
        t = time.monotonic()
        with self._lock:
            for k, v in values.items():
                self._latest[k] = (t, v)

    def _on_info(self, msg, topic, cam):
        try:
            K = self.C.camera_info_to_K(msg, topic)
        except Exception as exc:
            self.errors.append(f"{topic}: {exc}")
            return
        with self._lock:
            self._K[cam] = K

    def _on_success(self, msg):
        self.stats["success_msgs"] += 1
        if msg.data:
            with self._lock:
                self._success_true_at = time.monotonic()

    def _on_policy_reset(self, request, response):
        self._episode_start_t = time.monotonic()
        self.stats["episode_starts"] += 1
        self._episode_start.set()
        response.success, response.message = True, "rl_env: new episode noted"
        return response

    # ---------------------------------------------------------------------------- observation
    def _observation(self, since: float) -> dict | None:
        """Newest value of every key, if each arrived after `since` (monotonic); else None."""
        with self._lock:
            if any(k not in self._latest or self._latest[k][0] < since for k in self._needed()):
                return None
            obs = {k: np.array(v) for k, (_, v) in self._latest.items()}
            for cam, key in self.plan.intrinsics.items():
                if cam not in self._K:
                    return None
                obs[key] = self._K[cam].copy()
        return obs

    def _needed(self):
        return [k for k in self.spec if k not in self.plan.intrinsics.values()]

    def _wait_observation(self, since: float) -> dict:
        deadline = time.monotonic() + self.cfg.obs_timeout_s
        while time.monotonic() < deadline:
            obs = self._observation(since)
            if obs is not None:
                return obs
            time.sleep(0.005)
        with self._lock:
            missing = [k for k in self._needed() if k not in self._latest or self._latest[k][0] < since]
        raise TimeoutError(f"rl_env: no fresh observation for {missing} within {self.cfg.obs_timeout_s} s "
                           f"(is the robot/sim side publishing? errors: {self.errors[-3:]})")

    # ---------------------------------------------------------------------------------- actions
    def _publish(self, chunk: np.ndarray, stamp_wall: float) -> None:
        self.chunk_pub.publish(self.C.chunk_to_trajectory(chunk, self.space.names, self.dt,
                                                          self.C.sec_to_stamp(stamp_wall)))

    def _hold(self) -> None:
        self.chunk_pub.publish(self.C.hold_trajectory(self.space.names, self.C.sec_to_stamp(time.time())))

    # ------------------------------------------------------------------------------ protocol
    def reset(self) -> dict:
        self._hold()
        self.stats["resets"] += 1
        self._last_action = None
        self.t = 0
        self._episode_start.clear()
        t_call = time.monotonic()
        if self._reset_client is not None:
            if not self._reset_client.wait_for_service(timeout_sec=self.cfg.service_timeout_s):
                raise TimeoutError(f"rl_env: reset service {self.cfg.reset_service} not available after "
                                   f"{self.cfg.service_timeout_s} s")
            future = self._reset_client.call_async(self.Trigger.Request())
            deadline = time.monotonic() + self.cfg.service_timeout_s
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.005)
            if not future.done():
                raise TimeoutError(f"rl_env: {self.cfg.reset_service} did not answer in {self.cfg.service_timeout_s} s")
            if not future.result().success:
                raise RuntimeError(f"rl_env: {self.cfg.reset_service} refused: {future.result().message}")
        if self.cfg.policy_reset_service and self._episode_start.wait(self.cfg.episode_start_timeout_s):
            since = self._episode_start_t
        else:
            time.sleep(self.cfg.settle_s)
            since = max(t_call, time.monotonic() - self.dt)
        with self._lock:
            self._success_true_at = -np.inf
        return self._wait_observation(since)

    def step(self, chunk):
        chunk = np.asarray(chunk, np.float64)
        if chunk.ndim == 1:
            chunk = chunk[None]
        verdict = self.safety.filter_chunk(chunk, self._last_action)
        if not verdict.ok:
            self._hold()
            raise ValueError(f"rl_env: chunk rejected by safety: {[str(e) for e in verdict.events]}")
        chunk = verdict.chunk
        t0_wall, t0 = time.time(), time.monotonic()
        observations, rewards, success = [], [], False
        for k in range(len(chunk)):
            if self.t >= self.cfg.max_episode_steps:
                break
            # Remaining actions, stamped at their scheduled start (module doc: re-publishing).
            self._publish(chunk[k:], t0_wall + k * self.dt)
            end = t0 + (k + 1) * self.dt
            while (rem := end - time.monotonic()) > 0:
                time.sleep(min(rem, 0.005))
            self.t += 1
            self.stats["steps"] += 1
            self._last_action = chunk[k]
            obs = self._observation(since=-np.inf)
            if obs is None:                 # nothing since start: a broken stream, say which
                obs = self._wait_observation(since=-np.inf)
            with self._lock:
                success = self._success_true_at >= t0
            observations.append(obs)
            rewards.append(float(success))
            if success:
                break
        if not rewards:
            raise RuntimeError(f"rl_env: the episode already ran {self.t} steps (max_episode_steps); call reset()")
        truncated = not success and self.t >= self.cfg.max_episode_steps
        done = success or truncated
        if done:
            self._hold()
        info = {"rewards": rewards, "observations": observations, "steps": len(rewards),
                "success": success, "truncated": truncated}
        return observations[-1], rewards[-1], done, info

    def close(self) -> None:
        try:
            self._hold()
        except Exception:
            pass
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        import rclpy
        rclpy.try_shutdown(context=self.context)
        self._spin_thread.join(timeout=2.0)
