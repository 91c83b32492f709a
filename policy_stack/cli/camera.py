"""`policy-stack camera`: RealSense recordings and a first check of a camera, without ROS.

    policy-stack camera synth OUT.db3 [--width 640 --height 480 --fps 30 --frames 90 --depth-mm 1000] [--real-time]
    policy-stack camera check [--serial SERIAL | --recording FILE] [--frames 60] [--json]

synth writes a librealsense recording (hardware/realsense/synth.py: known intrinsics, a plane at
--depth-mm, a colour pattern) that `realsense_node` (parameter recording) and
`policy-stack up --real --camera-recording FILE` play back. check opens a device or a recording the
way the node does, reads --frames frame pairs and prints what a deployment should look at first:
profile, intrinsics and distortion, depth scale, frame rate, drops and the centre depth.
"""
from __future__ import annotations

import argparse
import json
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("synth", help="write a synthetic RGB-D recording (.db3)")
    s.add_argument("out", help="output recording, must end in .db3")
    s.add_argument("--width", type=int, default=640)
    s.add_argument("--height", type=int, default=480)
    s.add_argument("--fps", type=int, default=30)
    s.add_argument("--frames", type=int, default=90, help="frame pairs (default 90: 3 s at 30 fps)")
    s.add_argument("--depth-mm", type=int, default=1000, help="distance of the plane, millimetres")
    s.add_argument("--real-time", action="store_true",
                   help="write one frame per 1/fps (takes frames/fps s), for librealsense's real-time playback")
    c = sub.add_parser("check", help="open a camera or recording and report what it delivers")
    c.add_argument("--serial", default="", help="camera serial number (default: the first one found)")
    c.add_argument("--recording", default="", help="play this .db3/.bag instead of a device")
    c.add_argument("--width", type=int, default=640)
    c.add_argument("--height", type=int, default=480)
    c.add_argument("--fps", type=int, default=30)
    c.add_argument("--filters", default="", help="depth filters, e.g. decimation,spatial,temporal,hole_filling")
    c.add_argument("--frames", type=int, default=60, help="frame pairs to read (default 60)")
    c.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    return synth(args) if args.action == "synth" else check(args)


def synth(args) -> int:
    from hardware.realsense.synth import synthesize
    spec = synthesize(args.out, width=args.width, height=args.height, fps=args.fps, frames=args.frames,
                      depth_mm=args.depth_mm, real_time=args.real_time)
    print(f"wrote {spec.path}: {spec.frames} frames {spec.width}x{spec.height}@{spec.fps}, plane at "
          f"{spec.depth_mm} mm, fx {spec.fx:g} fy {spec.fy:g} ppx {spec.ppx:g} ppy {spec.ppy:g}")
    return 0


def check(args) -> int:
    import numpy as np

    from hardware.realsense.filters import parse_filters
    from hardware.realsense.source import CameraSettings, RealSenseSource

    if args.frames < 2:
        raise ValueError(f"--frames {args.frames}: need at least 2")
    settings = CameraSettings(serial=args.serial, width=args.width, height=args.height, fps=args.fps,
                              recording=args.recording, filters=parse_filters(args.filters))
    source = RealSenseSource(settings).start()
    arrivals, centre, valid, domain = [], [], [], ""
    try:
        while len(arrivals) < args.frames:
            f = source.read(timeout_s=2.0)
            if f is None:
                if not source.unpaired:
                    raise ValueError(f"no frame within 2 s from {source.description}")
                continue
            h, w = f.depth_mm.shape
            arrivals.append(f.arrival_mono_ns)
            centre.append(int(f.depth_mm[h // 2, w // 2]))
            valid.append(float((f.depth_mm > 0).mean()))
            domain = f.domain
    finally:
        source.stop()
    ci = source.color_intrinsics
    report = {"source": source.description, "serial": source.serial, "width": ci.width, "height": ci.height,
              "K": ci.K.tolist(), "distortion_model": ci.distortion_model, "librealsense_model": ci.rs_model,
              "D": list(ci.D), "depth_scale_m": source.depth_scale_m, "timestamp_domain": domain,
              "frames": len(arrivals), "fps": (len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) * 1e-9),
              "drops": source.drops, "unpaired_skipped": source.unpaired,
              "centre_depth_mm_median": float(np.median(centre)), "valid_depth_fraction": float(np.mean(valid)),
              "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:24s} {v}")
        if domain != "global_time" and not args.recording:
            print("note: the camera's clock is not the host's (global time off): the node stamps with 'now'")
    return 0
