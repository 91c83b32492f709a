"""The REAL inference node runs an RGB-D Diffusion checkpoint fed from image topics (`policy-stack up`).

A tiny RGB-D DiffusionPolicy (agentview + robot0_eye_in_hand, RGB + depth, low-dim robot state, RTI
sampler, random weights, synthetic Lift-range stats) is saved with save_checkpoint and passed to `up` as
a plain checkpoint folder (no pyfile: hook): the graph resolves cameras/depth from its obs_spec, the sim
renders and publishes them, the node subscribes image/depth/camera_info, time-aligns them and publishes
chunks. Success is not expected from random weights; the test checks the plumbing:
- while `up` runs, the ROS graph shows inference_node subscribed to every color, aligned-depth and
  camera_info topic of both cameras (plus joint states and ee pose), and its /policy/status shows chunks;
- the episode's loop latency has n > 0 (the sim received chunks answering its observations);
- Ctrl-C then stops `up` with no error and no node process left behind.
The test waits for events (the subscriptions seen, the first episode reported), never for a time.
"""
import json
import signal
import subprocess
import sys
import threading

import pytest

from ros_testlib import REPO, RosClient, image_transport_env, leftover_processes, node_env, status_values

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from bench.bench_ros import RGBD_CAMERAS, build_tiny_rgbd_checkpoint  # noqa: E402

pytestmark = pytest.mark.timeout(150)

EXPECTED_SUBS = {"/joint_states", "/ee_pose"} | {
    f"/{cam}/{suffix}" for cam in RGBD_CAMERAS
    for suffix in ("color/image_raw", "aligned_depth_to_color/image_raw", "color/camera_info")}


def _inference_subscriptions(client) -> set:
    try:
        return {t for t, _ in client.node.get_subscriber_names_and_types_by_node("inference_node", "/")}
    except Exception:        # not discovered yet (NodeNameNonExistentError)
        return set()


def test_up_rgbd_checkpoint_from_image_topics(ros_env, tmp_path, monkeypatch):
    from diagnostic_msgs.msg import DiagnosticArray

    ckpt = build_tiny_rgbd_checkpoint(tmp_path / "rgbd_ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["config"]["cameras"] == list(RGBD_CAMERAS) and cfg["config"]["use_depth"]

    # `up` gives its processes an image transport when images flow; this process's participant uses the
    # same (docs/ros2.md, ros_nodes/transport.py).
    for k, v in image_transport_env().items():
        monkeypatch.setenv(k, v)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "policy_stack.cli", "up", "--json", "--run-dir", str(run_dir),
           "--domain-id", ros_env["ROS_DOMAIN_ID"], "--policy", str(ckpt), "--device", "cpu",
           "--episodes", "100", "--max-steps", "30"]
    env = node_env(ros_env, large_data=True)
    env.pop("POLICY_STACK_ALLOW_PYFILE_POLICY", None)     # a checkpoint folder needs no hook
    client = RosClient("rgbd_test_client")
    client.record(DiagnosticArray, "/policy/status")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log: list[str] = []
    first_episode = threading.Event()

    def read_log():
        for line in proc.stderr:
            log.append(line)
            if line.startswith("[up] episode 1/"):
                first_episode.set()
    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    subs: set = set()
    try:
        # Events, not a time: every expected subscription seen in the ROS graph, and one episode done
        # (the run goes on until then: 100 episodes requested).
        def seen_all():
            subs.update(_inference_subscriptions(client))
            return EXPECTED_SUBS <= subs or proc.poll() is not None
        client.wait_for(seen_all, 120, poll=0.2)
        while proc.poll() is None and not first_episode.wait(timeout=0.5):
            pass
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        proc.wait(timeout=60)
        reader.join(timeout=10)
        err = "".join(log)
        statuses = [status_values(m) for m in client.received("/policy/status")]
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()

    assert out.strip(), f"no JSON on stdout; rc {proc.returncode}; log tail:\n{err[-3000:]}"
    s = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == 130 and s["error"] is None and s["interrupted"], err[-3000:]
    assert s["episodes"] >= 1 and s["policy"] == str(ckpt)

    # The node subscribed every image, depth and camera_info topic of both cameras.
    assert EXPECTED_SUBS <= subs, f"inference_node subscriptions {sorted(subs)} lack {sorted(EXPECTED_SUBS - subs)}"
    # The sim rendered and published both cameras with depth; the node planned the RGB-D keys.
    assert "publishing cameras ['agentview', 'robot0_eye_in_hand']" in err, err[-3000:]
    ready = [line for line in err.splitlines() if "[inference_node]" in line and "configured: keys" in line]
    assert ready, err[-3000:]
    for cam in RGBD_CAMERAS:
        assert f"'{cam}_rgb'" in ready[0] and f"'{cam}_depth'" in ready[0], ready[0]
    assert "(anchor agentview_rgb)" in ready[0], ready[0]

    # Chunks answered the sim's observations (loop latency measured on received chunks).
    lat = s["loop_latency_ms"]
    assert lat["n"] > 0 and lat["p50"] > 0, s
    running = [st for st in statuses if st["state"] == "running"]
    assert running and int(running[-1]["chunks"]) > 0, statuses[-3:]
    assert running[-1]["sampler"] == "rti", running[-1]

    # Clean exit: no node process left.
    assert not leftover_processes(run_dir), "node processes left running"
