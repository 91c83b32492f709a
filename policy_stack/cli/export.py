"""`policy-stack export onnx --policy CKPT --out DIR`: ONNX graphs for ONNX Runtime / TensorRT.

Runs the policy's export hook (`Policy.export_onnx`; diffusion: policy_stack/onnx_export.py), then its
parity check against torch (`Policy.check_export`; diffusion: encoder output, one denoiser call, a full
DDIM-10 chunk) and fails above --tol, so a broken export never ships silently. A policy type without an
ONNX runtime path (EBT) is refused by name.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=["onnx"], help="export format")
    p.add_argument("--policy", default=None, help="checkpoint folder (default: the shipped Lift policy)")
    p.add_argument("--out", required=True, help="output folder for the .onnx files")
    p.add_argument("--tol", type=float, default=1e-4, help="max |onnx - torch| accepted (default 1e-4)")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from policy_stack.checkpoint import load_policy
    from policy_stack.onnx_export import OnnxParityError

    policy = load_policy(args.policy, "cpu")
    out = policy.export_onnx(args.out)       # refuses, naming the type, for a policy with no ONNX export
    report = {"out": str(out), "files": sorted(p.name for p in out.iterdir()), "tol": args.tol}
    try:
        report["max_abs_diff"] = policy.check_export(out, args.tol)
        report["ok"] = True
    except OnnxParityError as exc:
        report.update(ok=False, error=str(exc))
    if args.json:
        print(json.dumps(report))
    elif report["ok"]:
        print(f"exported {args.policy or 'default policy'} to {out}: parity max |diff| {report['max_abs_diff']:.2e} "
              f"(tol {args.tol:g})")
    if not report["ok"]:
        print(f"policy-stack export: parity check failed: {report['error']}", file=sys.stderr)
        return 1
    return 0
