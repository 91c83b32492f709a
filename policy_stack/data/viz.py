"""Render an episode for people: RGB cameras and colourized depth side by side (cv2)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .video import encode_rgb_video

TILE_HEIGHT = 168          # 84x84 cameras are upscaled x2 so a person can see them
FILMSTRIP_FRAMES = 8


def colorize_depth(depth_m: np.ndarray, near: float, far: float) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB (turbo colormap); 0 (no reading) is black."""
    import cv2

    scaled = np.clip((depth_m - near) / max(far - near, 1e-6), 0, 1)
    bgr = cv2.applyColorMap((255 * (1 - scaled)).astype(np.uint8), cv2.COLORMAP_TURBO)
    bgr[depth_m <= 0] = 0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _resize(img: np.ndarray, height: int) -> np.ndarray:
    import cv2

    width = max(2, int(round(img.shape[1] * height / img.shape[0])) // 2 * 2)
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)


def episode_panels(episode: dict, rgb_keys: list[str], depth_keys: list[str]) -> np.ndarray:
    """(T, H, W_total, 3) uint8: each frame's RGB cameras then colourized depth maps, left to right."""
    depth_range = {}
    for key in depth_keys:
        valid = episode[key][episode[key] > 0]
        depth_range[key] = (float(np.percentile(valid, 1)), float(np.percentile(valid, 99))) if valid.size else (0.0, 1.0)
    length = len(episode["action"])
    frames = []
    for t in range(length):
        tiles = [_resize(episode[k][t], TILE_HEIGHT) for k in rgb_keys]
        tiles += [_resize(colorize_depth(episode[k][t], *depth_range[k]), TILE_HEIGHT) for k in depth_keys]
        frames.append(np.concatenate(tiles, axis=1))
    return np.stack(frames)


def render_episode(reader, k: int, out: Path) -> Path:
    """.mp4 -> a video of the panels at the dataset fps; .png -> a filmstrip of ~8 evenly spaced frames."""
    import cv2

    out = Path(out)
    rgb_keys, depth_keys = reader.rgb_keys, reader.depth_keys
    if not rgb_keys and not depth_keys:
        raise ValueError(f"{reader.root}: no camera features to visualise")
    panels = episode_panels(reader.episode(k), rgb_keys, depth_keys)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".mp4":
        encode_rgb_video(out, panels, int(round(reader.fps)), crf=18)
    elif suffix == ".png":
        picks = np.linspace(0, len(panels) - 1, min(FILMSTRIP_FRAMES, len(panels))).round().astype(int)
        rows = []
        for t in picks:
            row = panels[t].copy()
            cv2.putText(row, f"t={t}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            rows.append(row)
        strip = np.concatenate(rows, axis=0)   # frames top to bottom, cameras left to right
        if not cv2.imwrite(str(out), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
            raise ValueError(f"{out}: could not write the PNG")
    else:
        raise ValueError(f"{out}: --out must end in .mp4 or .png")
    return out
