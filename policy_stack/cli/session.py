"""`policy-stack session`: a sim-to-real session as commands (the logic: policy_stack/session/).

    policy-stack session run --dir SESSION [--config FILE.json] [--set KEY=VALUE ...]
    policy-stack session preflight|eval_base|calibrate|eval_calibrated|demos|finetune|reeval --dir SESSION
    policy-stack session status --dir SESSION

`run` does every step of the session's config in order, skipping finished ones, so after a kill the same
command resumes (an evaluation episode by episode). A step verb runs that one step (when what it needs is
finished). `status` prints SESSION/summary.json's view without running anything. docs/sim_to_real.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from policy_stack.session.config import STEPS

VERBS = ("run", *STEPS, "status")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=VERBS, help="run (all steps), one step, or status")
    p.add_argument("--dir", required=True, help="the session folder (created; a rerun resumes it)")
    p.add_argument("--config", default="", help="JSON file of session settings (policy_stack/session/config.py)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="one session setting, VALUE as JSON (e.g. --set eval_episodes=10); repeatable")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout (progress on stderr)")


def run(args) -> int:
    from policy_stack.session import report, runner
    from policy_stack.cli.overrides import parse_overrides
    from policy_stack.session.config import SessionConfig
    from policy_stack.session.store import SessionDir

    given = None
    if args.config or args.overrides:
        fields = json.loads(Path(args.config).read_text()) if args.config else {}
        fields.update(parse_overrides(args.overrides))
        given = SessionConfig.from_dict(fields)
    log = sys.stderr if args.json else sys.stdout
    store = SessionDir(args.dir)
    if args.what == "status":
        if not (store.root / "session.json").is_file():
            raise FileNotFoundError(f"{store.root}: no session here (no session.json)")
        cfg = store.open(None)
        doc = report.summary(store, cfg)
        rc = 0
    else:
        rc = runner.run(args.dir, given, only=None if args.what == "run" else [args.what], log=log)
        doc = json.loads((store.root / "summary.json").read_text())
    if args.json:
        print(json.dumps(doc), flush=True)
    else:
        for step, v in doc["steps"].items():
            extra = (f", {v['successes']}/{v['episodes']} successful" if v.get("episodes") else "")
            wall = f", {v['wall_s'] / 60:.1f} min" if v.get("wall_s") else ""
            print(f"  {step:16s} {v['status']}{extra}{wall}" + (f"  ({v['error'][:200]})" if v.get("error") else ""),
                  file=log)
        if doc.get("improvement_pp") is not None:
            print(f"  improvement on the real side (reeval - eval_base): {doc['improvement_pp']:+.1f} pp", file=log)
        best = doc.get("best_stage")
        if best and best.get("improvement_pp") is not None:
            print(f"  best stage: {best['stage']} ({best['step']}), {100 * best['success_rate']:.1f} % "
                  f"({best['improvement_pp']:+.1f} pp over the base)", file=log)
    return rc
