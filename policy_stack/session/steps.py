"""The session's steps. Each takes a Context and returns its result dict (the runner commits it).

Every step that needs the robot talks to it over ROS 2 through child processes: `policy-stack up --real`
(evaluation), `policy-stack record --real` (demos), ros_nodes/session_probe.py (preflight, calibration).
Here the "real" robot is the sim node behind the fake arm interface wearing a real-side profile
(sim/real_profiles.py); on a real arm the same commands run against the robot's bringup (docs/sim_to_real.md).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from policy_stack.session import processes as P
from policy_stack.session.calibration import fit_axis_gain, gain_arg
from policy_stack.session.config import STEPS, SessionConfig
from policy_stack.session.store import SessionDir

EPISODE_FIELDS = ("seed", "success", "steps", "wall_s", "holds", "controller_rejections", "return")


class StepFailed(RuntimeError):
    """A step could not finish; the message says why (the step's log.txt has the details)."""


@dataclass
class Context:
    cfg: SessionConfig
    store: SessionDir
    log: object                      # where progress lines go (a text stream)

    def say(self, text: str) -> None:
        print(f"[session] {text}", file=self.log, flush=True)

    def domain(self, step: str) -> int:
        return self.cfg.domain_base + STEPS.index(step)

    def gain(self) -> list[float] | None:
        """The calibrated gain once the calibrate step is finished, else None."""
        r = self.store.result("calibrate")
        return r["gain"] if r else None

    def policy_after(self, step: str) -> str:
        """The policy a step uses: the fine-tuned one for reeval, the base otherwise."""
        if step == "reeval":
            r = self.store.result("finetune")
            if not r:
                raise StepFailed("reeval needs the finetune step's policy: run finetune first")
            return r["policy"]
        return self.cfg.policy


def _real_args(ctx: Context, gain) -> list[str]:
    cfg = ctx.cfg
    args = ["--real", "--arm", cfg.arm, "--real-profile", cfg.real_profile]
    if gain is not None:
        args += ["--calibration-gain", gain_arg(gain)]
    return args


# ------------------------------------------------------------------------------ evaluation
def _blocks(seeds: list[int]) -> list[list[int]]:
    """Consecutive runs of seeds (`up` runs seeds S..S+n-1)."""
    out: list[list[int]] = []
    for s in seeds:
        if out and s == out[-1][-1] + 1:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _committer(ctx: Context, step: str, results_file: Path, seeds: set[int]):
    """poll(): commit every episode the sim node finished (complete JSON lines of its results file) as its
    own file, so a kill loses at most the episode in progress."""
    state = {"offset": 0}

    def poll() -> None:
        try:
            with open(results_file) as f:
                f.seek(state["offset"])
                chunk = f.read()
        except OSError:
            return
        lines = chunk.split("\n")
        complete, rest = lines[:-1], lines[-1]     # the last piece has no newline yet: a line being written
        for line in complete:
            if not line.strip():
                continue
            ep = json.loads(line)
            if int(ep["seed"]) in seeds:
                slim = {k: ep[k] for k in EPISODE_FIELDS if k in ep}
                ctx.store.commit_episode(step, slim)
                ctx.say(f"{step}: seed {ep['seed']} {'SUCCESS' if ep['success'] else 'failure'} in {ep['steps']} steps")
        state["offset"] += len(chunk) - len(rest)
    return poll


def evaluate(ctx: Context, step: str, policy: str, gain) -> dict:
    cfg, store = ctx.cfg, ctx.store
    seeds = cfg.eval_seeds()
    done = store.episodes(step)
    remaining = [s for s in seeds if s not in done]
    if done:
        ctx.say(f"{step}: {len(done)} of {len(seeds)} episodes already committed; running the other {len(remaining)}")
    t0 = time.monotonic()
    for block in _blocks(remaining):
        attempt = store.new_attempt_dir(step)
        cmd = P.cli_cmd("up", *_real_args(ctx, gain), "--env", cfg.env, "--policy", policy,
                        "--episodes", len(block), "--seed", block[0], "--max-steps", cfg.max_steps,
                        "--rate", cfg.rate_hz, "--device", cfg.device, "--json", "--run-dir", attempt,
                        "--domain-id", ctx.domain(step))
        poll = _committer(ctx, step, attempt / "episodes.jsonl", set(block))
        rc = P.run(cmd, attempt / "summary.json", store.log_path(step), poll=poll)
        missing = [s for s in block if s not in store.episodes(step)]
        if missing:
            raise StepFailed(f"{step}: `policy-stack up` exited {rc} with seeds {missing} unfinished; see "
                             f"{store.log_path(step)}:\n{P.tail(store.log_path(step), 1500)}")
    eps = store.episodes(step)
    ordered = [eps[s] for s in seeds]
    ok = [e for e in ordered if e["success"]]
    steps_ok = sorted(e["steps"] for e in ok)
    return {"policy": policy, "calibration_gain": gain, "real_profile": cfg.real_profile, "arm": cfg.arm,
            "episodes": len(ordered), "successes": len(ok), "success_rate": round(len(ok) / len(ordered), 4),
            "seeds": [seeds[0], seeds[-1]],
            "median_steps_successes": steps_ok[len(steps_ok) // 2] if steps_ok else None,
            "failed_seeds": [e["seed"] for e in ordered if not e["success"]],
            "wall_s_this_sitting": round(time.monotonic() - t0, 1)}


# ------------------------------------------------------------------------------ ROS probe steps
def _probe(ctx: Context, step: str, mode: str, extra: list) -> dict:
    cfg, store = ctx.cfg, ctx.store
    out = store.step_dir(step) / "probe.json"
    cmd = P.python_cmd("-m", "ros_nodes.session_probe", mode, "--env", cfg.env, "--arm", cfg.arm,
                       "--real-profile", cfg.real_profile, "--rate", str(cfg.rate_hz),
                       "--domain-id", str(ctx.domain(step)), "--out", str(out), *[str(a) for a in extra])
    rc = P.run(cmd, store.step_dir(step) / "stdout.txt", store.log_path(step))
    if not out.is_file():
        raise StepFailed(f"{step}: the probe exited {rc} without a result; see {store.log_path(step)}:\n"
                         f"{P.tail(store.log_path(step), 1500)}")
    report = json.loads(out.read_text())
    if rc != 0 or not report.get("ok", False):
        raise StepFailed(f"{step} failed: {report.get('error') or 'see ' + str(out)}")
    return report


def preflight(ctx: Context) -> dict:
    cfg = ctx.cfg
    return _probe(ctx, "preflight", "preflight", ["--policy", cfg.policy, "--seconds", cfg.preflight_seconds,
                                                 "--seed", cfg.eval_seed])


def calibrate(ctx: Context) -> dict:
    cfg = ctx.cfg
    if cfg.arm != "fake-servo":
        raise StepFailed(f"calibrate: the gain is applied by the servo backend only (arm {cfg.arm})")
    report = _probe(ctx, "calibrate", "calibrate", [
        "--amplitude", cfg.calib_amplitude, "--rot-amplitude", cfg.calib_rot_amplitude,
        "--steps", cfg.calib_steps, "--repeats", cfg.calib_repeats])
    try:
        fit = fit_axis_gain(report["sim"]["displacements"], report["real"]["displacements"])
    except ValueError as exc:
        raise StepFailed(str(exc)) from exc
    ctx.say("calibrate: gain " + ", ".join(f"{a} {g:.3f}" for a, g in zip(fit["axes"], fit["gain"]))
            + " (r2 " + ", ".join("-" if r is None else f"{r:.3f}" for r in fit["r2"]) + ")")
    return {**fit, "calibration_gain_arg": gain_arg(fit["gain"]), "probe": "probe.json",
            "commands": report["sim"]["commands"]}


# ------------------------------------------------------------------------------ demos and fine-tuning
def _record(ctx: Context, step: str, out: Path, episodes: int, seed: int, real: bool, name: str,
            interventions: bool = False) -> dict:
    """policy-stack record with the scripted device into `out` (a partial earlier try is removed first).
    interventions: the base policy drives and the scripted operator takes over where it has not succeeded."""
    cfg, store = ctx.cfg, ctx.store
    for path in (out, Path(f"{out}.recordings")):
        shutil.rmtree(path, ignore_errors=True)
    extra = _real_args(ctx, ctx.gain()) if real else []
    max_steps = cfg.max_steps
    if interventions:
        extra += ["--policy", cfg.policy, "--takeover-after", cfg.demo_takeover_step]
        max_steps = cfg.demo_max_steps
    cmd = P.cli_cmd("record", *extra, "--env", cfg.env, "--device", "scripted", "--episodes", episodes,
                    "--seed", seed, "--out", out, "--max-steps", max_steps, "--rate", int(cfg.rate_hz),
                    "--domain-id", ctx.domain(step) if real else ctx.cfg.domain_base + len(STEPS), "--json")
    stdout = store.step_dir(step) / f"{name}_summary.json"
    rc = P.run(cmd, stdout, store.log_path(step))
    summary = P.json_tail(stdout)
    if rc != 0 or not summary:
        raise StepFailed(f"{step}: `policy-stack record` exited {rc}; see {store.log_path(step)}:\n"
                         f"{P.tail(store.log_path(step), 1500)}")
    return summary


def demos(ctx: Context) -> dict:
    cfg = ctx.cfg
    out = ctx.store.step_dir("demos") / "dataset"
    interventions = cfg.demo_mode == "interventions"
    s = _record(ctx, "demos", out, cfg.demo_episodes, cfg.demo_seed, real=True, name="record",
                interventions=interventions)
    frames = _intervention_frames(out) if interventions else None
    return {"dataset": str(out), "recordings": f"{out}.recordings", "mode": cfg.demo_mode,
            "episodes": s["episodes_recorded"], "intervention_frames": frames,
            "successes": s["successes"], "frames": s.get("frames"), "seeds": [cfg.demo_seed, cfg.demo_seed + cfg.demo_episodes - 1],
            "calibration_gain": ctx.gain(), "record_wall_s": s.get("record_wall_s")}


def _intervention_frames(dataset: Path) -> dict:
    """Frames (and episodes) where the operator drove, read from the dataset's `intervention` column."""
    import numpy as np

    from policy_stack.data.reader import LeRobotDatasetReader
    reader = LeRobotDatasetReader(dataset)
    flags = reader.column("intervention").astype(bool)
    episodes = np.unique(reader.column("episode_index")[flags])
    return {"frames": int(flags.sum()), "of": int(flags.size), "episodes": [int(e) for e in episodes]}


def _successful_episodes(recordings: Path) -> list[Path]:
    """The committed episodes (episode_NNNNNN.mcap beside its JSON, the commit point) that succeeded."""
    from policy_stack.recording.episode_files import finished_episodes
    return [recordings / f"episode_{i:06d}.mcap" for i in finished_episodes(recordings)
            if json.loads((recordings / f"episode_{i:06d}.json").read_text()).get("success")]


def _mixture_mapping(recorded: Path, out: Path) -> Path:
    """The real recordings' mapping without the `intervention` label: the mixture's sim demos have no such
    column, and imitation treats every frame alike (the demos step's own dataset keeps the label)."""
    import yaml
    from policy_stack.persist import write_text_atomic
    doc = yaml.safe_load(recorded.read_text())
    doc["features"].pop("intervention", None)
    write_text_atomic(out, yaml.safe_dump(doc, sort_keys=False))
    return out


def finetune(ctx: Context) -> dict:
    """Imitation fine-tuning from the base weights on the sim + real mixture (see docs/sim_to_real.md for
    why not RL here). Sub-stages are committed as marker files, so a resumed step redoes only what is left;
    `train` resumes from its own snapshots."""
    cfg, store = ctx.cfg, ctx.store
    real = store.result("demos")
    if not real:
        raise StepFailed("finetune needs the demos step's dataset: run demos first")
    folder = store.step_dir("finetune")
    mixed = folder / "mixed"
    if not store.read("finetune", "mixed_done.json"):
        # Imitation copies what it is shown: only the real episodes that succeeded (with or without the
        # operator's help) go into the mixture; the failed ones stay in the demos step's own dataset.
        kept = _successful_episodes(Path(real["recordings"]))
        if not kept:
            raise StepFailed("finetune: none of the real demos succeeded; nothing to imitate "
                             f"(see {real['recordings']})")
        ctx.say(f"finetune: {cfg.sim_demo_episodes} training-side (sim) demos, then the real ones appended")
        sim = _record(ctx, "finetune", mixed, cfg.sim_demo_episodes, cfg.sim_demo_seed, real=False, name="record_sim")
        # Intervention demos: each frame labelled with the action decided for it (record's
        # mapping_decided.yaml), not the one executed under inference latency (docs/sim_to_real.md).
        recorded = Path(real["recordings"]) / "mapping_decided.yaml"
        if not recorded.is_file():
            recorded = Path(real["recordings"]) / "mapping.yaml"
        mapping = _mixture_mapping(recorded, folder / "real_mapping.yaml")
        stdout = folder / "convert_summary.json"
        rc = P.run(P.cli_cmd("convert", "mcap", *kept, "--mapping", mapping, "--out", mixed, "--json"),
                   stdout, store.log_path("finetune"))
        if rc != 0:
            raise StepFailed(f"finetune: appending the real demos exited {rc}; see {store.log_path('finetune')}")
        store.write("finetune", "mixed_done.json", {"sim_episodes": sim["episodes_recorded"],
                                                     "sim_successes": sim["successes"],
                                                     "real_episodes": real["episodes"],
                                                     "real_episodes_used": len(kept), "dataset": str(mixed)})
    out = folder / "policy"
    cmd = P.cli_cmd("train", "--policy", "diffusion", "--init", cfg.policy, "--data", mixed, "--out", out,
                    "--steps", cfg.finetune_steps, "--batch", cfg.finetune_batch, "--lr", cfg.finetune_lr,
                    "--warmup", cfg.finetune_warmup, "--eval-every", 0, "--ckpt-every", 100, "--device", cfg.device,
                    "--no-progress", "--json")
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg.finetune_threads),
               MKL_NUM_THREADS=str(cfg.finetune_threads))
    t0 = time.monotonic()
    rc = P.run(cmd, folder / "train_summary.json", store.log_path("finetune"), env=env)
    summary = P.json_tail(folder / "train_summary.json")
    if rc != 0 or not summary:
        raise StepFailed(f"finetune: `policy-stack train` exited {rc}; see {store.log_path('finetune')}:\n"
                         f"{P.tail(store.log_path('finetune'), 1500)}")
    mix = store.read("finetune", "mixed_done.json")
    return {"method": "imitation (train --init base) on the sim + real mixture", "policy": str(out),
            "base": cfg.policy, "mixture": mix, "steps": cfg.finetune_steps, "batch": cfg.finetune_batch,
            "lr": cfg.finetune_lr, "warmup": cfg.finetune_warmup,
            "train_wall_s_this_sitting": round(time.monotonic() - t0, 1),
            "final_loss": summary.get("final_loss", summary.get("loss"))}


def run_step(ctx: Context, step: str) -> dict:
    if step == "preflight":
        return preflight(ctx)
    if step == "eval_base":
        return evaluate(ctx, step, ctx.cfg.policy, None)
    if step == "calibrate":
        return calibrate(ctx)
    if step == "eval_calibrated":
        return evaluate(ctx, step, ctx.cfg.policy, ctx.gain())
    if step == "demos":
        return demos(ctx)
    if step == "finetune":
        return finetune(ctx)
    if step == "reeval":
        return evaluate(ctx, step, ctx.policy_after("reeval"), ctx.gain())
    raise ValueError(f"unknown step {step!r}")
