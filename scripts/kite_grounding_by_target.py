"""Correct-object rate of KITE checkpoints on a grounding folder, split by the instructed cube's
(size, colour): shows which attribute combinations a model confuses (docs/kite.md).

    python scripts/kite_grounding_by_target.py --data DIR --policy CKPT [--policy CKPT ...] [--out JSON]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy_stack.checkpoint import load_policy  # noqa: E402
from policy_stack.policies.kite.data import load_grounding, on_target  # noqa: E402
from policy_stack.policies.kite.train_grounding import predict  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--policy", action="append", required=True)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    data = load_grounding(args.data)
    result = {"data": str(Path(args.data).resolve()), "policies": {}}
    for ckpt in args.policy:
        uv = predict(load_policy(ckpt, "cpu"), data)
        ok = on_target(uv, data.target_mask.numpy())      # grounding_metrics' correct-object test
        groups = defaultdict(list)
        for i, good in enumerate(ok):
            groups[f"{data.meta['target_size'][i]} {data.meta['target_colour'][i]}"].append(bool(good))
        result["policies"][ckpt] = {"correct_object_rate": float(ok.mean()), "rows": len(ok),
                                    "by_target": {k: {"rows": len(g), "correct_object_rate": float(np.mean(g))}
                                                  for k, g in sorted(groups.items())}}
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
