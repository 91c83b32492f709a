"""Synthesize a librealsense recording: known intrinsics, a plane at a known depth, a colour pattern.

    synthesize("plane.db3", width=640, height=480, fps=30, frames=60, depth_mm=1234)

A `rs.software_device` with a depth sensor (z16, depth units 1 mm) and a color sensor (rgb8), both
with the same intrinsics and identity extrinsics, feeds N frame pairs through `rs.recorder`, which
writes librealsense's rosbag2 (.db3) format (the only one it writes; .bag is read-only since 2.5x).
Playback of the result is what a D4xx recording looks like to the camera source and to realsense-ros.

What a reader can check against the returned `SynthSpec`:
- depth: every pixel `depth_mm` (a fronto-parallel plane), so aligned depth at the centre is exactly it;
- color: R = x mod 256, G = y mod 256, B = frame index mod 256 (`expected_color`), so a consumer can
  tell which frame it got and whether rows or channels were swapped;
- intrinsics: `spec.K` (fx, fy, ppx, ppy) and the distortion model and coefficients of the color stream;
- stamps: frame k at `start_ms + k * 1000 / fps` in the global_time domain (host epoch milliseconds,
  as a D4xx with global time enabled reports), so a recording's device stamps lie in the past.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SERIAL = "000000000001"   # the serial number the synthetic device reports (playback: device info)


@dataclass(frozen=True)
class SynthSpec:
    path: str
    width: int
    height: int
    fps: int
    frames: int
    depth_mm: int
    fx: float
    fy: float
    ppx: float
    ppy: float
    model: str = "inverse_brown_conrady"      # what D4xx color streams report
    coeffs: tuple = field(default=(0.0, 0.0, 0.0, 0.0, 0.0))
    start_ms: float = 0.0

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.ppx], [0.0, self.fy, self.ppy], [0.0, 0.0, 1.0]])

    def stamp_ms(self, k: int) -> float:
        return self.start_ms + k * 1000.0 / self.fps


def default_intrinsics(width: int, height: int) -> tuple[float, float, float, float]:
    """fx, fy, ppx, ppy like a D435 color stream (fx ~ 0.96 w), rounded to quarter pixels so that they
    survive librealsense's float32 storage exactly (a test compares them with ==)."""
    q = lambda v: round(v * 4) / 4
    return q(0.9609 * width), q(0.9609 * width + 0.75), q(width / 2 - 0.5 + 1.25), q(height / 2 - 0.5 - 0.75)


def expected_color(width: int, height: int, k: int) -> np.ndarray:
    """The (H, W, 3) uint8 colour image of frame k (see the module doc)."""
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (np.arange(width) % 256)[None, :]
    img[..., 1] = (np.arange(height) % 256)[:, None]
    img[..., 2] = k % 256
    return img


def synthesize(path, width: int = 640, height: int = 480, fps: int = 30, frames: int = 60,
               depth_mm: int = 1000, coeffs=(0.0, 0.0, 0.0, 0.0, 0.0), real_time: bool = False) -> SynthSpec:
    """Write the recording at `path` (must end in .db3) and return what it holds.

    The recorder files each frame under the host time it arrived, and librealsense's REAL-TIME playback
    follows those times, not the frames' own timestamps: a recording written as fast as possible plays
    in real time far faster than its fps. real_time=True writes one frame pair per 1/fps (takes
    frames/fps seconds) so that real-time playback runs at fps; frame-by-frame playback (the camera
    node's default) paces by the frame timestamps and needs no such care."""
    import pyrealsense2 as rs

    path = Path(path)
    if path.suffix != ".db3":
        raise ValueError(f"{path}: librealsense's recorder writes only .db3 recordings")
    if not (1 <= frames and 1 <= fps <= 300 and 16 <= width <= 4096 and 16 <= height <= 4096):
        raise ValueError(f"synthesize: frames {frames}, fps {fps}, size {width}x{height} out of range")
    if not 0 < depth_mm <= 65535:
        raise ValueError(f"synthesize: depth_mm {depth_mm} outside (0, 65535]")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)      # the recorder appends to an existing database
    fx, fy, ppx, ppy = default_intrinsics(width, height)
    spec = SynthSpec(str(path), width, height, fps, frames, int(depth_mm), fx, fy, ppx, ppy,
                     coeffs=tuple(float(c) for c in coeffs), start_ms=float(int(time.time() * 1000)))

    dev = rs.software_device()
    for info, value in ((rs.camera_info.name, "policy_stack synthetic RGB-D"), (rs.camera_info.serial_number, SERIAL),
                        (rs.camera_info.product_line, "D400")):
        dev.register_info(info, value)
    depth_sensor, color_sensor = dev.add_sensor("Stereo Module"), dev.add_sensor("RGB Camera")

    def stream(kind, uid, fmt, bpp, model, dist):
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = width, height, fx, fy, ppx, ppy
        intr.model, intr.coeffs = model, list(dist)
        s = rs.video_stream()
        s.type, s.index, s.uid, s.width, s.height, s.fps, s.bpp, s.fmt, s.intrinsics = (
            kind, 0, uid, width, height, fps, bpp, fmt, intr)
        return s

    # Depth streams of a D4xx are rectified (no distortion); the color stream carries the model.
    depth_profile = depth_sensor.add_video_stream(stream(rs.stream.depth, 0, rs.format.z16, 2, rs.distortion.none, [0.0] * 5))
    color_profile = color_sensor.add_video_stream(stream(rs.stream.color, 1, rs.format.rgb8, 3,
                                                         getattr(rs.distortion, spec.model), spec.coeffs))
    depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
    identity = rs.extrinsics()
    identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
    depth_profile.register_extrinsics_to(color_profile, identity)
    dev.create_matcher(rs.matchers.dlr_c)

    recorder = rs.recorder(str(path), dev)
    depth_sensor.open(depth_profile)
    color_sensor.open(color_profile)
    depth_sensor.start(lambda f: None)       # the recorder taps frames on their way to these callbacks
    color_sensor.start(lambda f: None)
    depth = np.full((height, width), depth_mm, np.uint16)
    next_write = time.monotonic()
    try:
        for k in range(frames):
            if real_time:
                next_write += 1.0 / fps
                time.sleep(max(0.0, next_write - time.monotonic()))
            for sensor, profile, pixels, bpp in ((depth_sensor, depth_profile, depth, 2),
                                                 (color_sensor, color_profile, expected_color(width, height, k), 3)):
                f = rs.software_video_frame()
                f.pixels, f.bpp, f.stride = pixels, bpp, bpp * width
                f.timestamp, f.domain, f.frame_number = spec.stamp_ms(k), rs.timestamp_domain.global_time, k
                f.profile = profile.as_video_stream_profile()
                sensor.on_video_frame(f)
    finally:
        for sensor in (depth_sensor, color_sensor):
            sensor.stop()
            sensor.close()
        del recorder                         # closes the database
    if not path.is_file():
        raise RuntimeError(f"librealsense's recorder wrote nothing to {path}")
    return spec
