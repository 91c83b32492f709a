"""RGB-D frames from a RealSense camera or a librealsense recording, through pyrealsense2.

    source = RealSenseSource(CameraSettings(recording="plane.db3"))
    source.start()                       # CameraError (one line) when it cannot
    frame = source.read(timeout_s=1.0)   # RGBDFrame or None (nothing within the timeout)
    source.stop()

Per frame pair: optional depth filters (filters.py) -> `rs.align(rs.stream.color)` (when `align`) ->
color as (H, W, 3) uint8 rgb8 and depth as (H, W) uint16 MILLIMETRES (the device's depth scale applied:
D4xx report 1 mm units, a D405 0.1 mm). Color and depth of one RGBDFrame come from one librealsense
frameset; the color timestamp stamps both (the depth is resampled into the color camera).

Recordings (.db3, or a legacy .bag) loop by default. `real_time` false (default) asks librealsense for
every frame (`set_real_time(False)`) and paces them here at the recorded rate times `playback_rate`
(0 = as fast as the reader takes them); true is librealsense's own real-time playback, which skips
frames a slow reader misses, like a live camera. Frame numbers that jump forward count as drops; a jump
back is a loop of the recording (or a camera restart), not a drop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hardware.realsense.errors import CameraError
from hardware.realsense.filters import build_chain

RECORDING_SUFFIXES = (".db3", ".bag")
# realsense-ros publishes Kannala-Brandt as "equidistant" and every Brown-Conrady variant as "plumb_bob"
# (coefficients k1, k2, p1, p2, k3: the same order as OpenCV's). We do the same, so consumers agree.
_ROS_MODEL = {"kannala_brandt4": "equidistant"}


@dataclass(frozen=True)
class CameraSettings:
    serial: str = ""                 # live camera: this serial number ("" = the only / first one)
    width: int = 640                 # color and depth profile; 0 = any the device or recording offers
    height: int = 480
    fps: int = 30
    align: bool = True               # depth resampled into the color camera (aligned_depth_to_color)
    recording: str = ""              # play this recording instead of a device
    real_time: bool = False          # recordings: librealsense real-time playback (may skip frames)
    playback_rate: float = 1.0       # recordings with real_time false: pace factor (0 = unpaced)
    loop: bool = True                # recordings: start over at the end
    filters: tuple = field(default=())   # names from filters.FILTERS (filters.parse_filters)


@dataclass(frozen=True)
class Intrinsics:
    width: int
    height: int
    K: np.ndarray                    # 3x3
    D: tuple                         # distortion coefficients as ROS expects them for `distortion_model`
    distortion_model: str            # ROS name: plumb_bob | equidistant
    rs_model: str                    # librealsense's name (inverse_brown_conrady, ...)

    def as_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "K": self.K, "D": list(self.D),
                "distortion_model": self.distortion_model}


@dataclass
class RGBDFrame:
    color: np.ndarray                # (H, W, 3) uint8 rgb8
    depth_mm: np.ndarray             # (H, W) uint16 millimetres, 0 = no data
    frame_number: int                # the color frame's number
    device_ms: float                 # the color frame's timestamp, milliseconds, in `domain`
    domain: str                      # global_time (host epoch, synced) | hardware_clock | system_time
    arrival_ns: int                  # time.time_ns() when librealsense handed the frames over (after pacing)
    arrival_mono_ns: int             # time.monotonic_ns() at the same moment (latency measurements)
    # The librealsense frames that own the memory the arrays view; released with this object.
    _keep: tuple = field(default=(), repr=False)


def _intrinsics(profile) -> Intrinsics:
    i = profile.as_video_stream_profile().get_intrinsics()
    rs_model = str(i.model).split(".")[-1]
    model = _ROS_MODEL.get(rs_model, "plumb_bob")
    coeffs = tuple(float(c) for c in i.coeffs)
    D = coeffs[:4] if model == "equidistant" else coeffs[:5]
    K = np.array([[i.fx, 0.0, i.ppx], [0.0, i.fy, i.ppy], [0.0, 0.0, 1.0]], np.float64)
    return Intrinsics(int(i.width), int(i.height), K, D, model, rs_model)


def _profiles_text(sensors) -> str:
    """'color 640x480@30 rgb8, depth 640x480@30 z16, ...': what the user may ask for instead."""
    seen = []
    for s in sensors:
        for p in s.get_stream_profiles():
            if not p.is_video_stream_profile():
                continue
            v = p.as_video_stream_profile()
            kind, fmt = str(p.stream_type()).split(".")[-1], str(p.format()).split(".")[-1]
            if kind in ("color", "depth") and fmt in ("rgb8", "z16"):
                text = f"{kind} {v.width()}x{v.height()}@{p.fps()} {fmt}"
                if text not in seen:
                    seen.append(text)
    return ", ".join(seen[:16]) + (" ..." if len(seen) > 16 else "") if seen else "none with rgb8 color and z16 depth"


class RealSenseSource:
    def __init__(self, settings: CameraSettings):
        self.settings = settings
        self.warnings: list[str] = []    # things the caller should log once (serial ignored, ...)
        self.pipeline = None
        self.color_intrinsics: Intrinsics | None = None
        self.depth_intrinsics: Intrinsics | None = None   # of the published depth (= color when aligned)
        self.depth_scale_m = 0.001
        self.serial = ""
        self.description = ""
        self.drops = 0                   # frames skipped (forward jumps of the frame number)
        self.unpaired = 0                # framesets whose color and depth were not of one moment (skipped)
        self.loops = 0                   # restarts of a recording
        self._filters = []
        self._align = None
        self._last_number: int | None = None
        self._pace_due: float | None = None      # monotonic time the previous frame was due
        self._pace_ms: float | None = None       # and its device timestamp
        self._period_s = 1.0 / settings.fps if settings.fps > 0 else 1.0 / 30

    # ------------------------------------------------------------------------------ start / stop
    def start(self) -> "RealSenseSource":
        import pyrealsense2 as rs

        s = self.settings
        cfg = rs.config()
        if s.recording:
            path = Path(s.recording).expanduser()
            if not path.is_file():
                raise CameraError(f"recording not found: {path}")
            if path.suffix not in RECORDING_SUFFIXES:
                raise CameraError(f"recording {path}: expected a librealsense .db3 or .bag file")
            if s.serial:
                self.warnings.append(f"serial {s.serial!r} ignored: playing the recording {path}")
            cfg.enable_device_from_file(str(path), repeat_playback=s.loop)
            what = f"recording {path}"
            sensors = lambda: rs.context().load_device(str(path)).query_sensors()
        else:
            devices = rs.context().query_devices()
            serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
            if not serials:
                raise CameraError("no RealSense device found (check the USB 3 cable and udev rules; "
                                  "rs-enumerate-devices lists what librealsense sees)")
            if s.serial and s.serial not in serials:
                raise CameraError(f"RealSense serial {s.serial!r} not found; connected: {', '.join(serials)}")
            serial = s.serial or serials[0]
            cfg.enable_device(serial)
            what = f"device {serial}"
            sensors = lambda: next(d for d in devices if d.get_info(rs.camera_info.serial_number) == serial).query_sensors()
        cfg.enable_stream(rs.stream.color, s.width, s.height, rs.format.rgb8, s.fps)
        cfg.enable_stream(rs.stream.depth, s.width, s.height, rs.format.z16, s.fps)
        pipeline = rs.pipeline()
        if not cfg.can_resolve(rs.pipeline_wrapper(pipeline)):
            raise CameraError(f"unsupported profile {s.width}x{s.height}@{s.fps} (color rgb8 + depth z16) for "
                              f"{what}; it offers: {_profiles_text(sensors())}")
        try:
            profile = pipeline.start(cfg)
        except RuntimeError as exc:
            raise CameraError(f"{what}: librealsense could not start streaming: {exc}") from None
        self.pipeline = pipeline
        dev = profile.get_device()
        if s.recording:
            playback = dev.as_playback()
            playback.set_real_time(bool(s.real_time))
        self.serial = dev.get_info(rs.camera_info.serial_number) if dev.supports(rs.camera_info.serial_number) else ""
        try:
            self.depth_scale_m = float(dev.first_depth_sensor().get_depth_scale())
        except RuntimeError:
            self.warnings.append("no depth scale reported; assuming 1 mm depth units")
        color = profile.get_stream(rs.stream.color)
        self.color_intrinsics = _intrinsics(color)
        self.depth_intrinsics = self.color_intrinsics if s.align else None   # unaligned: from the first frame
        self._period_s = 1.0 / color.fps()
        self._filters = build_chain(s.filters)
        self._align = rs.align(rs.stream.color) if s.align else None
        mode = "" if not s.recording else (", real-time playback" if s.real_time else
                                           f", every frame, paced x{s.playback_rate:g}" if s.playback_rate > 0
                                           else ", every frame, unpaced")
        ci = self.color_intrinsics
        self.description = (f"{what} (serial {self.serial or '?'}) {ci.width}x{ci.height}@{color.fps()} "
                            f"depth scale {self.depth_scale_m:g} m{mode}; align {s.align}; "
                            f"filters {list(s.filters) or 'none'}")
        return self

    def stop(self) -> None:
        if self.pipeline is not None:
            try:
                self.pipeline.stop()
            except RuntimeError:
                pass
            self.pipeline = None

    # ------------------------------------------------------------------------------ frames
    def read(self, timeout_s: float = 1.0) -> RGBDFrame | None:
        """The next frame pair, or None when none came within timeout_s (or the pair was unusable)."""
        ok, frames = self.pipeline.try_wait_for_frames(max(1, int(timeout_s * 1000)))
        if not ok:
            return None
        color = frames.get_color_frame()
        if not color or not frames.get_depth_frame():
            self.unpaired += 1
            return None
        number, stamp_ms = int(color.get_frame_number()), float(color.get_timestamp())
        depth_ms = float(frames.get_depth_frame().get_timestamp())
        if abs(depth_ms - stamp_ms) > 0.5e3 * self._period_s:
            # The syncer paired frames of different moments (the seam of a looping recording, a stall):
            # aligned to this color they would be wrong, so the pair is skipped.
            self.unpaired += 1
            return None
        self._count(number)
        self._pace(stamp_ms)
        arrival_ns, arrival_mono_ns = time.time_ns(), time.monotonic_ns()
        for f in self._filters:
            frames = f.process(frames)
        frames = frames.as_frameset()
        if self._align is not None:
            frames = self._align.process(frames)
        color, depth = frames.get_color_frame(), frames.get_depth_frame()
        if self.depth_intrinsics is None:
            self.depth_intrinsics = _intrinsics(depth.get_profile())
        depth_raw = np.asanyarray(depth.get_data())
        scale_mm = self.depth_scale_m * 1000.0
        if abs(scale_mm - 1.0) < 1e-6:
            depth_mm = depth_raw                        # already millimetres (D4xx default)
        else:
            depth_mm = np.clip(np.rint(depth_raw * scale_mm), 0, 65535).astype(np.uint16)
        domain = str(color.get_frame_timestamp_domain()).split(".")[-1]
        return RGBDFrame(np.asanyarray(color.get_data()), depth_mm, number, stamp_ms, domain,
                         arrival_ns, arrival_mono_ns, _keep=(frames, color, depth))

    def _count(self, number: int) -> None:
        last = self._last_number
        if last is not None:
            if number > last + 1:
                self.drops += number - last - 1
            elif number <= last:
                self.loops += 1
        self._last_number = number

    def _pace(self, stamp_ms: float) -> None:
        """Recordings played frame by frame: hand frames over at the recorded rate (times playback_rate).
        Late by more than a period: start afresh from now instead of catching up with a burst."""
        s = self.settings
        if not s.recording or s.real_time or s.playback_rate <= 0:
            return
        now = time.monotonic()
        if self._pace_due is None:
            due = now
        else:
            step_ms = stamp_ms - self._pace_ms
            if not 0 < step_ms < 1000:            # the loop seam or a gap: one nominal period
                step_ms = 1e3 * self._period_s
            due = self._pace_due + step_ms / 1e3 / s.playback_rate
            if due > now:
                time.sleep(due - now)
            elif now - due > self._period_s:
                due = now
        self._pace_due, self._pace_ms = due, stamp_ms
