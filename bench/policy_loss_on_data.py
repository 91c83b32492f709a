"""How familiar a dataset's (observation, action) windows are to a policy: its mean training loss on them.

    python -m bench.policy_loss_on_data --policy diffusion_lowdim_lift --data DS [--episodes 20:40] \
        [--windows 384] [--draws 3] [--out runs/bench/loss.json]

The same random windows (seed 0) and noise draws (seeds 0..draws-1) for every call, so two datasets or
two policies compare like with like. A diffusion policy's loss is high where its own samples would vary
(an unfamiliar state) or where the actions are not what it would do; a sim-to-real session uses it to
see how far robot-side demos are from the base policy (docs/results.md, "Sim-to-real session")."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench import emit


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--episodes", default="", help="A:B, episodes A..B-1 (default: all)")
    p.add_argument("--windows", type=int, default=384)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    import torch

    from policy_stack.checkpoint import load_policy
    from policy_stack.data.torch_dataset import WindowDataset
    from policy_stack.train.data import open_dataset

    policy = load_policy(args.policy, device="cpu")
    reader = open_dataset(args.data)
    episodes = None
    if args.episodes:
        a, b = (int(x) for x in args.episodes.split(":"))
        episodes = list(range(a, b))
    pc = policy.config
    ds = WindowDataset(reader, list(policy.obs_spec), To=pc.n_obs_steps, Tp=pc.horizon, episodes=episodes)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:args.windows].tolist()
    losses = []
    for i in range(0, len(idx), 128):
        batch = torch.utils.data.default_collate([ds[j] for j in idx[i:i + 128]])
        with torch.no_grad():
            for draw in range(args.draws):
                torch.manual_seed(draw)
                out = policy.loss(batch)
                losses.append(float(out["loss"] if isinstance(out, dict) else out))
    result = {"policy": args.policy, "data": str(Path(args.data)), "episodes": args.episodes or "all",
              "windows": len(idx), "of": len(ds), "draws": args.draws, "loss": round(float(np.mean(losses)), 5)}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
