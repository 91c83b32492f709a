"""RGB video encode/decode with PyAV, following what LeRobot 0.4.4 decodes (notes section 6).

Encoding: one video stream, constant frame rate = dataset fps, time_base 1/fps, frame k has pts k
(so its time is exactly k/fps), yuv420p, GOP 2 (cheap seeks, LeRobot's default), no B-frames.
libx264 (H.264) is the default: the most widely decodable codec, and LeRobot decoded it with both
of its backends. libsvtav1 (LeRobot's default, AV1) is available as `codec="libsvtav1"`.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 23   # LeRobot uses 30; 84x84 frames are tiny, so a little more quality costs little


def encode_rgb_video(path: Path, frames: np.ndarray, fps: int, codec: str = DEFAULT_CODEC,
                     crf: int = DEFAULT_CRF) -> None:
    """Encode (T, H, W, 3) uint8 frames to an MP4 at `path` (any name: the container is forced to mp4)."""
    t, h, w, _ = frames.shape
    if codec in ("libx264", "h264") and (h % 2 or w % 2):
        raise ValueError(f"{path}: libx264 with yuv420p needs even frame sizes, got {w}x{h} "
                         f"(use codec='libsvtav1' or crop the camera)")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        options = {"g": "2", "crf": str(crf)}
        if codec in ("libx264", "h264"):
            options["bf"] = "0"
        elif codec == "libsvtav1":
            options["preset"] = "12"
        stream.options = options
        stream.codec_context.thread_count = 1     # the CPU is shared; frames are tiny
        for k in range(t):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[k]), format="rgb24")
            frame.pts = k
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():            # flush the encoder
            container.mux(packet)


def decode_rgb_video(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All frames of the first video stream as (T, H, W, 3) uint8, plus their times in seconds."""
    frames, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * frame.time_base) if frame.pts is not None else np.nan)
    if not frames:
        raise ValueError(f"{path}: no video frames could be decoded")
    order = np.argsort(times, kind="stable")
    return np.stack(frames)[order], np.asarray(times, np.float64)[order]


def probe_video(path: Path) -> dict:
    """Stream facts for info.json's video `info` block (what LeRobot's get_video_info reports)."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        pix_fmt = ctx.pix_fmt or (stream.format.name if stream.format else None)
        rate = stream.base_rate or stream.average_rate
        return {
            "video.height": int(ctx.height),
            "video.width": int(ctx.width),
            "video.codec": ctx.codec.name,            # canonical name: h264, av1, hevc
            "video.pix_fmt": pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(rate) if rate else None,
            "video.channels": 1 if pix_fmt and pix_fmt.startswith("gray") else 3,
            "has_audio": bool(container.streams.audio),
        }
