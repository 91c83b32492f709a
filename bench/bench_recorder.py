"""Recorder throughput: does the recorder node keep every frame of two 640x480 RGB-D cameras at 20 Hz?

    python -m bench.bench_recorder [--duration 30 --rate 20 --cameras 2 --size 640x480 --compression none] [--out FILE]

Two real processes in their own ROS domain, with the sim graph's transport (shared-memory Fast DDS
profile, ros_nodes/transport.py): ros_nodes/recorder_node.py, and a publisher standing in for a
RealSense pair plus the arm and the teleop node: per camera color (rgb8) + aligned depth (16UC1) +
camera_info, /joint_states and /teleop/action, all at --rate, framed by episode events (start ...
success, quit) like the teleop node sends. Images change every frame (random bytes), so nothing
compresses away. The publisher counts what it sent inside the episode; the MCAP file is read back
and every topic's count compared: dropped = sent - recorded. Also reported: the recorder's payload
throughput (MB/s of message bytes), the disk rate (file bytes / episode time) and, offline, how fast
the episode writer alone appends 640x480 frames (its headroom).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import RUNS
from policy_stack.persist import write_json_atomic

EVENT_TOPIC = "/teleop/episode_event"


def topics_for(cameras: int) -> dict[str, str]:
    t = {"/joint_states": "sensor_msgs/msg/JointState", "/teleop/action": "trajectory_msgs/msg/JointTrajectory",
         EVENT_TOPIC: "std_msgs/msg/String"}
    for c in range(cameras):
        t[f"/cam{c}/color/image_raw"] = "sensor_msgs/msg/Image"
        t[f"/cam{c}/aligned_depth_to_color/image_raw"] = "sensor_msgs/msg/Image"
        t[f"/cam{c}/color/camera_info"] = "sensor_msgs/msg/CameraInfo"
    return t


def publish(args) -> int:
    """The publisher process: waits for the recorder's subscriptions, then one episode of --duration s."""
    import rclpy
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory

    from ros_nodes import convert as C
    from ros_nodes.common import CHUNK_QOS, SENSOR_QOS, STATE_QOS
    from ros_nodes.teleop_node import EVENT_QOS

    w, h = (int(v) for v in args.size.split("x"))
    rclpy.init()
    node = rclpy.create_node("bench_recorder_publisher")
    pubs = {"/joint_states": node.create_publisher(JointState, "/joint_states", STATE_QOS),
            "/teleop/action": node.create_publisher(JointTrajectory, "/teleop/action", CHUNK_QOS)}
    for c in range(args.cameras):
        pubs[f"/cam{c}/color/image_raw"] = node.create_publisher(Image, f"/cam{c}/color/image_raw", SENSOR_QOS)
        pubs[f"/cam{c}/aligned_depth_to_color/image_raw"] = node.create_publisher(
            Image, f"/cam{c}/aligned_depth_to_color/image_raw", SENSOR_QOS)
        pubs[f"/cam{c}/color/camera_info"] = node.create_publisher(CameraInfo, f"/cam{c}/color/camera_info", SENSOR_QOS)
    events = node.create_publisher(String, EVENT_TOPIC, EVENT_QOS)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(p.get_subscription_count() > 0 for p in [*pubs.values(), events]):
        time.sleep(0.1)
    rng = np.random.default_rng(0)
    rgb = [rng.integers(0, 255, (h, w, 3), np.uint8) for _ in range(4)]
    depth_m = [rng.uniform(0.3, 2.0, (h, w)).astype(np.float32) for _ in range(4)]
    info = {"K": [[600.0, 0, w / 2], [0, 600.0, h / 2], [0, 0, 1]], "width": w, "height": h}
    names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
    sent = {t: 0 for t in pubs}
    period = 1.0 / args.rate
    ev = lambda e: events.publish(String(data=json.dumps({"event": e, "stamp_ns": time.time_ns(), "sim_episode": 0})))
    ev("start")
    time.sleep(0.5)                       # the start event is handled before the first frame
    t0 = time.monotonic()
    late = 0
    k = 0
    while time.monotonic() - t0 < args.duration:
        stamp = node.get_clock().now().to_msg()
        for c in range(args.cameras):
            frame = f"cam{c}_color_optical_frame"
            pubs[f"/cam{c}/color/camera_info"].publish(C.camera_info_msg(info, stamp, frame))
            pubs[f"/cam{c}/aligned_depth_to_color/image_raw"].publish(C.depth_to_image(depth_m[k % 4], stamp, frame))
            pubs[f"/cam{c}/color/image_raw"].publish(C.rgb_to_image(rgb[(k + c) % 4], stamp, frame))
            for t in (f"/cam{c}/color/camera_info", f"/cam{c}/aligned_depth_to_color/image_raw", f"/cam{c}/color/image_raw"):
                sent[t] += 1
        pubs["/joint_states"].publish(C.joint_state_msg(names, np.full(9, k * 1e-3), stamp))
        pubs["/teleop/action"].publish(C.chunk_to_trajectory(np.zeros((1, 7)), ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"], period, stamp))
        sent["/joint_states"] += 1
        sent["/teleop/action"] += 1
        k += 1
        delay = t0 + k * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
    elapsed = time.monotonic() - t0
    time.sleep(1.0)                       # let the last frames land before the stop
    ev("success")
    time.sleep(0.5)
    ev("quit")
    time.sleep(1.0)
    print(json.dumps({"sent": sent, "frames": k, "publish_s": round(elapsed, 3), "late_ticks": late}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def writer_headroom(size: str, frames: int = 60) -> dict:
    """Offline: append 640x480 RGB + depth frames through EpisodeMcapWriter alone."""
    from policy_stack.recording.episode_files import EpisodeMcapWriter, typestore
    ts = typestore()
    w_, h_ = (int(v) for v in size.split("x"))
    M = ts.types
    img = ts.serialize_cdr(M["sensor_msgs/msg/Image"](
        header=M["std_msgs/msg/Header"](stamp=M["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c"),
        height=h_, width=w_, encoding="rgb8", is_bigendian=0, step=3 * w_,
        data=np.random.default_rng(0).integers(0, 255, h_ * w_ * 3, np.uint8)), "sensor_msgs/msg/Image")
    with tempfile.TemporaryDirectory(prefix="bench_recorder_") as tmp:
        w = EpisodeMcapWriter(tmp, {"/img": "sensor_msgs/msg/Image"})
        w.open()
        t0 = time.perf_counter()
        for k in range(frames):
            w.add("/img", img, k)
        w.commit({})
        dt = time.perf_counter() - t0
    mb = frames * len(img) / 1e6
    return {"frames": frames, "frame_bytes": len(img), "seconds": round(dt, 3), "MB_per_s": round(mb / dt, 1),
            "frames_per_s": round(frames / dt, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--cameras", type=int, default=2)
    p.add_argument("--size", default="640x480")
    p.add_argument("--compression", default="none", choices=["none", "lz4", "zstd"])
    p.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)   # the publisher process
    p.add_argument("--out", default=str(RUNS / "recorder.json"), help="result JSON (default %(default)s)")
    args = p.parse_args(argv)
    if args.publish:
        return publish(args)

    import yaml

    from policy_stack.recording.episode_files import finished_episodes, read_episode_json
    from ros_nodes.transport import shm_profile_file

    topics = topics_for(args.cameras)
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(140, 230)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               FASTDDS_DEFAULT_PROFILES_FILE=shm_profile_file(), PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="bench_recorder_") as tmp:
        rec_dir = Path(tmp) / "rec"
        params = Path(tmp) / "recorder.yaml"
        params.write_text(yaml.safe_dump({"recorder_node": {"ros__parameters": {
            "topics": [f"{t}={ty}" for t, ty in topics.items()], "out_dir": str(rec_dir),
            "compression": args.compression, "task": "bench"}}}))
        recorder = subprocess.Popen([sys.executable, "-m", "ros_nodes.recorder_node", "--ros-args", "--params-file", params],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        pub = subprocess.run([sys.executable, "-m", "bench.bench_recorder", "--publish", "--duration", str(args.duration),
                              "--rate", str(args.rate), "--cameras", str(args.cameras), "--size", args.size],
                             env=env, capture_output=True, text=True, timeout=args.duration + 180)
        try:
            rec_out, _ = recorder.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            rec_out, _ = recorder.communicate()
        if pub.returncode != 0 or not finished_episodes(rec_dir):
            print(pub.stderr[-2000:], rec_out[-2000:], file=sys.stderr)
            return 1
        published = json.loads(pub.stdout.strip().splitlines()[-1])
        meta = read_episode_json(rec_dir, 0)
        mcap_bytes = (rec_dir / "episode_000000.mcap").stat().st_size
    sent, got = published["sent"], meta["messages"]
    dropped = {t: sent[t] - got.get(t, 0) for t in sent}
    episode_s = meta["duration_s"]
    result = {
        "bench": "recorder", "cameras": args.cameras, "size": args.size, "rate_hz": args.rate,
        "duration_s": args.duration, "compression": args.compression,
        "frames_published": published["frames"], "publisher_late_ticks": published["late_ticks"],
        "sent": sent, "recorded": got, "dropped": dropped, "dropped_total": int(sum(dropped.values())),
        "recorder_queue_drops": meta["dropped"],
        "payload_MB": round(meta["payload_bytes"] / 1e6, 1),
        "payload_MB_per_s": round(meta["payload_bytes"] / 1e6 / published["publish_s"], 1),
        "file_MB": round(mcap_bytes / 1e6, 1), "disk_MB_per_s": round(mcap_bytes / 1e6 / episode_s, 1),
        "episode_s": episode_s, "writer_alone": writer_headroom(args.size),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_end": os.getloadavg()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(Path(args.out), result, indent=1)
    print(json.dumps(result))
    return 0 if result["dropped_total"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
