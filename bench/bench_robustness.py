"""Does execution through ROS 2 survive slow inference, a busy computer and injected latency? (JSON)

    python -m bench.bench_robustness                          # all rows, 20 Lift episodes each
    python -m bench.bench_robustness --rows quiet,delay200 -n 5 --out runs/robustness.json

Every row is one `policy-stack up --json` run (sim node + inference node as processes, real time at
20 Hz, seeds S..S+n-1) with the shipped default checkpoint; the reference is the same seeds in-process
(`policy-stack eval --action-steps 1`, re-planning every tick like the node). Rows:

  quiet       nothing else running (as far as this benchmark controls)
  busy        a second `policy-stack up` graph (another ROS domain, episodes without end) and a
              `policy-stack train` run beside it, both started before and stopped after the row
  ddim10      the node plans with DDIM-10 (--sampler ddim --steps 10; ~80-115 ms per plan on one thread)
  ddpm100     DDPM-100 (--sampler ddpm --steps 100; about a second per plan)
  delayNNN    injected action latency of NNN ms with +-50 % jitter (sim node action_delay_s)
  *_blend3    the row with hand-over blending over 3 actions (sim node blend_steps), for the jump before/after

Per row: success rate, hold fraction (hold steps / steps), loop latency (observation stamp -> chunk
received), the action jump at chunk hand-overs (largest change of a continuous dimension between the
last executed action and the first from the new chunk), and safety violations: executed actions that
are non-finite or outside the action bounds [-1, 1] (must be 0).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROWS = {
    "quiet": [],
    "busy": [],
    "ddim10": ["--sampler", "ddim", "--steps", "10"],
    "ddpm100": ["--sampler", "ddpm", "--steps", "100"],
    "delay100": ["--action-delay", "0.1", "--delay-jitter", "0.5"],
    "delay200": ["--action-delay", "0.2", "--delay-jitter", "0.5"],
    "delay400": ["--action-delay", "0.4", "--delay-jitter", "0.5"],
    # Hand-over smoothing: the same as quiet / delay200 with a new chunk blended in over 3 actions.
    "quiet_blend3": ["--blend-steps", "3"],
    "delay200_blend3": ["--action-delay", "0.2", "--delay-jitter", "0.5", "--blend-steps", "3"],
}
ROW_DOMAIN_BASE, NEIGHBOUR_DOMAIN = 60, 90
REQUIRED = {"quiet": 0.95, "busy": 0.95, "ddim10": 0.90, "delay200": 0.80}


def _json_tail(text: str) -> dict | None:
    lines = [ln for ln in text.strip().splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def _episodes(run_dir: Path) -> list[dict]:
    path = run_dir / "episodes.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []


def _violations(episodes: list[dict]) -> int:
    n = 0
    for ep in episodes:
        a = np.asarray(ep.get("actions", []), np.float64)
        if a.size:
            n += int((~np.isfinite(a)).any(axis=1).sum() + (np.abs(np.nan_to_num(a)) > 1.0 + 1e-6).any(axis=1).sum())
    return n


class Busy:
    """The 'busy' row's neighbours: another ROS graph and a training run, for the row's duration."""

    def __init__(self, work: Path, seed: int):
        self.work, self.seed, self.procs = work, seed, []

    def __enter__(self):
        py = sys.executable
        env = dict(os.environ)
        data = self.work / "busy_data"
        if not (data / "meta" / "info.json").is_file():
            subprocess.run([py, "-m", "policy_stack.cli", "collect", "--env", "lift", "--episodes", "4", "--out",
                            str(data)], cwd=REPO, check=True, capture_output=True)
        logs = open(self.work / "busy.log", "w")
        self.procs.append(subprocess.Popen(
            [py, "-m", "policy_stack.cli", "up", "--episodes", "1000", "--seed", str(self.seed + 5000),
             "--domain-id", str(NEIGHBOUR_DOMAIN),
             "--run-dir", str(self.work / "busy_up"), "--timeout", "100000"],
            cwd=REPO, env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True))
        self.procs.append(subprocess.Popen(
            [py, "-m", "policy_stack.cli", "train", "--policy", "diffusion", "--data", str(data), "--out",
             str(self.work / "busy_ckpt"), "--steps", "1000000", "--batch", "64"],
            cwd=REPO, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True))
        time.sleep(20)          # both are past their start-up when the row begins
        self.check("at the start of the row")
        return self

    def check(self, when: str) -> None:
        dead = [p.args[3] for p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"busy row: neighbour(s) {dead} not running {when}; see {self.work / 'busy.log'}")

    def __exit__(self, *exc):
        import signal
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def run_up(extra: list[str], args, run_dir: Path, domain_id: int):
    """One `policy-stack up --json` run (args: episodes, seed, max_steps, policy): returns the command,
    the finished process, its JSON summary, the episodes it wrote, its start time and load average.
    A fixed domain per row, never a neighbour's: `up` alone picks a random one in 1-99, and two graphs
    that drew the same domain would answer each other's observations."""
    cmd = [sys.executable, "-m", "policy_stack.cli", "up", "--json", "--episodes", str(args.episodes),
           "--seed", str(args.seed), "--max-steps", str(args.max_steps), "--run-dir", str(run_dir),
           "--device", "cpu", "--domain-id", str(domain_id), *extra]
    if args.policy:
        cmd += ["--policy", args.policy]
    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    return cmd, proc, _json_tail(proc.stdout) or {}, _episodes(run_dir), t0, load0


