"""`policy-stack up`: start the ROS 2 node graph (sim node + inference node) as separate processes.

The graph is the one `launch/manipulation.launch.py` starts (both read ros_nodes.graph), run here by a
small supervisor because ROS 2's launch is not installable from PyPI. It runs in its own ROS domain
(random unless --domain-id), with a large shared-memory Fast DDS profile when images flow (ros_nodes/transport.py), streams every
node's log with a `[node]` prefix, prints each episode's success and loop latency (observation stamp
-> action chunk received by the sim node) and a summary (one JSON object on stdout with --json; the
logs then go to stderr). Ctrl-C or the last episode stops the nodes: SIGINT, then SIGKILL.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="lift", help="sim task (default lift)")
    p.add_argument("--policy", default="", help="checkpoint folder (default: the shipped checkpoint)")
    p.add_argument("--episodes", type=int, default=5, help="episodes to run, then stop (default 5)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "cuda_graph"])
    p.add_argument("--sampler", default="", help="denoising sampler, e.g. ddpm, ddim, rti (default: the checkpoint's)")
    p.add_argument("--steps", type=int, default=0, help="denoising steps per plan (default: the checkpoint's)")
    p.add_argument("--policy-seed", type=int, default=-1,
                   help="reseed the policy's sampling noise at every episode start (default -1: no)")
    p.add_argument("--timing", default="real_time", choices=["real_time", "lockstep"],
                   help="sim timing: real_time (by the clock, like a robot) or lockstep (wait for each answer)")
    p.add_argument("--obs-delay", type=float, default=0.0, help="sim: injected observation latency, s")
    p.add_argument("--action-delay", type=float, default=0.0, help="sim: injected action latency, s")
    p.add_argument("--delay-jitter", type=float, default=0.0, help="sim: delays scaled by U[1-j, 1+j] (0.5 = +-50%%)")
    p.add_argument("--blend-steps", type=int, default=0, help="sim: blend a new chunk in over this many actions")
    p.add_argument("--cameras", default="auto", help="comma-separated cameras, or auto (what the policy needs)")
    p.add_argument("--depth", default="auto", choices=["auto", "true", "false"])
    p.add_argument("--image-size", type=int, default=84)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=200, help="steps per episode (default 200)")
    p.add_argument("--rate", type=float, default=20.0, help="control rate, Hz (default 20)")
    p.add_argument("--sim-time", action="store_true",
                   help="every node follows the sim node's /clock (use_sim_time) instead of the wall clock")
    p.add_argument("--video", default="", help="write an MP4 of the agentview camera here")
    p.add_argument("--plot", default="", help="write a loop-latency plot (PNG) here")
    p.add_argument("--run-dir", default="", help="folder for parameters and results (default runs/up-<time>)")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: a random one in 1-99)")
    p.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds (default: from episodes)")
    p.add_argument("--json", action="store_true", help="print one JSON summary on stdout (logs go to stderr)")
    add_real_side_args(p, "run the real-robot graph (sim:=false: arm_adapter + realsense_node) with the sim node "
                          "standing in for the arm behind --arm's controller interface")
    p.add_argument("--camera-recording", default="",
                   help="--real: realsense_node plays this recording (.db3/.bag) instead of the sim's cameras")


def add_real_side_args(p, real_help: str, arm_note: str = "") -> None:
    """--real, --arm, --real-profile, --calibration-gain: the hardware graph with the sim standing in for the
    arm (`up` and `record` take the same flags)."""
    p.add_argument("--real", action="store_true", help=real_help)
    p.add_argument("--arm", default="fake-servo", choices=["fake-servo", "fake-jtc", "fake-pose"],
                   help="--real: the fake arm controller the arm adapter drives (default fake-servo)" + arm_note)
    p.add_argument("--real-profile", default="",
                   help="the sim stands in for a real arm that differs from training: a sim/real_profiles.py "
                        "name (real_lift, ...), JSON object or file (sim-to-real sessions)")
    p.add_argument("--calibration-gain", default="",
                   help="--real: the arm adapter's per-axis calibration gain, 6 comma-separated numbers "
                        "(policy-stack session calibrate writes it)")


def graph_args(args) -> dict:
    """`up` flags -> ros_nodes.graph launch arguments (the same names the launch file declares)."""
    return {"sim": "true", "env": args.env, "policy": args.policy, "device": args.device,
            "backend": args.backend, "cameras": args.cameras, "depth": args.depth,
            "image_size": str(args.image_size), "episodes": str(args.episodes), "seed": str(args.seed),
            "max_steps": str(args.max_steps), "rate_hz": str(args.rate),
            "use_sim_time": str(bool(getattr(args, "sim_time", False))).lower(),
            "sampler": args.sampler, "steps": str(args.steps), "timing": args.timing,
            "policy_seed": str(args.policy_seed),
            "obs_delay_s": str(args.obs_delay), "action_delay_s": str(args.action_delay),
            "delay_jitter": str(args.delay_jitter), "blend_steps": str(args.blend_steps),
            "video_path": str(Path(args.video).resolve()) if args.video else "",
            "real_profile": getattr(args, "real_profile", ""),
            **(real_graph_args(args) if getattr(args, "real", False) else {})}


def real_graph_args(args) -> dict:
    """--real: the sim:=false graph, its arm replaced by the sim node behind the fake controller."""
    recording = getattr(args, "camera_recording", "")
    return {"sim": "false", "fake_arm": "true", "arm": args.arm.removeprefix("fake-"),
            "calibration_gain": getattr(args, "calibration_gain", ""),
            "camera_recording": str(Path(recording).resolve()) if recording else ""}


def run(args) -> int:
    from ros_nodes.graph import describe
    from ros_nodes.launcher import GraphProcesses

    if args.episodes < 1:
        raise ValueError(f"--episodes {args.episodes}: need at least 1")
    log = sys.stderr if args.json else sys.stdout
    run_dir = Path(args.run_dir or Path("runs") / time.strftime("up-%Y%m%d-%H%M%S")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run_dir / "episodes.jsonl"
    results.unlink(missing_ok=True)
    gargs = graph_args(args)
    gargs["results_file"] = str(results)
    graph = describe(gargs)
    domain = args.domain_id if args.domain_id is not None else random.randint(1, 99)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    sim = graph.node("sim_node").parameters
    print(f"[up] domain {domain}, {'real-robot graph, fake ' + args.arm[5:] + ' arm, ' if args.real else ''}"
          f"env {args.env}, policy {args.policy or '(shipped default)'}, cameras "
          f"{sim['cameras'] or 'none'}{' + depth' if sim['depth'] else ''}, {args.episodes} episodes, "
          f"logs and results in {run_dir}", file=log, flush=True)
    # Start-up (imports, checkpoint, DDS discovery) plus twice the episodes' real time.
    timeout = args.timeout or 120.0 + 2.0 * args.episodes * args.max_steps / args.rate
    episodes, interrupted, failed = [], False, None
    t0 = time.monotonic()
    procs = GraphProcesses(graph, run_dir, env=env, out=log).start()
    try:
        while True:
            _read_new_episodes(results, episodes, log, args.episodes)
            codes = procs.poll()
            if codes["sim_node"] is not None:
                _read_new_episodes(results, episodes, log, args.episodes)
                if codes["sim_node"] != 0:
                    failed = f"sim_node exited with {codes['sim_node']}"
                break
            dead = {n: c for n, c in codes.items() if c is not None}
            if dead:
                failed = f"{', '.join(dead)} exited with {list(dead.values())}"
                break
            if time.monotonic() - t0 > timeout:
                failed = f"timeout after {timeout:.0f} s"
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        procs.stop()
    # The results file is the record: an episode the sim committed while we were interrupted still counts.
    _read_new_episodes(results, episodes, log, args.episodes)
    summary = summarize(episodes, args, domain, run_dir)
    summary.update(wall_s=round(time.monotonic() - t0, 1), interrupted=interrupted, error=failed)
    if args.plot and episodes:
        plot_latency(episodes, args.plot)
        summary["plot"] = str(Path(args.plot).resolve())
    if failed:
        print(f"[up] error: {failed}", file=sys.stderr, flush=True)
    _print_summary(summary, args.json, log)
    if interrupted:
        return 130
    return 1 if failed or len(episodes) < args.episodes else 0


def _read_new_episodes(path: Path, episodes: list[dict], log, total: int) -> None:
    """Append the episodes committed to `path` since the last call. Each episode is appended before it is
    logged, so a Ctrl-C landing between the two can never report an episode the summary then lacks."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    for line in lines[len(episodes):]:
        try:
            ep = json.loads(line)
        except json.JSONDecodeError:
            break    # a line being written: read it next time
        episodes.append(ep)
        lat = np.asarray(ep["latency_ms"]) if ep["latency_ms"] else np.array([np.nan])
        print(f"[up] episode {ep['episode'] + 1}/{total}: {'SUCCESS' if ep['success'] else 'failure'} in "
              f"{ep['steps']} steps, loop latency p50 {np.percentile(lat, 50):.1f} ms p99 "
              f"{np.percentile(lat, 99):.1f} ms, holds {sum(ep['holds'].values())}", file=log, flush=True)


