"""Latency benchmark wrapper: `python -m bench.bench_latency [--policy CKPT] [--ebt-policy CKPT] --out FILE`.

Runs `policy-stack bench latency` in-process and writes its JSON (rows: DDPM-100, DDIM-10, RTI-k on
torch and ONNX, optional EBT; speedup ratios) to --out, default runs/bench/latency.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from bench import RUNS
from policy_stack.persist import write_json_atomic


def main(argv=None) -> int:
    from policy_stack.cli import bench

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench.add_arguments(p)
    p.add_argument("--out", default=str(RUNS / "latency.json"))
    args = p.parse_args(["latency", *(sys.argv[1:] if argv is None else argv)])
    result = bench.run_latency(args.policy, args.ebt_policy, args.rti_steps, args.ebt_steps, args.ticks,
                               args.warmup, args.backends, args.device)
    result.update(host=platform.node(), python=platform.python_version(), time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json_atomic(Path(args.out), result, indent=1)
    for r in result["rows"]:
        print(f"{r['name']:<12}{r['backend']:<8}p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
