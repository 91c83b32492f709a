"""The one MP4 writer (PyAV), and the decode/probe the dataset reader uses. PyAV is imported lazily.

Mp4Writer streams uint8 RGB frames into an MP4: constant frame rate, time_base 1/fps, frame k has
pts k (so its time is exactly k/fps), yuv420p. It tries codecs in order and keeps the first that
opens, so a video is written wherever FFmpeg has any of them: H.264 (libx264, then the other H.264
encoders) is preferred as the most widely decodable, MPEG-4 part 2 is built into every FFmpeg.

Datasets (encode_rgb_video) follow what LeRobot 0.4.4 decodes: GOP 2 (cheap seeks, LeRobot's
default), no B-frames, libx264 by default; libsvtav1 (LeRobot's default, AV1) via codec="libsvtav1".
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

VIEWING_CODECS = ("libx264", "libopenh264", "h264", "mpeg4")
DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 23   # LeRobot uses 30; 84x84 frames are tiny, so a little more quality costs little
_H264 = ("libx264", "h264")


class Mp4Writer:
    """Write frames one at a time: `w.write(rgb)` ... `w.close()` (or use it as a context manager).

    codec: a name or names tried in order (the first that opens wins; `codec_name` says which);
    None: VIEWING_CODECS.
    gop: keyframe interval (None: the encoder's default). min_size: upscale small frames by an
    integer factor, no interpolation, until the longer side reaches it (policy-sized 84x84 images are
    unwatchable). crop_odd: yuv420p needs even sizes; crop one row/column (viewing) or raise (data).
    """

    def __init__(self, path, fps: float, codec: str | tuple[str, ...] | None = None, crf: int = DEFAULT_CRF,
                 gop: int | None = None, min_size: int = 0, crop_odd: bool = True):
        self.path, self.fps = Path(path), int(round(fps))
        codec = VIEWING_CODECS if codec is None else codec
        self.codecs = (codec,) if isinstance(codec, str) else tuple(codec)
        self.crf, self.gop, self.min_size, self.crop_odd = crf, gop, min_size, crop_odd
        self.codec_name: str | None = None
        self.frames = 0
        self._container = self._stream = None

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, rgb: np.ndarray) -> None:
        img = self._prepare(np.asarray(rgb, dtype=np.uint8))
        if self._stream is None:
            self._open(img.shape[0], img.shape[1])
        import av
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = self.frames, Fraction(1, self.fps)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> str | None:
        """Flush and close; the file's path, or None when no frame was written (no file then)."""
        if self._container is None:
            return None
        for packet in self._stream.encode():      # flush the encoder
            self._container.mux(packet)
        self._container.close()
        self._container = self._stream = None
        return str(self.path)

    def _prepare(self, rgb: np.ndarray) -> np.ndarray:
        if self.min_size:
            f = max(1, -(-self.min_size // max(rgb.shape[:2])))
            rgb = np.repeat(np.repeat(rgb, f, 0), f, 1)
        h, w = rgb.shape[:2]
        if (h % 2 or w % 2) and self.codecs != ("libsvtav1",):   # AV1 takes odd sizes
            if not self.crop_odd:
                raise ValueError(f"{self.path}: yuv420p video needs even frame sizes, got {w}x{h} "
                                 f"(crop the camera, or use codec='libsvtav1')")
            rgb = rgb[: h - h % 2, : w - w % 2]
        return np.ascontiguousarray(rgb)

    def _open(self, h: int, w: int) -> None:
        import av
        self.path.parent.mkdir(parents=True, exist_ok=True)
        errors = []
        for name in self.codecs:
            container = av.open(str(self.path), mode="w", format="mp4")   # any file name: forced mp4
            try:
                stream = container.add_stream(name, rate=self.fps)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.time_base = Fraction(1, self.fps)
                stream.options = self._options(name)
                stream.codec_context.thread_count = 1     # the CPU is shared; frames are small
                stream.codec_context.open()
            except Exception as exc:                     # unknown or unusable encoder: try the next
                container.close()
                errors.append(f"{name}: {exc}")
                continue
            self._container, self._stream, self.codec_name = container, stream, name
            return
        self.path.unlink(missing_ok=True)
        raise RuntimeError(f"{self.path}: no usable video encoder among {list(self.codecs)} ({'; '.join(errors)})")

    def _options(self, name: str) -> dict:
        options = {} if self.gop is None else {"g": str(self.gop)}
        if name in _H264 or name == "libsvtav1":
            options["crf"] = str(self.crf)
        if name in _H264 and self.gop is not None:
            options["bf"] = "0"
        if name == "libsvtav1":
            options["preset"] = "12"
        if name == "mpeg4":
            options["qscale"] = "3"     # constant quality (its default bitrate blurs small frames)
        return options


def encode_rgb_video(path: Path, frames: np.ndarray, fps: int, codec: str = DEFAULT_CODEC,
                     crf: int = DEFAULT_CRF) -> None:
    """Encode (T, H, W, 3) uint8 frames to an MP4 at `path`, as a dataset stores them (GOP 2, exact sizes)."""
    with Mp4Writer(path, fps, codec=codec, crf=crf, gop=2, crop_odd=False) as writer:
        for frame in frames:
            writer.write(frame)


def decode_rgb_video(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All frames of the first video stream as (T, H, W, 3) uint8, plus their times in seconds."""
    import av
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
    import av
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