def summarize(episodes: list[dict], args, domain: int, run_dir: Path) -> dict:
    lat = np.concatenate([ep["latency_ms"] for ep in episodes]) if episodes else np.array([])
    pct = lambda q: round(float(np.percentile(lat, q)), 3) if lat.size else None
    jumps = np.concatenate([ep.get("handover_jumps", []) for ep in episodes]) if episodes else np.array([])
    jpct = lambda q: round(float(np.percentile(jumps, q)), 5) if jumps.size else None
    steps = sum(ep["steps"] for ep in episodes)
    return {
        "env": args.env, "policy": args.policy or "(shipped default)", "device": args.device,
        "episodes": len(episodes), "episodes_requested": args.episodes,
        "successes": sum(ep["success"] for ep in episodes),
        "success_rate": round(sum(ep["success"] for ep in episodes) / len(episodes), 3) if episodes else 0.0,
        "loop_latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100), "n": int(lat.size)},
        "hold_fraction": round(sum(sum(ep["holds"].values()) for ep in episodes) / steps, 4) if steps else None,
        # Largest change of a continuous action dimension when a new chunk took over (normalized units).
        "handover_jump": {"p50": jpct(50), "p99": jpct(99), "max": jpct(100), "n": int(jumps.size)},
        "per_episode": [{k: ep[k] for k in ("episode", "seed", "success", "steps", "holds")} |
                        {"latency_p50_ms": round(float(np.percentile(ep["latency_ms"], 50)), 3) if ep["latency_ms"] else None}
                        for ep in episodes],
        "domain_id": domain, "run_dir": str(run_dir),
        "video": str(Path(args.video).resolve()) if args.video else None,
    }


