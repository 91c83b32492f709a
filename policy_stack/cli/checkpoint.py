"""`policy-stack checkpoint info CKPT`: load a checkpoint folder (every check the loader makes) and say
what it is: policy type, parameters, observation keys, and what its actions mean.

    policy-stack checkpoint info diffusion_lowdim_lift
    policy-stack checkpoint info /path/to/ckpt --json

A checkpoint that cannot be loaded (missing or corrupt files, invalid action bounds, absurd sizes, NaN
weights, an unknown format version) is a one-line error with exit code 2, as everywhere in the CLI.
"""
from __future__ import annotations

import json


def add_arguments(p) -> None:
    p.add_argument("what", choices=["info"], help="info: load the checkpoint and describe it")
    p.add_argument("policy", help="checkpoint folder, or the name of a shipped checkpoint")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args) -> int:
    from policy_stack.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.policy, device="cpu")
    policy = ckpt.policy
    info = {"folder": str(ckpt.folder), "policy_type": policy.policy_type,
            "parameters": int(sum(p.numel() for p in policy.parameters())),
            "obs_spec": {k: {"shape": list(f.shape), "dtype": f.dtype, "kind": f.kind} for k, f in policy.obs_spec.items()},
            "action_space": policy.action_space.semantics()}
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['folder']}: {info['policy_type']} policy, {info['parameters'] / 1e6:.2f} M parameters")
    print("observations: " + ", ".join(f"{k} {tuple(v['shape'])} {v['dtype']}" for k, v in info["obs_spec"].items()))
    print("actions: " + policy.action_space.describe())
    return 0
