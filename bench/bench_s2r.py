"""One full sim-to-real session end to end, and the files docs/results.md cites.

    python -m bench.bench_s2r                                  # runs/bench/s2r_session, default settings
    python -m bench.bench_s2r --dir runs/s2r_session --set eval_episodes=10

Runs `policy-stack session run --dir DIR` (resumable: rerun the same command after a kill; finished steps
are skipped, a half-done evaluation continues episode by episode), then copies what the session wrote into
--results (default bench/results/s2r_session/): summary.json (success per stage, wall time per step, the
settings), curve.png, session.json, every step's result.json (as <step>.json) and the calibration probe's
raw displacements (calibrate_probe.json), plus bench.json (commit, machine, load, the command).

The real side is the sim node behind the fake servo, wearing the `real_lift` profile (sim/real_profiles.py);
every step talks ROS 2 as on a robot. docs/sim_to_real.md explains the steps.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="runs/bench/s2r_session", help="the session folder")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="session setting (policy_stack/session/config.py), as `policy-stack session --set`")
    ap.add_argument("--results", default="bench/results/s2r_session", help="where the cited files go")
    ap.add_argument("--copy-only", action="store_true", help="do not run: copy a finished session's files")
    args = ap.parse_args(argv)
    session = Path(args.dir).resolve()
    cmd = [sys.executable, "-m", "policy_stack.cli", "session", "run", "--dir", str(session)]
    for kv in args.overrides:
        cmd += ["--set", kv]
    t0, load0 = time.monotonic(), os.getloadavg()[0]
    rc = 0
    if not args.copy_only:
        rc = subprocess.run(cmd, cwd=REPO).returncode
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("summary.json", "curve.png", "session.json"):
        if (session / name).is_file():
            shutil.copyfile(session / name, out / name)
    for step_dir in sorted(p for p in session.iterdir() if p.is_dir()):
        if (step_dir / "result.json").is_file():
            shutil.copyfile(step_dir / "result.json", out / f"{step_dir.name}.json")
    if (session / "calibrate" / "probe.json").is_file():
        shutil.copyfile(session / "calibrate" / "probe.json", out / "calibrate_probe.json")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    bench = {"command": " ".join(["python -m bench.bench_s2r", "--dir", args.dir,
                                  *[f"--set {kv}" for kv in args.overrides]]),
             "session_command": " ".join(cmd[2:]), "rc": rc, "commit": commit,
             "machine": {"cpus": os.cpu_count(), "gpu": False},
             "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
             "this_sitting_wall_s": round(time.monotonic() - t0, 1)}
    (out / "bench.json").write_text(json.dumps(bench, indent=2) + "\n")
    summary = json.loads((session / "summary.json").read_text()) if (session / "summary.json").is_file() else {}
    print(json.dumps({"curve": summary.get("curve"), "improvement_pp": summary.get("improvement_pp"),
                      "total_wall_s": summary.get("total_wall_s"), "results": str(out)}))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