def _print_summary(s: dict, as_json: bool, log) -> None:
    if as_json:
        print(json.dumps(s), flush=True)
        return
    lat = s["loop_latency_ms"]
    print(f"[up] summary: {s['successes']}/{s['episodes']} successful ({100 * s['success_rate']:.0f}%), loop "
          f"latency p50 {lat['p50']} ms p99 {lat['p99']} ms over {lat['n']} chunks"
          + (f", video {s['video']}" if s.get("video") else "") + (f", plot {s['plot']}" if s.get("plot") else ""),
          file=log, flush=True)


def plot_latency(episodes: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for ep in episodes:
        ax1.plot(ep["latency_ms"], lw=0.8, label=f"ep {ep['episode']} ({'ok' if ep['success'] else 'fail'})")
    ax1.set(xlabel="chunk", ylabel="ms", title="loop latency: observation stamp -> chunk received")
    ax1.legend(fontsize=7)
    lat = np.concatenate([ep["latency_ms"] for ep in episodes])
    if lat.size:
        ax2.hist(lat, bins=40)
        for q, ls in ((50, "-"), (99, "--")):
            ax2.axvline(np.percentile(lat, q), color="k", ls=ls, label=f"p{q} {np.percentile(lat, q):.1f} ms")
        ax2.legend()
    ax2.set(xlabel="ms", ylabel="chunks", title="distribution")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
