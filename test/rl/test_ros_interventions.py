"""`policy-stack finetune --env ros` learns from what was EXECUTED, human interventions included.

The sim node (separate process) executes the session's chunks; the teleop node (scripted device, a
waypoint file, intervention mode) holds the deadman for 12 of every 30 ticks and sends one fixed
action meanwhile, so every 24-tick episode of the session meets both the policy and the operator. The
sim's arbitration lets the operator's action win while it is fresh. Afterwards the saved replay must
hold, tick for tick, the actions the sim reports it executed (its results file), flagged
`intervention` exactly where the sim's source was the operator, and the demo (offline) store must hold
exactly the flagged rows. Before this, the replay held the policy's chunk even during an intervention
and had no flag."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))   # ros_testlib (test/ros has no package)

from ros_testlib import node_env, standin  # noqa: E402

from .tiny_sim_policy import tiny_lift_policy  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.sim, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
TELEOP_ACTION = [0.0, 0.0, 0.3, 0.0, 0.0, 0.0, -1.0]
PERIOD, ON = 30, range(8, 20)          # deadman held on ticks 8..19 of every 30 (0.6 s of every 1.5 s)
EPISODE_STEPS, EPISODES = 24, 3        # any 24 consecutive ticks hold >= 6 held and >= 12 released ones
AGENT = ["--agent-set", "batch_size=8", "--agent-set", "num_qs=2", "--agent-set", "critic_hidden=[32,32]",
         "--agent-set", "edit_hidden=[32]", "--agent-set", "n_base=2", "--agent-set", "n_edit=2"]


def _graph(tmp_path, waypoints):
    from ros_nodes.graph import Graph, NodeSpec, _typed, describe
    g = describe({"policy": standin("make_lowdim"), "episodes": "0", "max_steps": "1000", "cameras": "",
                  "depth": "false"})
    sim = g.node("sim_node")
    sim = replace(sim, parameters={**sim.parameters, "wait_for_policy_s": 0.0, "teleop_topic": "/teleop/action",
                                   "teleop_state_topic": "/teleop/state", "next_seed_on_reset": True,
                                   "results_file": str(tmp_path / "sim_episodes.jsonl")})
    teleop = NodeSpec(name="teleop_node", executable="teleop_node", module="ros_nodes.teleop_node",
                      parameters=_typed("teleop_node", {
                          "device": "scripted", "waypoints_file": str(waypoints), "episodes": "0",
                          "max_steps": "1000000", "publish_when_released": "false", "sim_reset_service": "",
                          "sim_status_topic": ""}))
    return Graph((sim, teleop), g.environment)


def _executed_sequences(replay, gamma: float, exec_start: int):
    """Per episode: the executed actions (n, A) and intervention flags (n,) of its online rows, in order."""
    a = replay.online.arrays
    out = {}
    for i in range(replay.online.size):
        k = int(round(np.log(a["discount"][i]) / np.log(gamma)))
        acts, flags = out.setdefault(int(a["episode"][i]), ([], []))
        acts.extend(a["action"][i, exec_start:exec_start + k])
        flags.extend([bool(a["intervention"][i])] * k)
    return {e: (np.array(x), np.array(f)) for e, (x, f) in out.items()}


def test_finetune_ros_stores_executed_teleop_actions_flagged(ros_env, tmp_path):
    from policy_stack.checkpoint import save_checkpoint
    from policy_stack.persist import latest_snapshot_dir
    from policy_stack.rl.replay import Replay
    from ros_nodes.launcher import GraphProcesses

    save_checkpoint(tiny_lift_policy(), tmp_path / "ckpt")
    n = 4000
    waypoints = tmp_path / "w.json"
    waypoints.write_text(json.dumps({"actions": [TELEOP_ACTION] * n, "end_event": "failure",
                                     "engaged": [(k % PERIOD) in ON for k in range(n)]}))
    env = node_env(ros_env)
    procs = GraphProcesses(_graph(tmp_path, waypoints), tmp_path, env=env, out=sys.stderr).start()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "policy_stack.cli", "finetune", "--algo", "expo", "--env", "ros",
             "--policy", str(tmp_path / "ckpt"), "--steps", str(EPISODES * EPISODE_STEPS),
             "--max-episode-steps", str(EPISODE_STEPS), "--checkpoint-every", str(EPISODES * EPISODE_STEPS),
             "--out", str(tmp_path / "run"), "--json", "--no-progress", "--no-tensorboard",
             "--ros-set", "service_timeout_s=60", *AGENT],
            env=dict(env, OMP_NUM_THREADS="1"), cwd=REPO, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stderr[-3000:]
        assert all(code is None for code in procs.poll().values()), procs.poll()
    finally:
        procs.stop()
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    replay = Replay.load(latest_snapshot_dir(tmp_path / "run" / "checkpoints") / "replay")
    on = replay.online.arrays
    flagged = on["intervention"][: replay.online.size] > 0
    assert flagged.any() and (~flagged).any(), on["intervention"][: replay.online.size]

    # Tick for tick what the sim executed (its per-episode record: action + source), found as one
    # contiguous run inside a sim episode; the session's last episode is still open in the sim then.
    sim_eps = [json.loads(line) for line in (tmp_path / "sim_episodes.jsonl").read_text().splitlines()]
    seqs = _executed_sequences(replay, gamma=0.99, exec_start=1)      # tiny policy: To = 2
    matched = teleop_steps = 0
    for acts, flags in seqs.values():
        for rec in sim_eps:
            sim_acts, sources = np.array(rec["actions"]), np.array(rec["sources"])
            hits = [o for o in range(len(sim_acts) - len(acts) + 1)
                    if np.allclose(sim_acts[o:o + len(acts)], acts, atol=2e-7)]
            if hits:
                o = hits[0]
                np.testing.assert_array_equal(sources[o:o + len(acts)] == "teleop", flags)
                matched += 1
                teleop_steps += int(flags.sum())
                break
    assert matched >= EPISODES - 1, (matched, [len(s[0]) for s in seqs.values()], [len(r["actions"]) for r in sim_eps])
    assert teleop_steps >= 6, teleop_steps
    # The operator's command, not the policy's chunk, where flagged (after the rate limiter's first step).
    for acts, flags in seqs.values():
        human = acts[flags]
        assert np.mean(np.all(np.abs(human - TELEOP_ACTION) < 1e-6, axis=1)) >= 0.8, human
        assert not np.any(np.all(np.abs(acts[~flags] - TELEOP_ACTION) < 1e-6, axis=1))

    # HIL-SERL: the flagged rows, and only they, were copied into the demo (offline) store.
    off = replay.offline.arrays
    assert replay.offline.size == int(flagged.sum())
    assert np.all(off["intervention"][: replay.offline.size] == 1)
    np.testing.assert_array_equal(off["action"][: replay.offline.size], on["action"][: replay.online.size][flagged])
    assert summary["intervention_steps"] == sum(int(f.sum()) for _, f in seqs.values())