def run_row(name: str, args, work: Path) -> dict:
    cmd, proc, s, episodes, t0, load0 = run_up(ROWS[name], args, work / name,
                                               ROW_DOMAIN_BASE + list(ROWS).index(name))
    return {"command": " ".join(cmd[2:]), "rc": proc.returncode, "error": s.get("error"),
            "successes": s.get("successes"), "episodes": s.get("episodes"), "success_rate": s.get("success_rate"),
            "hold_fraction": s.get("hold_fraction"), "loop_latency_ms": s.get("loop_latency_ms"),
            "handover_jump": s.get("handover_jump"), "safety_violations": _violations(episodes),
            "hold_steps": _sum_holds(episodes), "wall_s": round(time.monotonic() - t0, 1),
            # one chunk per executed step at most: more would mean answers to someone else's observations
            "chunks_received": sum(len(ep.get("latency_ms", [])) for ep in episodes),
            "steps": sum(ep.get("steps", 0) for ep in episodes),
            "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "stderr_tail": proc.stderr[-1500:] if proc.returncode else ""}


def _sum_holds(episodes: list[dict]) -> dict:
    out: dict = {}
    for ep in episodes:
        for k, v in ep.get("holds", {}).items():
            out[k] = out.get(k, 0) + v
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {list(ROWS)}")
    p.add_argument("--episodes", "-n", type=int, default=20)
    p.add_argument("--seed", type=int, default=100000)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--policy", default="", help="checkpoint folder (default: the shipped one)")
    p.add_argument("--no-reference", action="store_true", help="skip the in-process reference run")
    p.add_argument("--out", default="runs/robustness.json")
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; known: {list(ROWS)}")
    work = Path(tempfile.mkdtemp(prefix="robustness_"))
    report = {"bench": "robustness", "policy": args.policy or "(shipped default)", "episodes": args.episodes,
              "seeds": [args.seed, args.seed + args.episodes - 1], "max_steps": args.max_steps,
              "host": {"cpus": os.cpu_count(), "load_avg_1m_start": round(os.getloadavg()[0], 2)},
              "required_success": REQUIRED, "rows": {}}
    if not args.no_reference:
        cmd = [sys.executable, "-m", "policy_stack.cli", "eval", "--env", "lift", "--episodes", str(args.episodes),
               "--seed", str(args.seed), "--max-steps", str(args.max_steps), "--action-steps", "1", "--device", "cpu",
               "--json", "--no-progress"] + (["--policy", args.policy] if args.policy else [])
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        ref = _json_tail(proc.stdout) or {}
        report["in_process"] = {"command": " ".join(cmd[2:]), "successes": ref.get("successes"),
                                "success_rate": ref.get("success_rate"), "rc": proc.returncode}
    for name in rows:
        print(f"[robustness] {name} ...", file=sys.stderr, flush=True)
        if name == "busy":
            with Busy(work, args.seed) as busy:
                row = run_row(name, args, work)
                busy.check("at the end of the row")      # the load was there the whole time
                row["busy_neighbours"] = "a second policy-stack up graph and a policy-stack train run, alive throughout"
        else:
            row = run_row(name, args, work)
        row["meets_required"] = (row["success_rate"] or 0) >= REQUIRED[name] if name in REQUIRED else None
        report["rows"][name] = row
        print(f"[robustness] {name}: {row['successes']}/{row['episodes']} success, hold fraction "
              f"{row['hold_fraction']}, hand-over jump {row['handover_jump']}, violations {row['safety_violations']}",
              file=sys.stderr, flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1))      # after every row: a long run keeps what it measured
    print(json.dumps(report, indent=1))
    return 0 if all(r["rc"] == 0 for r in report["rows"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
