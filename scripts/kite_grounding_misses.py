"""Where a KITE checkpoint's wrong groundings land, on a grounding folder: for every row whose argmax is
outside the instructed object's mask, the labelled target of the same frame whose mask holds the argmax
(else the nearest labelled keypoint), classed as the other instance of the same category (another
object / another bin), the other category, or the instructed object's own bin / own object.

    python scripts/kite_grounding_misses.py --data DIR --policy CKPT [--out JSON]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy_stack.checkpoint import load_policy  # noqa: E402
from policy_stack.policies.kite.data import argmax_pixels, load_grounding, on_target, rows_by_frame  # noqa: E402
from policy_stack.policies.kite.train_grounding import predict  # noqa: E402


def landed_class(target: str, landed: str) -> str:
    is_bin = lambda name: name.endswith("_bin")
    if is_bin(target) and landed == target[:-len("_bin")]:
        return "own object"
    if not is_bin(target) and landed == f"{target}_bin":
        return "own bin"
    if is_bin(landed) == is_bin(target):
        return "same category, another instance"
    return "other category"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    data = load_grounding(args.data)
    targets, seeds, frames = data.meta["target"], data.meta["episode_seed"], data.meta["frame"]
    uv = np.asarray(predict(load_policy(args.policy, "cpu"), data), dtype=np.float64)
    masks, kp = data.target_mask.numpy(), data.kp_px.numpy()
    u, v = argmax_pixels(uv, *masks.shape[1:])
    rows_of_frame = rows_by_frame(data.meta, len(data))
    counts, examples = Counter(), {}
    for i in np.flatnonzero(~on_target(uv, masks)):
        others = [j for j in rows_of_frame[(seeds[i], frames[i])] if j != i]
        inside = [targets[j] for j in others if masks[j, v[i], u[i]]]
        if inside:
            landed = inside[0]
        elif others:
            landed = targets[min(others, key=lambda j: float(np.linalg.norm(uv[i] - kp[j])))]
        else:
            landed = "(no other labelled object in the frame)"
        kind = landed_class(targets[i], landed)
        counts[kind] += 1
        examples.setdefault(kind, {"instruction": data.instructions[i], "target": targets[i], "landed": landed})
    result = {"data": str(Path(args.data).resolve()), "policy": args.policy, "rows": len(data),
              "misses": sum(counts.values()), "landed": dict(counts.most_common()), "examples": examples}
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
