"""A tiny synthetic grounding task for KITE tests: coloured squares on a grey table seen from above,
an instruction naming one of them by size and colour. Same tensors and labels as a real grounding
dataset (policy_stack/policies/kite/data.py), so the trainer, metrics and policy run on it unchanged."""
from __future__ import annotations

import numpy as np
import torch

from policy_stack.policies.kite.data import GroundingData
from policy_stack.skills.geometry import deproject

COLORS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (230, 210, 30)}
SIZES = {"small": 0.6, "large": 1.0}        # side, as a fraction of the large side
TEMPLATES = ("pick up the {size} {color} cube", "grab the {size} {color} block")
TABLE_M, CUBE_TOP_M = 1.0, {"small": 0.97, "large": 0.95}


def camera(size: int):
    """Camera 1 m above the table looking straight down (OpenCV axes; base z up)."""
    f = size * 0.9
    K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]], np.float64)
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])     # camera x = base x, camera y = -base y, camera z = -base z
    T[:3, 3] = [0.0, 0.0, TABLE_M]
    return K, T


def make_grounding_data(n: int, size: int = 32, objects: int = 3, seed: int = 0,
                        templates=TEMPLATES) -> GroundingData:
    rng = np.random.default_rng(seed)
    K, T = camera(size)
    combos = [(s, c) for s in SIZES for c in COLORS]
    side = max(4, size // 6)
    rgb = np.full((n, size, size, 3), 128, np.uint8)
    depth = np.full((n, size, size), TABLE_M, np.float32)
    mask = np.zeros((n, size, size), np.uint8)
    kp = np.zeros((n, 2), np.float32)
    kp_base = np.zeros((n, 3), np.float32)
    instructions = []
    for i in range(n):
        chosen = [combos[j] for j in rng.choice(len(combos), objects, replace=False)]
        placed = []
        for sz, col in chosen:
            s = max(2, int(round(side * SIZES[sz])))
            for _ in range(100):   # no overlaps
                r, c = rng.integers(0, size - s, 2)
                if all(r + s + 1 <= r2 or r2 + s2 + 1 <= r or c + s + 1 <= c2 or c2 + s2 + 1 <= c for r2, c2, s2 in placed):
                    break
            placed.append((r, c, s))
        target = int(rng.integers(objects))
        for k, ((sz, col), (r, c, s)) in enumerate(zip(chosen, placed)):
            rgb[i, r:r + s, c:c + s] = COLORS[col]
            depth[i, r:r + s, c:c + s] = CUBE_TOP_M[sz]
            if k == target:
                mask[i, r:r + s, c:c + s] = 1
                kp[i] = (c + (s - 1) / 2, r + (s - 1) / 2)
                kp_base[i] = deproject(np.array([kp[i]], np.float64), [CUBE_TOP_M[sz]], K, T)[0]
        sz, col = chosen[target]
        instructions.append(templates[int(rng.integers(len(templates)))].format(size=sz, color=col))
    return GroundingData(torch.from_numpy(rgb), torch.from_numpy(depth), torch.from_numpy(kp), torch.from_numpy(mask),
                         torch.from_numpy(np.repeat(K[None], n, 0).astype(np.float32)),
                         torch.from_numpy(np.repeat(T[None], n, 0).astype(np.float32)), torch.from_numpy(kp_base),
                         instructions, ["pick"] * n, ["train"] * n, {"env": "synthetic_squares", "seed": seed})
