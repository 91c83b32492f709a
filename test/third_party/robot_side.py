"""A robot side written only from docs/ros2.md, as a third party would: robosuite + rclpy, and NOTHING
from the policy_stack repository (no policy_stack, ros_nodes or sim import; do not add one).

It plays a Franka Panda on robosuite's Lift task against a running inference node:
- publishes, every control tick (20 Hz), one observation with ONE stamp on every topic:
  /joint_states (panda_joint1..7 + panda_finger_joint1/2, fingers positive in metres, as franka_ros2),
  /ee_pose and /objects/cube/pose (geometry_msgs/PoseStamped, frame_id panda_link0, the robot base frame;
  /ee_pose is robosuite's grip site, the end-effector point of the contract);
- executes /policy/action_chunk by time: action k of a chunk stamped T is due at T + k*dt; it pairs the
  chunk answering an observation by exact stamp equality; an empty chunk, a used-up or too old chunk
  means hold (zero motion, gripper as last commanded). The simulated arm stands still while it waits
  for the answer to its newest observation (up to --answer-wait), so its time is counted in control
  steps: "now" is T + (steps taken since the observation stamped T) * dt (--clock steps, default).
  --clock wall indexes by the wall clock instead, as an arm that keeps moving would;
- maps each action as the doc's action semantics say: dx,dy,dz in [-1,1] -> 0.05 m per step along the
  BASE axes, droll,dpitch,dyaw -> 0.5 rad rotation vector in the base frame, gripper < 0 open, > 0 close
  (for robosuite's OSC_POSE controller with input_ref_frame "base" that is its native input);
- calls /policy/reset at each episode start.

Prints one JSON line per episode and a summary line: {"summary": {...}}.
    python test/third_party/robot_side.py --episodes 3 --seed 100000
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time

import numpy as np
import rclpy
import rclpy.executors
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

BASE_FRAME = "panda_link0"
ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
FINGERS = ["panda_finger_joint1", "panda_finger_joint2"]
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
DT = 0.05                       # control period, s (20 Hz): the chunk's time_from_start spacing
MAX_CHUNK_AGE = 0.2             # never execute from a chunk computed on an observation older than this


def ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def quat_mul(a, b):             # xyzw
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


class BaseFrame:
    """The arm's base (robosuite body robot0_base) in robosuite's world: world poses -> base frame."""

    def __init__(self, sim):
        i = sim.model.body_name2id("robot0_base")
        self.t = np.array(sim.data.body_xpos[i], float)
        self.R = np.array(sim.data.body_xmat[i], float).reshape(3, 3)
        w, x, y, z = sim.data.body_xquat[i]
        self.q_inv = np.array([-x, -y, -z, w])

    def pose(self, p_world, q_world_xyzw):
        return self.R.T @ (np.asarray(p_world) - self.t), quat_mul(self.q_inv, q_world_xyzw)


class RobotSide:
    def __init__(self, node):
        self.node = node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.joints = node.create_publisher(JointState, "/joint_states", reliable)
        self.ee = node.create_publisher(PoseStamped, "/ee_pose", reliable)
        self.cube = node.create_publisher(PoseStamped, "/objects/cube/pose", reliable)
        self.reset_client = node.create_client(Trigger, "/policy/reset")
        self.lock = threading.Condition()
        self.chunks: dict[int, tuple] = {}     # stamp ns -> (frame_id, names, actions (T, 7) or None for hold)
        self.step_of: dict[int, int] = {}      # observation stamp ns -> control step it was taken at
        self.newest: int | None = None
        node.create_subscription(JointTrajectory, "/policy/action_chunk", self._on_chunk, reliable)

    def _on_chunk(self, msg):
        t = ns(msg.header.stamp)
        actions = np.array([p.positions for p in msg.points], float) if msg.points else None
        with self.lock:
            self.chunks[t] = (msg.header.frame_id, list(msg.joint_names), actions)
            if self.newest is None or t >= self.newest:
                self.newest = t
            for old in [k for k in self.chunks if k < t - 2_000_000_000]:
                del self.chunks[old]
            self.lock.notify_all()

    def publish(self, stamp: Time, joint_pos, fingers, ee, cube):
        js = JointState()
        js.header.stamp = stamp
        js.name = ARM_JOINTS + FINGERS
        js.position = [float(v) for v in list(joint_pos) + list(fingers)]
        self.joints.publish(js)
        for pub, (p, q) in ((self.ee, ee), (self.cube, cube)):
            m = PoseStamped()
            m.header.stamp, m.header.frame_id = stamp, BASE_FRAME
            m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in p)
            m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = (float(v) for v in q)
            pub.publish(m)

    def wait_answer(self, stamp_ns: int, timeout: float) -> bool:
        """Wait until the chunk (or hold) answering the observation stamped stamp_ns is here."""
        with self.lock:
            return self.lock.wait_for(lambda: stamp_ns in self.chunks, timeout)

    def action_at(self, now_ns: int | None, step: int):
        """(action, None) or (None, hold reason): action k of the newest chunk is due at T + k*dt.
        now_ns None: the robot's time is its step count (T's step + k steps = T + k*dt)."""
        with self.lock:
            if self.newest is None:
                return None, "no_chunk"
            frame, names, actions = self.chunks[self.newest]
            t0 = self.newest
        if actions is None:
            return None, "hold_command"
        if names != ACTION_NAMES or frame != BASE_FRAME:
            raise SystemExit(f"chunk names {names} / frame {frame!r} differ from docs/ros2.md")
        if now_ns is None:
            if t0 not in self.step_of:
                return None, "unknown_stamp"
            age = (step - self.step_of[t0]) * DT
        else:
            age = (now_ns - t0) * 1e-9
        k = int(np.floor(age / DT + 1e-9))
        if age > MAX_CHUNK_AGE or k >= len(actions):
            return None, "stale_chunk"
        return np.clip(actions[max(k, 0)], -1.0, 1.0), None

    def reset_policy(self):
        if not self.reset_client.wait_for_service(timeout_sec=30.0):
            raise SystemExit("/policy/reset not available")
        done = threading.Event()
        self.reset_client.call_async(Trigger.Request()).add_done_callback(lambda _f: done.set())
        done.wait(10.0)


def observe(raw: dict, base: BaseFrame):
    """What a real Franka reports, from robosuite's world-frame observation (robosuite: finger 2 negative)."""
    q1, q2 = raw["robot0_gripper_qpos"]
    return (raw["robot0_joint_pos"], [q1, -q2], base.pose(raw["robot0_eef_pos"], raw["robot0_eef_quat"]),
            base.pose(raw["cube_pos"], raw["cube_quat"]))


