"""`policy-stack record`: teleoperated demonstrations in sim -> MCAP per episode -> a LeRobot v3 dataset.

Starts the record graph (ros_nodes/record_graph.py: sim node executing /teleop/action, teleop node
with the chosen device, recorder node) as processes in their own ROS domain, shows a progress bar of
committed episodes, stops the graph after --episodes, then converts the recordings (policy_stack.
recording.convert_bag, with the mapping written beside them) into the dataset at --out. The
recordings stay in --recordings (default <out>.recordings), one episode_NNNNNN.mcap + .json each:
`policy-stack convert mcap <recordings> --mapping <recordings>/mapping.yaml --out OTHER` redoes the
conversion.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

DEVICES = ("scripted", "spacemouse", "gamepad", "keyboard")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="lift", help="sim task: lift | pick_place_can | stack | nut_assembly_square")
    p.add_argument("--device", default="scripted", choices=DEVICES)
    p.add_argument("--episodes", type=int, default=10, help="episodes to record (success or failure)")
    p.add_argument("--seed", type=int, default=0, help="sim episode k uses seed + k")
    p.add_argument("--out", required=True, help="dataset folder (created, or appended to)")
    p.add_argument("--recordings", default="", help="MCAP folder (default <out>.recordings)")
    p.add_argument("--cameras", default="", help="comma-separated cameras, e.g. agentview")
    p.add_argument("--image-size", type=int, default=84)
    p.add_argument("--depth", action="store_true", help="also record depth")
    p.add_argument("--rate", type=float, default=20.0, help="control rate and dataset fps, Hz")
    p.add_argument("--max-steps", type=int, default=200, help="scripted: ticks before an episode stops as failure")
    p.add_argument("--waypoints", default="", help="scripted: replay this waypoint JSON instead of the expert")
    p.add_argument("--no-convert", action="store_true", help="only record (convert later with `convert mcap`)")
    from policy_stack.cli.up import add_real_side_args
    add_real_side_args(p, "record through the hardware graph: the arm adapter executes the teleop actions and drives "
                          "the sim node standing in for the arm behind a fake controller (--arm)",
                       arm_note="; a real arm: run teleop_node and recorder_node beside your robot's bringup, see "
                                "docs/teleop.md")
    p.add_argument("--policy", default="",
                   help="human interventions: this policy (checkpoint, as `up --policy`) drives; the device's "
                        "deadman takes over; the dataset gets the executed action and an `intervention` column")
    p.add_argument("--takeover-after", type=int, default=0,
                   help="--policy with --device scripted: the scripted operator lets the policy drive for this many "
                        "ticks, then takes over with the expert unless the task has succeeded (0: the expert "
                        "holds the deadman throughout, or as its waypoint file says)")
    p.add_argument("--domain-id", type=int, default=None)
    p.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds (default: from episodes)")
    p.add_argument("--json", action="store_true", help="print one JSON summary on stdout (logs go to stderr)")


def run(args) -> int:
    arm = args.arm.removeprefix("fake-") if args.real else ""
    if args.takeover_after and not (args.policy and args.device == "scripted"):
        raise ValueError("--takeover-after needs --policy and --device scripted (a scripted operator supervising "
                         "a policy)")
    if args.takeover_after < 0:
        raise ValueError(f"--takeover-after must be >= 0, got {args.takeover_after}")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if int(args.rate) != args.rate or args.rate <= 0:
        raise ValueError(f"--rate must be a positive whole number of Hz (it is the dataset fps), got {args.rate}")
    from sim.envs import resolve_task
    task_info = resolve_task(args.env)
    cameras = [c for c in args.cameras.split(",") if c]
    for cam in cameras:
        if cam not in task_info.cameras:
            raise ValueError(f"unknown camera name {cam!r} for env {task_info.name!r}; valid: {list(task_info.cameras)}")
    if args.depth and not cameras:
        raise ValueError("--depth needs at least one camera in --cameras")
    keyboard_tty = ""
    if args.device == "keyboard":
        if not sys.stdin.isatty():
            raise ValueError("--device keyboard needs a terminal on stdin")
        keyboard_tty = os.ttyname(sys.stdin.fileno())
    if args.waypoints and not Path(args.waypoints).is_file():
        raise FileNotFoundError(f"--waypoints {args.waypoints}: no such file")

    import yaml
    from tqdm import tqdm

    from policy_stack.persist import write_json_atomic, write_text_atomic
    from policy_stack.recording.episode_files import finished_episodes
    from ros_nodes.launcher import GraphProcesses
    from ros_nodes.record_graph import describe_record, sim_mapping
    from sim.envs import make_env

    log = sys.stderr if args.json else sys.stdout
    probe = make_env(args.env, cameras=cameras, image_size=args.image_size, depth=args.depth)
    obs_spec, action_space, task_text = probe.obs_spec(), probe.action_space, probe.task
    camera_info = {cam: probe.camera_info(cam) for cam in cameras}
    probe.close()
    objects = list(task_info.objects)

    out = Path(args.out).resolve()
    recordings = Path(args.recordings or f"{out}.recordings").resolve()
    recordings.mkdir(parents=True, exist_ok=True)
    mapping_doc = sim_mapping(objects, cameras, args.depth, int(args.rate), action_space.names,
                              interventions=bool(args.policy), arm=arm)
    mapping_doc["task"] = task_text
    write_text_atomic(recordings / "mapping.yaml", yaml.safe_dump(mapping_doc, sort_keys=False))
    if args.policy:      # the same with the decided instead of the executed action (imitation; record_graph)
        from ros_nodes.record_graph import decided_action
        decided = {**mapping_doc, "features": {**mapping_doc["features"], "action": decided_action(action_space.names, int(args.rate))}}
        write_text_atomic(recordings / "mapping_decided.yaml", yaml.safe_dump(decided, sort_keys=False))
    already = len(finished_episodes(recordings))
    run_dir = recordings / "run"
    run_dir.mkdir(exist_ok=True)
    commands = run_dir / "teleop_commands.jsonl"
    graph = describe_record(env=args.env, device=args.device, episodes=args.episodes, seed=args.seed + already,
                            cameras=cameras, depth=args.depth, image_size=args.image_size, rate_hz=args.rate,
                            max_steps=args.max_steps, recordings=str(recordings), task=task_text, objects=objects,
                            waypoints_file=str(Path(args.waypoints).resolve()) if args.waypoints else "",
                            keyboard_tty=keyboard_tty, command_log=str(commands),
                            results_file=str(run_dir / "sim_episodes.jsonl"), arm=arm, policy=args.policy,
                            real_profile=args.real_profile, calibration_gain=args.calibration_gain,
                            takeover_after_steps=args.takeover_after)
    domain = args.domain_id if args.domain_id is not None else random.randint(1, 99)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    print(f"[record] domain {domain}, env {args.env}, device {args.device}, "
          f"{'fake ' + arm + ' arm through the arm adapter, ' if arm else ''}{args.episodes} episodes -> "
          f"{recordings}", file=log, flush=True)
    timeout = args.timeout or 180.0 + 3.0 * args.episodes * args.max_steps / args.rate
    t0 = time.monotonic()
    failed, interrupted = None, False
    bar = tqdm(total=args.episodes, desc=f"record {args.env}", unit="ep", file=sys.stderr)
    procs = GraphProcesses(graph, run_dir, env=env, out=log).start()
    try:
        while True:
            done = len(finished_episodes(recordings)) - already
            if done > bar.n:
                bar.update(done - bar.n)
            if done >= args.episodes:
                break
            codes = procs.poll()
            dead = {n: c for n, c in codes.items() if c is not None}
            if dead:
                if set(dead) <= {"teleop_node", "recorder_node"} and all(c == 0 for c in dead.values()):
                    time.sleep(1.0)           # quit by the operator: let the recorder finish
                    done = len(finished_episodes(recordings)) - already
                    bar.update(max(0, done - bar.n))
                    break
                failed = f"{', '.join(dead)} exited with {list(dead.values())}"
                break
            if time.monotonic() - t0 > timeout:
                failed = f"timeout after {timeout:.0f} s"
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        procs.stop()
    record_wall = time.monotonic() - t0
    new = finished_episodes(recordings)[already:]
    summary = {"env": args.env, "device": args.device, "episodes_requested": args.episodes,
               "episodes_recorded": len(new), "recordings": str(recordings), "record_wall_s": round(record_wall, 1),
               "domain_id": domain, "error": failed, "interrupted": interrupted, "arm": arm or None,
               "policy": args.policy or None}
    eps = [json.loads((recordings / f"episode_{i:06d}.json").read_text()) for i in new]
    summary["successes"] = sum(bool(e.get("success")) for e in eps)
    summary["dropped_messages"] = sum(sum(e.get("dropped", {}).values()) for e in eps)
    if new and not args.no_convert:
        from policy_stack.recording.convert_bag import convert
        from policy_stack.recording.mapping import parse_mapping
        t1 = time.monotonic()
        paths = [recordings / f"episode_{i:06d}.mcap" for i in new]
        result = convert(paths, parse_mapping(mapping_doc), out, task=task_text)
        write_json_atomic(out / "meta" / "policy_stack.json", {
            "env": args.env, "action_space": action_space.to_dict(), "camera_info": camera_info,
            "obs_spec": {k: v.to_dict() for k, v in obs_spec.items()}, "source": "policy-stack record",
            "device": args.device})
        summary.update(out=str(out), frames=result["frames"], convert_wall_s=round(time.monotonic() - t1, 1),
                       per_episode=[{k: r[k] for k in ("episode", "seed", "success", "frames", "duration_s",
                                                        "grid_gaps", "dropped")} for r in result["reports"]])
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(f"[record] {len(new)} episodes ({summary['successes']} successful) in {record_wall:.0f} s"
              + (f", dataset {out}: {summary.get('frames')} frames" if "frames" in summary else "")
              + (f"; error: {failed}" if failed else ""), file=log, flush=True)
    if interrupted:
        return 130
    return 1 if failed or len(new) < args.episodes else 0
