"""Run a session's steps in order, skipping finished ones; time each; write the summary and the curve."""
from __future__ import annotations

import sys
import time

from policy_stack.session import report
from policy_stack.session.config import STEPS, SessionConfig
from policy_stack.session.steps import Context, StepFailed, run_step
from policy_stack.session.store import SessionDir

# What a step needs finished before it (checked when a single step is asked for).
NEEDS = {"eval_calibrated": ["calibrate"], "demos": [], "finetune": ["demos"], "reeval": ["finetune"]}


def run(root, given: SessionConfig | None = None, only: list[str] | None = None, log=None) -> int:
    """Run the session in `root`: every step of its config (or `only` these), skipping finished ones.
    Returns 0 when all asked steps are finished, 1 when one failed (the summary says which)."""
    log = log or sys.stdout
    store = SessionDir(root)
    cfg = store.open(given)
    ctx = Context(cfg, store, log)
    wanted = [s for s in STEPS if s in (only or cfg.steps)]
    for step in wanted:
        for need in NEEDS.get(step, []):
            if not store.done(need) and need not in wanted:      # (wanted steps run in order)
                ctx.say(f"{step}: needs {need} first")
                report.write(store, cfg)
                return 1
    status = 0
    for step in wanted:
        if store.done(step):
            ctx.say(f"{step}: finished earlier, skipped")
            continue
        ctx.say(f"{step}: starting")
        t0 = time.monotonic()
        sittings = (store.read(step, "sittings.json") or {}).get("sittings", [])
        sittings.append({"start": round(time.time(), 3), "end": None})
        store.write(step, "sittings.json", {"sittings": sittings})
        try:
            result = run_step(ctx, step)
        except StepFailed as exc:
            wall = time.monotonic() - t0
            store.write(step, "failed.json", {"error": str(exc), "wall_s": round(wall, 1), "at": time.time()})
            ctx.say(f"{step}: FAILED after {wall:.0f} s: {exc}")
            status = 1
            break
        wall = time.monotonic() - t0
        sittings[-1]["end"] = round(time.time(), 3)
        store.write(step, "sittings.json", {"sittings": sittings})
        # Wall time over every sitting of the step: a resumed step adds what the killed sitting spent (that
        # sitting's end is taken as the last file it wrote: report.step_wall_s).
        result["wall_s"] = report.step_wall_s(store, step)
        result["sittings"] = len(sittings)
        store.write_result(step, result)
        ctx.say(f"{step}: done in {wall:.0f} s")
    path = report.write(store, cfg)
    ctx.say(f"summary {path}")
    return status

