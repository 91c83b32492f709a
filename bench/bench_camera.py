"""RealSense camera node playing a synthesized 640x480 recording: rate, drops, publish latency, values.

    python -m bench.bench_camera [--seconds 10] [--width 640 --height 480 --fps 30] [--out runs/bench/camera.json]

A recording long enough for warm-up plus the measured window (so no loop seam falls inside it) is
synthesized with hardware/realsense/synth.py (plane at --depth-mm, known intrinsics, colour pattern
whose blue channel is the frame index), then played by `realsense_node` as its own process (started
like `policy-stack up` starts nodes; real_time false: every frame, paced at the recorded rate, unless
--real-time), and
received here by an rclpy subscriber in the sim graph's transport (LOCALHOST, shared-memory profile).

Over the --seconds window after --warmup seconds:
- rate: color frames received / window, and the node's own count (/diagnostics frames_published) over
  the span between the diagnostics just before and just after the window;
- drops: frames librealsense skipped or that could not be paired (node: drops + unpaired_skipped), and
  frames missing from the received sequence (`drops_transport`: gaps in the pattern's frame index, so
  source drops count there too; meaningless when the recording loops inside the window, which the
  default length avoids unless playback runs faster than recorded);
- publish latency: the node's own measurement (librealsense hand-over -> last of the four messages
  published), per 1 s diagnostics window: median of the window p50s, max of the window p95s; plus
  receive latency here (receive time - stamp; stamp_source now = the hand-over time), which adds the
  transport and this subscriber's scheduling, an upper bound of the publish latency;
- values: centre depth of every received depth frame == --depth-mm, camera_info K == the synthesized K,
  color and depth of each frame with identical stamps.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import RUNS
from policy_stack.persist import write_text_atomic


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measured window, s")
    ap.add_argument("--warmup", type=float, default=3.0, help="s of frames before the window")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--depth-mm", type=int, default=1234)
    ap.add_argument("--filters", default="", help="depth filters for the node (default none)")
    ap.add_argument("--real-time", action="store_true",
                    help="librealsense real-time playback (default: every frame, paced by the node); the "
                         "recording is then written in real time too (synthesize(real_time=True))")
    ap.add_argument("--write", choices=["auto", "fast", "real_time"], default="auto",
                    help="how the recording is written: fast, or one frame per 1/fps (auto: real_time with "
                         "--real-time, else fast)")
    ap.add_argument("--domain-id", type=int, default=None)
    ap.add_argument("--out", default=str(RUNS / "camera.json"))
    args = ap.parse_args(argv)

    os.environ.setdefault("ROS_DOMAIN_ID", str(args.domain_id if args.domain_id is not None else 150 + os.getpid() % 70))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    from ros_nodes.transport import shm_profile_file
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = shm_profile_file()   # as the node's (must match)

    import rclpy  # noqa: F401  before pyrealsense2, or this process crashes at exit (hardware/realsense/__init__.py)
    from hardware.realsense.synth import synthesize
    work = Path(tempfile.mkdtemp(prefix="bench_camera_"))
    frames = int((args.warmup + args.seconds + 5.0) * args.fps)
    t0 = time.perf_counter()
    spec = synthesize(work / "plane.db3", width=args.width, height=args.height, fps=args.fps, frames=frames,
                      depth_mm=args.depth_mm,
                      real_time=args.write == "real_time" or (args.write == "auto" and args.real_time))
    synth_s = time.perf_counter() - t0
    print(f"synthesized {frames} frames in {synth_s:.1f} s: {spec.path}", file=sys.stderr)
    result = measure(spec, args, work)
    result.update({
        "benchmark": "bench.bench_camera", "command": "python -m bench.bench_camera " + " ".join(argv or sys.argv[1:]),
        "recording": {"width": spec.width, "height": spec.height, "fps": spec.fps, "frames": spec.frames,
                      "depth_mm": spec.depth_mm, "K": spec.K.tolist(), "synth_s": round(synth_s, 2),
                      "real_time_playback": bool(args.real_time)},
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
                 "load_avg_1m": round(os.getloadavg()[0], 2)},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    result["targets"] = {
        "rate_30pm1_hz": abs(result["rate_hz_received"] - args.fps) <= 1.0,
        "no_drops": result["drops_source"] == 0 and result["drops_transport"] == 0,
        "publish_latency_p50_le_10ms": result["publish_latency_ms"]["p50_of_windows"] <= 10.0,
        "centre_depth_exact": result["centre_depth_mm"]["all_equal_synthesized"],
        "K_exact": result["K_equal_synthesized"],
        "stamps_identical": result["color_depth_same_stamp_fraction"] == 1.0}
    text = json.dumps(result, indent=1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(args.out), text + "\n")
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _diag(client):
    from ros_nodes.convert import diagnostic_values
    out = []
    for t, m in list(client.msgs["/diagnostics"]):
        if m.status and m.status[0].name == "policy_stack/realsense_node":
            out.append((t, dict(diagnostic_values(m), stamp_s=m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)))
    return out


def measure(spec, args, work: Path) -> dict:
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image

    from ros_nodes import convert as C
    from ros_nodes.common import SENSOR_QOS
    from ros_nodes.graph import Graph, NodeSpec
    from ros_nodes.launcher import GraphProcesses
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "ros"))
    from ros_testlib import RosClient

    topics = {"color": "/camera/color/image_raw", "depth": "/camera/aligned_depth_to_color/image_raw",
              "info": "/camera/color/camera_info"}
    client = RosClient("bench_camera")
    received = {"color": [], "depth": []}      # (receive wall s, stamp ns, value) - values extracted at once

    def on_color(m):
        now = time.time()
        index = int(np.frombuffer(m.data, np.uint8, count=3, offset=0)[2])   # pixel (0,0) blue = frame index
        received["color"].append((now, C.stamp_to_ns(m.header.stamp), index, m.header.frame_id))

    def on_depth(m):
        now = time.time()
        d = C.image_to_depth(m, "depth", dtype="uint16")
        received["depth"].append((now, C.stamp_to_ns(m.header.stamp), int(d[m.height // 2, m.width // 2]),
                                  m.header.frame_id))
    client.node.create_subscription(Image, topics["color"], on_color, SENSOR_QOS)
    client.node.create_subscription(Image, topics["depth"], on_depth, SENSOR_QOS)
    client.record(CameraInfo, topics["info"])
    client.record(DiagnosticArray, "/diagnostics")

    node = NodeSpec(name="realsense_node", executable="realsense_node", module="ros_nodes.realsense_node",
                    parameters={"recording": spec.path, "stamp_source": "now", "filters": args.filters,
                                "real_time": bool(args.real_time),
                                "diagnostics_period_s": 1.0, "width": spec.width, "height": spec.height,
                                "fps": spec.fps})
    procs = GraphProcesses(Graph((node,), {}), work, out=sys.stderr).start()
    try:
        if not client.wait_for(lambda: len(received["color"]) > 0, timeout=120):
            raise RuntimeError(f"no frame from the camera node: {list(procs.tails['realsense_node'])}")
        time.sleep(args.warmup)
        diag_start = _diag(client)[-1][1]
        t_start = time.time()
        time.sleep(args.seconds)
        t_end = time.time()
        time.sleep(1.5)                        # the diagnostics window covering t_end arrives
        diags = _diag(client)
    finally:
        client.close()
        codes = procs.stop()

    colors = [r for r in received["color"] if t_start <= r[0] < t_end]
    depth_by_stamp = {r[1]: r for r in received["depth"]}
    diag_end = next(v for t, v in diags if t >= t_end)
    windows = [v for t, v in diags if t_start + 1.0 <= t <= t_end + 1.0 and int(v["latency_frames"]) > 0]
    p50s = [float(v["latency_ms.p50"]) for v in windows]
    p95s = [float(v["latency_ms.p95"]) for v in windows]
    gaps = sum((b[2] - a[2]) % 256 - 1 for a, b in zip(colors, colors[1:]))
    receive_ms = [(r[0] - r[1] * 1e-9) * 1e3 for r in colors]
    window_depths = [depth_by_stamp[r[1]] for r in colors if r[1] in depth_by_stamp]
    centre = [d[2] for d in window_depths]
    info = client.msgs[topics["info"]][-1][1]
    node_published = int(diag_end["frames_published"]) - int(diag_start["frames_published"])
    return {
        "window_s": round(t_end - t_start, 3),
        "frames_received": len(colors),
        "rate_hz_received": round(len(colors) / (t_end - t_start), 3),
        "rate_hz_by_stamps": round((len(colors) - 1) / ((colors[-1][1] - colors[0][1]) * 1e-9), 3),
        "node_rate_hz": round(node_published / (diag_end["stamp_s"] - diag_start["stamp_s"]), 3),
        "node_rate_span_s": round(diag_end["stamp_s"] - diag_start["stamp_s"], 3),
        "node_fps_windows": [round(float(v["fps"]), 2) for v in windows],
        "drops_source": (int(diag_end["drops"]) - int(diag_start["drops"]))
                        + (int(diag_end["unpaired_skipped"]) - int(diag_start["unpaired_skipped"])),
        "drops_transport": int(gaps),
        "publish_latency_ms": {"p50_of_windows": round(float(np.median(p50s)), 3),
                               "p95_max_of_windows": round(float(max(p95s)), 3),
                               "window_p50s": [round(x, 3) for x in p50s]},
        "receive_latency_ms": {q: round(float(np.percentile(receive_ms, int(q[1:]))), 3) for q in ("p50", "p95", "p99")},
        "centre_depth_mm": {"min": min(centre), "max": max(centre), "frames": len(centre),
                            "all_equal_synthesized": bool(centre) and set(centre) == {spec.depth_mm}},
        "K_equal_synthesized": bool(np.array_equal(np.asarray(info.k).reshape(3, 3), spec.K)),
        "color_depth_same_stamp_fraction": round(len(window_depths) / max(1, len(colors)), 4),
        "frame_ids": sorted({r[3] for r in colors} | {d[3] for d in window_depths}),
        "node_exit_code": codes.get("realsense_node"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
