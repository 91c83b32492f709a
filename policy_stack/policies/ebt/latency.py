"""Quick CPU latency of EBTPolicy.act() at batch 1 (a measurement script, not a test).

    python -m policy_stack.policies.ebt.latency [--steps 2 4] [--threads 1] [--ticks 50]

Builds an untrained policy of the default size on made-up Lift low-dim stats (weights do not change the
cost), disables early stopping so every tick runs exactly N descent steps, and reports the median and p90
of act() wall time, warm-started ticks only (the first tick of an episode is excluded, as RTI-DP does).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from policy_stack.policies.ebt.config import EBTConfig
from policy_stack.policies.ebt.policy import EBTPolicy
from policy_stack.spaces import ActionSpace

LIFT_KEYS = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "cube_pos": 3}


def _stats() -> dict:
    stats = {k: {"min": [-1.0] * d, "max": [1.0] * d} for k, d in LIFT_KEYS.items()}
    stats["action"] = {"min": [-1.0] * 7, "max": [1.0] * 7}
    return stats


def measure(steps: int, ticks: int, config: EBTConfig | None = None) -> dict:
    config = config or EBTConfig(device="cpu")
    config.infer_steps, config.min_grad, config.min_energy_delta = steps, 0.0, 0.0
    space = ActionSpace(names=["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"], low=[-1.0] * 7,
                        high=[1.0] * 7, discrete=[6])
    policy = EBTPolicy(config, _stats(), space)
    rng = np.random.default_rng(0)
    policy.reset(seed=0)
    times = []
    for i in range(ticks + 1):
        obs = {k: rng.uniform(-0.5, 0.5, d).astype(np.float32) for k, d in LIFT_KEYS.items()}
        t = time.perf_counter()
        policy.act(obs)
        if i:
            times.append((time.perf_counter() - t) * 1e3)
        assert policy.info["steps"] == steps
    n_params = sum(p.numel() for p in policy.parameters())
    return {"steps": steps, "median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "params": n_params}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ticks", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for s in args.steps:
        r = measure(s, args.ticks)
        print(f"EBT default ({r['params'] / 1e6:.2f} M params), {s} descent steps, {args.threads} thread(s): "
              f"act() median {r['median_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms")


if __name__ == "__main__":
    main()
