"""ROS 2 simulation node: a sim/ environment that behaves like the robot side of the contract.

It publishes the observation topics (stamped with WALL time at capture: see config/sim_node.yaml),
executes the newest received chunk receding-horizon through policy_stack.safety.ChunkFollower (the
same code a hardware node uses) and holds whenever that chunk is missing, stale or used up. The env
runs in its own thread in real time at rate_hz; the executor thread receives chunks and services.

Per tick: capture + publish observation (stamp T) -> wait up to action_wait_s for the chunk computed
from it -> action = chunk[floor((now - stamp)/dt)] or hold -> env.step -> /episode/success, /sim/status.
Per episode it logs success and loop latency (observation stamp -> chunk received here) and appends
one JSON line to results_file for `policy-stack up`.
"""
from __future__ import annotations

import json
import threading
import time
import traceback
from collections import Counter

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from policy_stack import safety as S
from ros_nodes import convert as C
from ros_nodes.common import CHUNK_QOS, SENSOR_QOS, STATE_QOS, declare_parameters, expand, main_for

STATUS_NAME = "policy_stack/sim_node"


class SimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim_node", **kwargs)
        p = self.p = declare_parameters(self, "sim_node")
        from sim.envs import default_action_space, make_env  # heavy (robosuite, MuJoCo): only in the process that simulates

        self.cameras = [c.strip() for c in p["cameras"].split(",") if c.strip()]
        render = list(self.cameras)
        if p["video_path"] and p["video_camera"] not in render:
            render.append(p["video_camera"])    # rendered for the video only, not published
        self.period = 1.0 / p["rate_hz"]
        # The env (and its GL context, current only in the creating thread) is built in the sim thread.
        self._make_env = lambda: make_env(p["env"], cameras=render, image_size=p["image_size"], depth=p["depth"],
                                          seed=p["seed"], horizon=p["max_steps"],
                                          control_freq=int(round(p["rate_hz"])))
        self.env = None
        self.space = default_action_space()
        safety = S.ActionSafety(self.space, S.SafetyLimits(max_step_delta=p["max_step_delta"] or None))
        self.follower = S.ChunkFollower(safety, max_age_s=p["max_chunk_age_s"])
        self.events = S.EventLog()
        self.finished, self.exit_code = False, 0
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._latencies: list[float] = []     # this episode's loop latencies, ms
        self._lat_lock = threading.Lock()
        self._video = None
        if p["video_path"]:
            from ros_nodes.video import Mp4Writer
            self._video = Mp4Writer(p["video_path"], fps=p["rate_hz"])

        inputs, services = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.create_subscription(JointTrajectory, p["action_chunk_topic"], self._on_chunk, CHUNK_QOS,
                                 callback_group=inputs)
        self.create_service(Trigger, p["reset_service"], self._on_reset, callback_group=services)
        self._policy_reset = (self.create_client(Trigger, p["policy_reset_service"], callback_group=services)
                              if p["policy_reset_service"] else None)
        self._thread = threading.Thread(target=self._loop, name="sim", daemon=True)
        self._thread.start()

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
        self.status_pub = self.create_publisher(DiagnosticArray, p["status_topic"], STATE_QOS)

    # ------------------------------------------------------------------------------ ROS side
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_chunk(self, msg) -> None:
        received = self._now()
        topic = self.p["action_chunk_topic"]
        try:
            stamp, dt, chunk = C.trajectory_to_chunk(msg, topic, names=self.space.names)
        except C.ConversionError as exc:
            self.events.add(S.Event(S.BAD_INPUT, str(exc)), received)
            self.get_logger().warning(f"rejected chunk: {exc}", throttle_duration_sec=1.0)
            return
        if chunk is None:
            self.follower.set_hold(stamp)
            return
        accepted, events = self.follower.set_chunk(stamp, dt, chunk)
        for e in events:
            self.events.add(e, received)
            if e.holds:
                self.get_logger().warning(f"rejected chunk: {e}", throttle_duration_sec=1.0)
        if accepted:
            with self._lat_lock:
                self._latencies.append((received - stamp) * 1e3)

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

    def _publish_status(self, t, episode, step, action, hold, idx, age, success) -> None:
        """age: of the newest chunk when this step's action was chosen (not when status is sent)."""
        values = {"state": "hold" if hold else "executing", "reason": str(hold) if hold else "",
                  "episode": episode, "step": step, "chunk_index": idx,
                  "chunk_age_ms": age * 1e3 if np.isfinite(age) else float("nan"),
                  "action": [float(a) for a in action], "success": bool(success)}
        values.update({f"events.{k}": v for k, v in sorted(self.events.snapshot().items())})
        self.status_pub.publish(C.diagnostic_array(STATUS_NAME, C.WARN if hold else C.OK, values["state"],
                                                   values, C.sec_to_stamp(t)))

    # ------------------------------------------------------------------------------ sim thread
    def _loop(self) -> None:
        try:
            self.env = self._make_env()
            if self.env.action_space.names != self.space.names:
                raise ValueError(f"env action names {self.env.action_space.names} != {self.space.names}")
            self._make_publishers()
            self.get_logger().info(f"{self.env!r} at {self.p['rate_hz']:g} Hz, publishing cameras {self.cameras}")
            obs = self.env.reset(seed=self.p["seed"])
            self._wait_for_policy(obs)
            episode, n = 0, self.p["episodes"]
            while not self._stop.is_set() and (n == 0 or episode < n):
                if self._run_episode(episode) is not None:
                    episode += 1
        except (ValueError, FileNotFoundError) as exc:     # bad parameters (env, camera names): one line
            self.get_logger().error(f"error: {exc}")
            self.exit_code = 2
        except Exception as exc:
            if not self._stop.is_set():   # after Ctrl-C, publishing into a dead context is expected
                self.get_logger().error(f"sim loop failed: {exc!r}\n{traceback.format_exc()}")
                self.exit_code = 1
        finally:
            self._close_video()
            if self.env is not None:
                self.env.close()      # in the thread that owns its GL context
            self.finished = True

    def _wait_for_policy(self, obs) -> None:
        """Publish the initial state (without stepping) until the policy answers: start-up and DDS
        discovery take seconds, and an episode should not start with its clock running on holds."""
        deadline = time.monotonic() + self.p["wait_for_policy_s"]
        self.get_logger().info("waiting for the first action chunk")
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._publish_obs(obs, self._capture_stamp()[0])
            if self.follower.wait_for_chunk(-np.inf, self.period):
                self.get_logger().info("policy is up")
                return
        if not self._stop.is_set():
            self.get_logger().warning(f"no action chunk after {self.p['wait_for_policy_s']:g} s; starting anyway (hold)")

    def _run_episode(self, episode: int) -> dict | None:
        """One episode; returns its result, or None if it was restarted through /sim/reset."""
        p = self.p
        seed = p["seed"] + episode
        self._restart.clear()
        obs = self.env.reset(seed=seed)
        self._reset_policy()
        self.follower.reset(not_before=self._now())
        with self._lat_lock:
            self._latencies = []
        holds: Counter = Counter()
        success = False
        ret, step, t_start = 0.0, 0, time.monotonic()
        next_tick = time.monotonic()
        while step < p["max_steps"] and not self._stop.is_set():
            if self._restart.is_set():
                self.get_logger().info(f"episode {episode}: restarted through {p['reset_service']}")
                return None
            stamp, t_obs = self._capture_stamp()
            self._publish_obs(obs, stamp)
            # Give the policy up to action_wait_s to answer this observation (see module doc).
            self.follower.wait_for_chunk(t_obs, p["action_wait_s"])
            action, hold, idx = self.follower.action_at(self._now())
            chunk_age = self.follower.last_age
            if hold is not None:
                holds[hold.kind] += 1
                self.events.add(hold)
            obs, reward, done, info = self.env.step(action)
            step += 1
            ret += reward
            success = bool(info.get("success", False))
            self.success_pub.publish(Bool(data=success))
            self._publish_status(self._now(), episode, step, action, hold, idx, chunk_age, success)
            if self._video is not None:
                self._video.write(obs[f"{p['video_camera']}_rgb"])
            if (success and p["end_on_success"]) or done:
                break
            next_tick += self.period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.monotonic()    # running late: do not try to catch up with a burst
        with self._lat_lock:
            lat = list(self._latencies)
        result = {"episode": episode, "seed": seed, "success": success, "steps": step, "return": round(ret, 4),
                  "wall_s": round(time.monotonic() - t_start, 3), "holds": dict(holds),
                  "latency_ms": [round(x, 3) for x in lat]}
        pct = (lambda q: float(np.percentile(lat, q))) if lat else (lambda q: float("nan"))
        self.get_logger().info(
            f"episode {episode}: success={success} steps={step} loop latency p50={pct(50):.1f} ms "
            f"p99={pct(99):.1f} ms ({len(lat)} chunks) holds={sum(holds.values())}")
        if p["results_file"]:
            with open(p["results_file"], "a") as f:
                f.write(json.dumps(result) + "\n")
        return result

    def _close_video(self) -> None:
        if self._video is not None:
            self._video.close()
            self.get_logger().info(f"video: {self.p['video_path']} ({self._video.frames} frames)")
            self._video = None

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._close_video()


def main(args=None) -> int:
    return main_for(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
