"""SESSION/summary.json and SESSION/curve.png: success per stage and wall time per step."""
from __future__ import annotations

import os
from pathlib import Path

from policy_stack import persist
from policy_stack.session.config import STEPS, SessionConfig
from policy_stack.session.store import SessionDir

EVAL_STEPS = ("eval_base", "eval_calibrated", "reeval")
STAGE_LABEL = {"eval_base": "base policy", "eval_calibrated": "+ calibration", "reeval": "+ demos & fine-tuning"}


def step_wall_s(store: SessionDir, step: str) -> float | None:
    """Seconds over every sitting of a step. A sitting that was killed has no end: its end is taken as the
    newest file the step wrote (an episode commit, a log line), which undercounts by at most the work lost."""
    doc = store.read(step, "sittings.json")
    if not doc:
        return None
    folder = store.root / step
    newest = max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()), default=0.0)
    total = 0.0
    for i, s in enumerate(doc["sittings"]):
        end = s["end"]
        if end is None:
            nxt = doc["sittings"][i + 1]["start"] if i + 1 < len(doc["sittings"]) else newest
            end = min(newest, nxt) if newest >= s["start"] else s["start"]
        total += max(0.0, end - s["start"])
    return round(total, 1)


def summary(store: SessionDir, cfg: SessionConfig) -> dict:
    steps = {}
    for step in STEPS:
        r = store.result(step)
        failed = store.read(step, "failed.json")
        episodes = store.episodes(step) if step in EVAL_STEPS else {}
        steps[step] = {"status": "done" if r else "failed" if failed else "partial" if episodes else "not run",
                       "wall_s": step_wall_s(store, step), "error": (failed or {}).get("error") if not r else None}
        if step in EVAL_STEPS:
            ok = sum(bool(e["success"]) for e in episodes.values())
            steps[step].update(episodes=len(episodes), successes=ok,
                               success_rate=round(ok / len(episodes), 4) if episodes else None)
        if step == "calibrate" and r:
            steps[step].update(gain=r["gain"], r2=r["r2"])
        if step in ("demos",) and r:
            steps[step].update(episodes=r["episodes"], successes=r["successes"])
        if step == "finetune" and r:
            steps[step].update(policy=r["policy"], steps=r["steps"], final_loss=r.get("final_loss"))
    curve = [{"stage": STAGE_LABEL[s], "step": s, "success_rate": steps[s]["success_rate"],
              "episodes": steps[s]["episodes"]} for s in EVAL_STEPS if steps[s].get("episodes")]
    base, final = steps["eval_base"].get("success_rate"), steps["reeval"].get("success_rate")
    done = {s for s in EVAL_STEPS if steps[s]["status"] == "done"}
    # The stage to deploy: the best finished one. Chosen on the evaluation seeds themselves, so its rate is
    # optimistic when stages are close; it guards against shipping a fine-tune that made things worse.
    best = max(sorted(done, key=EVAL_STEPS.index), key=lambda s: steps[s]["success_rate"], default=None)
    return {"session": str(store.root), "config": cfg.to_dict(), "steps": steps, "curve": curve,
            "improvement_pp": round(100 * (final - base), 1) if {"eval_base", "reeval"} <= done else None,
            "best_stage": None if best is None else {
                "step": best, "stage": STAGE_LABEL[best], "success_rate": steps[best]["success_rate"],
                "improvement_pp": round(100 * (steps[best]["success_rate"] - base), 1) if "eval_base" in done else None,
                # what to run on the robot: the stage's policy with the gain it was measured with
                "deploy": {"policy": (steps["finetune"].get("policy") if best == "reeval" else cfg.policy),
                           "calibration_gain": (steps["calibrate"].get("gain")
                                                if best in ("eval_calibrated", "reeval") else None)}},
            "total_wall_s": round(sum(v["wall_s"] or 0.0 for v in steps.values()), 1),
            "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_write": round(os.getloadavg()[0], 2)}}


def write(store: SessionDir, cfg: SessionConfig) -> Path:
    doc = summary(store, cfg)
    path = store.root / "summary.json"
    persist.write_json_atomic(path, doc)
    if any(v["wall_s"] for v in doc["steps"].values()):
        persist.write_file_atomic(store.root / "curve.png", lambda tmp: plot(doc, tmp))
    return path


def plot(doc: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    curve = doc["curve"]
    if curve:
        xs = range(len(curve))
        ys = [100 * c["success_rate"] for c in curve]
        ax1.plot(xs, ys, "o-")
        for x, c, y in zip(xs, curve, ys):
            ax1.annotate(f"{y:.0f}% (n={c['episodes']})", (x, y), textcoords="offset points", xytext=(0, 8),
                         ha="center", fontsize=8)
        ax1.set_xticks(list(xs), [c["stage"] for c in curve], fontsize=8)
    ax1.set(ylim=(-5, 110), ylabel="success on the real side (%)", title="sim-to-real session: success per stage")
    steps = [s for s, v in doc["steps"].items() if v["wall_s"]]
    ax2.barh(steps, [doc["steps"][s]["wall_s"] / 60 for s in steps])
    ax2.invert_yaxis()
    ax2.set(xlabel="wall time (min)", title=f"wall time per step (total {doc['total_wall_s'] / 60:.1f} min)")
    fig.tight_layout()
    with open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
