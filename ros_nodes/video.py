"""The sim node's camera recording: the core MP4 writer (codec fallback included), with policy-sized
frames upscaled to at least 256 px so the video is watchable."""
from __future__ import annotations

from policy_stack.data.video import Mp4Writer as _CoreMp4Writer


class Mp4Writer(_CoreMp4Writer):
    def __init__(self, path: str, fps: float, min_size: int = 256):
        super().__init__(path, fps, min_size=min_size)