def run_episode(env, robot: RobotSide, clock, max_steps: int, answer_wait: float, wall_clock: bool) -> dict:
    raw = env.reset()
    base = BaseFrame(env.sim)
    robot.reset_policy()
    holds, exact, steps, success = {}, 0, 0, False
    gripper = -1.0
    next_tick = time.monotonic()
    while steps < max_steps:
        stamp = clock.now().to_msg()
        robot.step_of[ns(stamp)] = steps
        robot.publish(stamp, *observe(raw, base))
        # The sim cannot move while the policy thinks; a real arm would. Give it answer_wait to answer
        # this very observation (paired by exact stamp), then execute by time.
        if robot.wait_answer(ns(stamp), answer_wait):
            exact += 1
        action, hold = robot.action_at(clock.now().nanoseconds if wall_clock else None, steps)
        if action is None:
            holds[hold] = holds.get(hold, 0) + 1
            action = np.zeros(7)
            action[6] = gripper
        gripper = float(action[6])
        raw, _, _, _ = env.step(action)
        steps += 1
        if env._check_success():
            success = True
            break
        next_tick += DT
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()
    return {"success": success, "steps": steps, "answered_exactly": exact, "holds": holds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=100000)
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument("--answer-wait", type=float, default=0.5, help="s to wait for the chunk answering a tick")
    ap.add_argument("--clock", choices=["steps", "wall"], default="steps", help="what 'now' is when indexing chunks")
    a = ap.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):          # robosuite prints warnings on stdout
        import robosuite as suite
        env = suite.make("Lift", robots="Panda", has_renderer=False, has_offscreen_renderer=False,
                         use_camera_obs=False, use_object_obs=True, control_freq=20, horizon=a.max_steps,
                         hard_reset=False, ignore_done=True, seed=a.seed)
    rclpy.init()
    node = rclpy.create_node("third_party_robot")
    robot = RobotSide(node)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    results = []
    try:
        for ep in range(a.episodes):
            r = run_episode(env, robot, node.get_clock(), a.max_steps, a.answer_wait, a.clock == "wall")
            r["episode"] = ep
            results.append(r)
            print(json.dumps(r), flush=True)
    finally:
        env.close()
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    ok = sum(r["success"] for r in results)
    print(json.dumps({"summary": {"episodes": len(results), "successes": ok, "seed": a.seed, "clock": a.clock,
                                  "answer_wait_s": a.answer_wait,
                                  "answered_exactly": sum(r["answered_exactly"] for r in results),
                                  "steps": sum(r["steps"] for r in results)}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
