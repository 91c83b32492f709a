"""LeRobot interoperability, end to end: `lerobot-train` on our datasets, `policy-stack train` on theirs.

    python -m bench.bench_lerobot_train [--dataset DIR ...] [--policies diffusion,act] [--steps 2] [--out FILE]

1. For each dataset (`--dataset`, repeatable: a `collect` or `record` folder; without one, a 2-episode
   `policy-stack collect --env lift --cameras agentview --depth` is made), runs lerobot 0.4.4's
   `lerobot-train --policy.type=<p>` for `--steps` steps on CPU, offline, in the lerobot venv.
2. Has lerobot's own writer create a dataset with a plain `observation.state` (bench/lerobot_side.py
   create) and runs `policy-stack train` on it for `--steps` steps.
Each run records its exit code, wall time and the losses it logged; the JSON goes to
runs/bench/lerobot_train.json. The lerobot venv: --lerobot-python, else $POLICY_STACK_LEROBOT_PYTHON,
else `lerobot-venv/` beside this checkout (docs/datasets.md says how to make it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import REPO, RUNS
from policy_stack.persist import write_json_atomic

SIDE = REPO / "bench" / "lerobot_side.py"
TAIL = 3000          # characters of a failed run's log kept in the JSON


def lerobot_python(explicit: str | None = None) -> Path | None:
    """The lerobot venv's python: the argument, $POLICY_STACK_LEROBOT_PYTHON, or ../lerobot-venv."""
    named = explicit or os.environ.get("POLICY_STACK_LEROBOT_PYTHON")
    path = Path(named) if named else REPO.parent / "lerobot-venv" / "bin" / "python"
    return path if path.is_file() else None


def lerobot_env(scratch: Path) -> dict:
    """Offline (an incomplete dataset fails instead of downloading), caches in the scratch folder, and
    none of our venv's PYTHONPATH leaking into lerobot's interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "LEROBOT_HOME"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(scratch / "hf_datasets"), HF_HOME=str(scratch / "hf_home"),
               WANDB_MODE="disabled")
    return env


def timed(cmd: list[str], env: dict, log: Path, timeout: float) -> dict:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    text = log.read_text(errors="replace")
    out = {"cmd": " ".join(map(str, cmd)), "rc": rc, "wall_s": round(time.perf_counter() - t0, 2)}
    if rc != 0:
        out["log_tail"] = text[-TAIL:]
    return out, text


def collect_dataset(root: Path, episodes: int) -> dict:
    cmd = [sys.executable, "-m", "policy_stack.cli", "collect", "--env", "lift", "--episodes", str(episodes),
           "--cameras", "agentview", "--depth", "--seed", "7000", "--out", str(root), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lerobot_train(py: Path, dataset: Path, policy: str, steps: int, batch: int, scratch: Path, timeout: float) -> dict:
    out_dir = scratch / f"lerobot_train_{policy}_{dataset.name}"
    cmd = [str(py.parent / "lerobot-train"), f"--policy.type={policy}", "--dataset.repo_id=local/bench",
           f"--dataset.root={dataset}", "--dataset.video_backend=pyav", "--policy.device=cpu",
           "--policy.push_to_hub=false", f"--output_dir={out_dir}", f"--steps={steps}", f"--batch_size={batch}",
           "--num_workers=0", "--save_checkpoint=false", "--wandb.enable=false", "--eval_freq=0", "--log_freq=1"]
    if policy == "act":
        cmd.append("--policy.pretrained_backbone_weights=null")    # offline: no ImageNet download
    result, text = timed(cmd, lerobot_env(scratch), scratch / f"{out_dir.name}.log", timeout)
    result.update(policy=policy, dataset=str(dataset),
                  losses=[float(x) for x in re.findall(r"step:\d+ .*?loss:([0-9.eE+-]+)", text)],
                  params=(m.group(1) if (m := re.search(r"num_learnable_params=(\d+)", text)) else None))
    return result


def policy_stack_train_on_lerobot_dataset(py: Path, steps: int, scratch: Path, timeout: float) -> dict:
    root = scratch / "lerobot_created"
    created, _ = timed([str(py), str(SIDE), "create", str(root), "--episodes", "3", "--length", "30", "--depth"],
                       lerobot_env(scratch), scratch / "lerobot_create.log", timeout)
    if created["rc"] != 0:
        return {"create": created}
    run = scratch / "ps_train"
    cmd = [sys.executable, "-m", "policy_stack.cli", "train", "--policy", "diffusion", "--data", str(root),
           "--out", str(run), "--steps", str(steps), "--batch", "8", "--warmup", "1", "--eval-every", "0",
           "--no-progress"]
    train, _ = timed(cmd, dict(os.environ), scratch / "ps_train.log", timeout)
    losses = []
    for name in ("train_log.jsonl", "log.jsonl"):
        path = run / name
        if path.is_file():
            losses = [json.loads(line).get("loss") for line in path.read_text().splitlines() if line.strip()]
            break
    info = json.loads((root / "meta/info.json").read_text())
    train.update(losses=[x for x in losses if x is not None],
                 dataset_features=sorted(info["features"]), lowdim_used=_lowdim_used(run))
    return {"create": created, "policy_stack_train": train}


def _lowdim_used(run: Path):
    config = run / "config.json"
    if not config.is_file():
        found = sorted(run.rglob("config.json"))
        config = found[-1] if found else None
    if config is None:
        return None
    cfg = json.loads(config.read_text())
    return cfg.get("lowdim_keys") or cfg.get("config", {}).get("lowdim_keys")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", action="append", default=[], help="dataset folder for lerobot-train (repeatable)")
    p.add_argument("--policies", default="diffusion", help="comma-separated lerobot policy types")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--collect-episodes", type=int, default=2, help="episodes of the collect dataset made without --dataset")
    p.add_argument("--lerobot-python", default=None)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    p.add_argument("--out", default=str(RUNS / "lerobot_train.json"), help="result JSON (default %(default)s)")
    args = p.parse_args(argv)
    py = lerobot_python(args.lerobot_python)
    if py is None:
        print("no lerobot venv: pass --lerobot-python or set POLICY_STACK_LEROBOT_PYTHON (docs/datasets.md)",
              file=sys.stderr)
        return 2
    result = {"bench": "lerobot_train", "lerobot_python": str(py), "steps": args.steps, "batch": args.batch}
    version = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('lerobot'), "
                              "m.version('torch'))"], capture_output=True, text=True, env=lerobot_env(Path("/tmp")))
    result["lerobot_torch_versions"] = version.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench_lerobot_") as tmp:
        scratch = Path(tmp)
        datasets = [Path(d).resolve() for d in args.dataset]
        if not datasets:
            t0 = time.perf_counter()
            result["collect"] = collect_dataset(scratch / "collect_lift", args.collect_episodes)
            result["collect"]["process_wall_s"] = round(time.perf_counter() - t0, 2)
            datasets = [scratch / "collect_lift"]
        result["lerobot_train"] = [lerobot_train(py, d, policy, args.steps, args.batch, scratch, args.timeout)
                                   for d in datasets for policy in args.policies.split(",")]
        result["policy_stack_on_lerobot_dataset"] = policy_stack_train_on_lerobot_dataset(py, args.steps, scratch,
                                                                                          args.timeout)
    result["ok"] = all(r["rc"] == 0 for r in result["lerobot_train"]) and \
        result["policy_stack_on_lerobot_dataset"].get("policy_stack_train", {}).get("rc") == 0
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_end": os.getloadavg()}
    result["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json_atomic(Path(args.out), result, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"})[:4000])
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
