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

What the replay stores is what was EXECUTED, not what was sent (module section "Executed actions").

Executed actions and human interventions (executed_action_topic + executed_status_topic, the sim
node's /sim/executed_action and /sim/status; both on by default): each executing-side tick publishes
the action it executed, stamped with that tick's observation stamp, and a status naming its source
(policy, teleop = a human holding the deadman, hold) and the success after it, keyed by the same
stamp. step() then walks the executing side's ticks one by one, from the stamp of the observation the
decision was made on: per tick it records the executed action, its source and success, and the
observation of the next tick. So the replay holds exactly the actions that moved the robot (a hold
while the learner computed, the tail of the previous chunk, the operator's command) and no action
that never ran. Intervention rule: a decision is all the agent's or all a human's. step() returns
early, before the first tick whose source switches between teleop and anything else; that tick opens
the next decision (the session then stores a cut-short row, docs/rl.md). info["executed_actions"]
(k, A) and info["interventions"] (k,) carry them. With executed_action_topic "" (a robot side that
does not publish what it executed) the env falls back to control periods by the wall clock and records
the chunk it sent, with no intervention flags.

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
    executed_action_topic: str = "/sim/executed_action"  # per tick, stamped like its observation; "" = off
    executed_status_topic: str = "/sim/status"          # per tick: source + success, keyed by observation_stamp
    intervention_source: str = "teleop"                 # the status source that marks a human intervention
    tick_history: int = 200                             # ticks (and observations per key) kept for pairing
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
        from diagnostic_msgs.msg import DiagnosticArray
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
        self.stats = {"success_msgs": 0, "episode_starts": 0, "resets": 0, "steps": 0, "intervention_steps": 0,
                      "cuts": 0, "obs_filled": 0}
        self._last_action = None
        # Tick mode (module doc): per key the recent (stamp ns, arrival, value); per tick stamp its record.
        self.tick_mode = bool(self.cfg.executed_action_topic and self.cfg.executed_status_topic)
        from collections import deque
        self._by_stamp: dict[str, deque] = {k: deque(maxlen=self.cfg.tick_history) for k in self._needed()}
        self._ticks: dict[int, dict] = {}
        self._cursor: int | None = None        # stamp (ns) of the observation the next step starts from

        n, c = self.node, self.cfg
        if self.tick_mode:
            # Every tick is needed, not only the newest: deep reader queues (depth is local to the reader and
            # filled by the middleware's threads), so a learner busy for a moment loses nothing.
            from copy import copy
            SENSOR_QOS, STATE_QOS = copy(SENSOR_QOS), copy(STATE_QOS)
            SENSOR_QOS.depth = STATE_QOS.depth = max(50, self.cfg.tick_history)
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
        if self.tick_mode:
            n.create_subscription(JointTrajectory, c.executed_action_topic, self._on_executed, STATE_QOS)
            n.create_subscription(DiagnosticArray, c.executed_status_topic, self._on_status, STATE_QOS)
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
            stamp = self.C.stamp_to_ns(msg.header.stamp)
        except Exception as exc:   # malformed input must not kill the spin thread; keep the old value
            self.errors.append(f"{topic}: {exc}")
            return
        t = time.monotonic()
        with self._lock:
            for k, v in values.items():
                self._latest[k] = (t, v)
                if k in self._by_stamp:
                    self._by_stamp[k].append((stamp, t, v))

    def _on_executed(self, msg):
        topic = self.cfg.executed_action_topic
        try:
            _, _, chunk = self.C.trajectory_to_chunk(msg, topic, names=self.space.names)
            if chunk is None or len(chunk) != 1:
                raise ValueError(f"expected one executed action, got {0 if chunk is None else len(chunk)}")
            stamp = self.C.stamp_to_ns(msg.header.stamp)
        except Exception as exc:
            self.errors.append(f"{topic}: {exc}")
            return
        with self._lock:
            self._tick(stamp)["action"] = np.asarray(chunk[0], np.float32)

    def _on_status(self, msg):
        try:
            values = self.C.diagnostic_values(msg)
            if "observation_stamp" not in values:
                return                      # not a per-tick status (or an older executing side)
            sec, _, nsec = values["observation_stamp"].partition(".")
            stamp = int(sec) * 1_000_000_000 + int(nsec)
            source, success = values.get("source", ""), values.get("success", "False") == "True"
        except Exception as exc:
            self.errors.append(f"{self.cfg.executed_status_topic}: {exc}")
            return
        with self._lock:
            rec = self._tick(stamp)
            rec["source"], rec["success"] = source, success

    def _tick(self, stamp: int) -> dict:
        """The record of the tick with this observation stamp (lock held); old ones are dropped."""
        if stamp not in self._ticks and len(self._ticks) >= self.cfg.tick_history:
            for old in sorted(self._ticks)[: len(self._ticks) - self.cfg.tick_history + 1]:
                del self._ticks[old]
        return self._ticks.setdefault(stamp, {})

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

    # ------------------------------------------------------------------------ ticks (tick mode)
    def _obs_at(self, stamp: int, exact: bool) -> dict | None:
        """The observation of the tick stamped `stamp` (lock held): every key's value stamped exactly
        there (exact), else its newest value stamped at or before it (a lost message; never a later one)."""
        obs = {}
        for k, dq in self._by_stamp.items():
            v = next((val for st, _, val in reversed(dq) if (st == stamp if exact else st <= stamp)), None)
            if v is None:
                return None
            obs[k] = np.array(v)
        for cam, key in self.plan.intrinsics.items():
            if cam not in self._K:
                return None
            obs[key] = self._K[cam].copy()
        return obs

    def _first_tick(self, since: float) -> tuple[int, dict]:
        """(stamp, observation) of the first complete observation that arrived after `since` (monotonic)."""
        deadline = time.monotonic() + self.cfg.obs_timeout_s
        first = next(iter(self._by_stamp))
        while time.monotonic() < deadline:
            with self._lock:
                for st in sorted({st for st, t, _ in self._by_stamp[first] if t >= since}):
                    # Its tick record too: right after start-up the executed-action topics may be matched a
                    # moment later than the observations, and a tick without its record cannot be walked.
                    rec = self._ticks.get(st, {})
                    obs = self._obs_at(st, exact=True) if "action" in rec and "source" in rec else None
                    if obs is not None:
                        return st, obs
            time.sleep(0.003)
        self._wait_observation(since)            # raises, naming the keys that did not arrive
        raise TimeoutError(f"rl_env: no observation whose parts share one stamp within {self.cfg.obs_timeout_s} s")

    def _ready_tick(self) -> tuple[dict, int, dict] | None:
        """(record, next stamp, next observation) of the cursor's tick once all of it arrived (lock held)."""
        rec = self._ticks.get(self._cursor)
        if rec is None or "action" not in rec or "source" not in rec:
            return None
        later = [(st, t) for dq in self._by_stamp.values() for st, t, _ in dq if st > self._cursor]
        if not later:
            return None
        nxt = min(st for st, _ in later)
        obs = self._obs_at(nxt, exact=True)
        if obs is None:
            # A part of that observation was lost (sensor QoS is best effort): after a grace period take
            # each key's newest value at or before it.
            arrived = min(t for st, t in later if st == nxt)
            if time.monotonic() - arrived < max(0.25, 5 * self.dt):
                return None
            obs = self._obs_at(nxt, exact=False)
            if obs is None:
                return None
            self.stats["obs_filled"] += 1
        return rec, nxt, obs

    def _step_ticks(self, chunk: np.ndarray):
        """Tick mode (module doc): publish the chunk on its schedule and walk the executing side's ticks."""
        t0_wall, published = time.time(), 0
        observations, rewards, actions, flags, success = [], [], [], [], False
        while len(rewards) < len(chunk) and self.t < self.cfg.max_episode_steps:
            deadline = time.monotonic() + self.cfg.obs_timeout_s
            while True:
                # Remaining actions, stamped at their scheduled start (module doc: re-publishing), on the
                # wall clock: a tick walked late (the learner was busy) must not publish ahead of time.
                while published < len(chunk) and time.time() >= t0_wall + published * self.dt:
                    self._publish(chunk[published:], t0_wall + published * self.dt)
                    published += 1
                with self._lock:
                    ready = self._ready_tick()
                if ready is not None:
                    break
                if time.monotonic() > deadline:
                    self._hold()
                    c = self.cfg
                    with self._lock:
                        have = sorted(self._ticks.get(self._cursor, {}))
                        newer = sum(st > self._cursor for dq in self._by_stamp.values() for st, _, _ in dq)
                    raise TimeoutError(f"rl_env: tick {self._cursor} ns: no executed action on {c.executed_action_topic} "
                                       f"with its status on {c.executed_status_topic} and the next observation within "
                                       f"{c.obs_timeout_s} s (tick has {have}, {newer} newer observation parts, "
                                       f"{len(self._ticks)} ticks known; an executing side that does not publish them: "
                                       f"--ros-set executed_action_topic='\"\"'; errors: {self.errors[-3:]})")
                time.sleep(0.002)
            rec, nxt, obs = ready
            human = rec["source"] == self.cfg.intervention_source
            if flags and human != flags[0]:
                self.stats["cuts"] += 1          # an intervention begins or ends: this tick opens the next decision
                break
            actions.append(rec["action"])
            flags.append(human)
            success = bool(rec.get("success", False))
            rewards.append(float(success))
            observations.append(obs)
            with self._lock:
                for st in [st for st in self._ticks if st <= self._cursor]:
                    del self._ticks[st]
            self._cursor = nxt
            self._last_action = rec["action"]
            self.t += 1
            self.stats["steps"] += 1
            self.stats["intervention_steps"] += int(human)
            if success:
                break
        return observations, rewards, success, np.stack(actions), flags

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
        if self.tick_mode:
            self._cursor, obs = self._first_tick(since)
            return obs
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
        if self.t >= self.cfg.max_episode_steps:
            raise RuntimeError(f"rl_env: the episode already ran {self.t} steps (max_episode_steps); call reset()")
        if self.tick_mode:
            observations, rewards, success, executed, flags = self._step_ticks(chunk)
        else:
            observations, rewards, success = self._step_periods(chunk)
            executed, flags = chunk[: len(rewards)], [False] * len(rewards)
        truncated = not success and self.t >= self.cfg.max_episode_steps
        done = success or truncated
        if done:
            self._hold()
        info = {"rewards": rewards, "observations": observations, "steps": len(rewards),
                "success": success, "truncated": truncated, "executed_actions": executed, "interventions": flags}
        return observations[-1], rewards[-1], done, info

    def _step_periods(self, chunk: np.ndarray):
        """Without executed-action topics: control periods by the wall clock; the chunk sent is recorded."""
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
        return observations, rewards, success

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
