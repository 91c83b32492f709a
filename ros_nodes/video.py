"""Minimal MP4 writer (PyAV, H.264) for the sim node's camera recording."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class Mp4Writer:
    def __init__(self, path: str, fps: float, min_size: int = 256):
        import av  # only when a video is requested
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fps, self.min_size = path, fps, min_size
        self._av, self._container, self._stream, self.frames = av, None, None, 0

    def write(self, rgb: np.ndarray) -> None:
        # Policy-sized images (84x84) are unwatchable: upscale by an integer factor, no interpolation.
        f = max(1, -(-self.min_size // max(rgb.shape[:2])))
        img = np.ascontiguousarray(np.repeat(np.repeat(rgb, f, 0), f, 1)[: rgb.shape[0] * f // 2 * 2,
                                                                           : rgb.shape[1] * f // 2 * 2])
        if self._container is None:
            self._container = self._av.open(self.path, "w")
            self._stream = self._container.add_stream("libx264", rate=int(round(self.fps)))
            self._stream.height, self._stream.width = img.shape[:2]
            self._stream.pix_fmt = "yuv420p"
        frame = self._av.VideoFrame.from_ndarray(img, format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
