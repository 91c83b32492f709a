"""`policy-stack bench latency`: per-tick act() latency of every sampler and backend in one run.

    policy-stack bench latency --policy CKPT [--ebt-policy EBT_CKPT] [--rti-steps 3] [--json]

Rows: DDPM-100, DDIM-10 and RTI-k on torch and ONNX Runtime (+ EBT on torch when --ebt-policy is
given). Each row resets the policy once, runs --warmup ticks (the RTI row's first tick is its full
initial sample; warm ticks are what a running robot pays), then times --ticks consecutive act()
calls on a fixed observation. Ratios are speedups, baseline / row, at p50 and (RTI rows) at p99.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["latency"], help="benchmark to run")
    p.add_argument("--policy", default=None, help="diffusion checkpoint (default: the shipped Lift policy)")
    p.add_argument("--ebt-policy", default=None, help="EBT checkpoint to add an EBT row")
    p.add_argument("--rti-steps", type=int, default=3, help="denoising steps per warm RTI tick")
    p.add_argument("--ebt-steps", type=int, default=None, help="EBT optimisation steps (default: checkpoint's)")
    p.add_argument("--ticks", type=int, default=30, help="timed act() calls per row")
    p.add_argument("--warmup", type=int, default=3, help="untimed act() calls per row")
    p.add_argument("--backends", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx", "cuda_graph"])
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def fixed_observation(obs_spec: dict, seed: int = 0) -> dict:
    """A plausible constant observation per the spec (latency does not depend on the values)."""
    rng = np.random.default_rng(seed)
    obs = {}
    for key, spec in obs_spec.items():
        shape = tuple(spec.shape)
        if spec.kind == "rgb" or spec.dtype == "uint8":
            obs[key] = rng.integers(0, 255, shape, dtype=np.uint8)
        elif spec.kind == "depth":
            obs[key] = rng.uniform(0.3, 1.5, shape).astype(np.float32)
        else:
            obs[key] = rng.normal(0, 0.05, shape).astype(np.float32)
    return obs


def time_policy(policy, ticks: int, warmup: int) -> dict:
    obs = fixed_observation(policy.obs_spec)
    policy.reset()
    for _ in range(max(1, warmup)):
        policy.act(obs)
    lat, steps = [], []
    for _ in range(ticks):
        t0 = time.perf_counter()
        policy.act(obs)
        lat.append((time.perf_counter() - t0) * 1e3)
        steps.append(int((policy.info or {}).get("steps", 0) or 0))
    lat = np.asarray(lat)
    return {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "mean_ms": float(lat.mean()), "steps_per_tick": float(np.mean(steps)), "ticks": ticks}


def run_latency(policy_path, ebt_path=None, rti_steps=3, ebt_steps=None, ticks=30, warmup=3,
                backends=("torch", "onnx"), device="cpu", progress=True) -> dict:
    from policy_stack.checkpoint import DEFAULT_CHECKPOINT
    from policy_stack.cli.evaluate import load_configured_policy

    policy_path = str(policy_path or DEFAULT_CHECKPOINT)
    rows_spec = [("ddpm", 100), ("ddim", 10), ("rti", rti_steps)]
    plan = [(f"{s}-{k}", backend, s, k) for backend in backends for s, k in rows_spec]
    if ebt_path:
        plan.append((f"ebt-{ebt_steps or 'ckpt'}", "torch", "ebt", ebt_steps))
    rows = []
    from tqdm import tqdm
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as tmp:
        onnx_dir = None
        for name, backend, sampler, steps in tqdm(plan, desc="bench latency", disable=not progress, file=sys.stderr):
            path = ebt_path if sampler == "ebt" else policy_path
            policy = load_configured_policy(path, sampler, steps, "torch", device)
            if backend == "onnx":
                onnx_dir = onnx_dir or str(policy.export_onnx(tmp))   # same weights for every row: export once
                policy.set_backend("onnx", onnx_dir=onnx_dir)
            elif backend != "torch":
                policy.set_backend(backend)
            rows.append({"name": name, "backend": backend, "sampler": sampler, **time_policy(policy, ticks, warmup)})
    return {"policy": policy_path, "ebt_policy": ebt_path, "device": device, "rows": rows, "ratios": ratios(rows)}


def ratios(rows: list[dict]) -> dict:
    """Speedups (baseline / row): RTI vs DDPM-100 and DDIM-10 per backend at p50 (`*_speedup`) and at
    p99 (`*_p99_speedup`, what the per-tick deadline cares about); ONNX vs torch per sampler at p50."""
    p50 = {(r["sampler"], r["backend"]): r["p50_ms"] for r in rows}
    p99 = {(r["sampler"], r["backend"]): r["p99_ms"] for r in rows}
    out = {}
    for backend in {r["backend"] for r in rows}:
        rti = p50.get(("rti", backend))
        for base in ("ddpm", "ddim"):
            if rti and p50.get((base, backend)):
                out[f"rti_vs_{base}_{backend}_speedup"] = p50[(base, backend)] / rti
            if p99.get(("rti", backend)) and p99.get((base, backend)):
                out[f"rti_vs_{base}_{backend}_p99_speedup"] = p99[(base, backend)] / p99[("rti", backend)]
    for sampler in ("ddpm", "ddim", "rti"):
        for other in ("onnx", "cuda_graph"):
            if p50.get((sampler, "torch")) and p50.get((sampler, other)):
                out[f"{other}_vs_torch_{sampler}_speedup"] = p50[(sampler, "torch")] / p50[(sampler, other)]
                out[f"{other}_vs_torch_{sampler}_p99_speedup"] = p99[(sampler, "torch")] / p99[(sampler, other)]
    return out


def run(args) -> int:
    import torch

    if args.ticks < 1:
        raise ValueError(f"--ticks must be >= 1, got {args.ticks}")
    result = run_latency(args.policy, args.ebt_policy, args.rti_steps, args.ebt_steps, args.ticks, args.warmup,
                         args.backends, args.device, progress=not args.json)
    result["torch_threads"] = torch.get_num_threads()
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'row':<12}{'backend':<8}{'steps/tick':>11}{'p50 ms':>10}{'p99 ms':>10}")
    for r in result["rows"]:
        print(f"{r['name']:<12}{r['backend']:<8}{r['steps_per_tick']:>11.1f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}")
    for k, v in result["ratios"].items():
        print(f"{k}: {v:.2f}x")
    return 0
