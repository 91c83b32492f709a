"""The inference node as a separate process, driven by a test client over real ROS 2 (isolated domain).

Uses the test stand-in policy (RGB-D + low-dim keys, so every input kind is subscribed); the node's
code path is the same for the shipped checkpoint (see test_up.py for that one).
"""
import time

import numpy as np
import pytest
from std_srvs.srv import SetBool, Trigger

from ros_testlib import inference_node_under_test, node_env, standin, status_values

pytestmark = pytest.mark.timeout(150)

CHUNK, STATUS = "/policy/action_chunk", "/policy/status"
MAX_BYTES = 2_000_000     # the "huge message" case sends a 3 MB frame


@pytest.fixture
def node(ros_env, monkeypatch, tmp_path):
    with inference_node_under_test(ros_env, tmp_path, monkeypatch, "make_rgbd",
                                   {"max_message_bytes": MAX_BYTES}) as session:
        yield session


def _chunks(client, since):
    return [m for m in client.received(CHUNK, since) if m.points]


def _holds(client, since):
    return [m for m in client.received(CHUNK, since) if not m.points]


def _status(client, since):
    return [status_values(m) for m in client.received(STATUS, since)]


def _running(client, pub, timeout=40.0):
    t = time.time()
    ok = client.wait_for(lambda: _chunks(client, t), timeout, poll=0.05, tick=pub.publish)
    assert ok, f"no action chunk within {timeout} s; status: {_status(client, 0)[-1:]}"


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _answers_any(chunks, stamps) -> list:
    """The chunks whose stamp is one of `stamps` (a chunk carries the stamp of the observation it answers)."""
    return [m for m in chunks if min((abs(_stamp(m) - s) for s in stamps), default=1.0) < 1e-6]


def test_inference_node_contract_faults_and_services(node):
    """One node process: the chunk contract, every malformed input (hold, no crash, recovery), then the
    enable and reset services. No sleeps: each check waits for an event (a chunk, a hold, a status)."""
    procs, client, pub = node
    _running(client, pub)

    # --- contract: names, stamps, timing, status contents
    t = time.time()
    sent = set()
    client.wait_for(lambda: len(_chunks(client, t)) >= 5, 10, poll=0.05, tick=lambda: sent.add(pub.publish()))
    chunk = _chunks(client, t)[-1]
    assert list(chunk.joint_names) == ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
    assert len(chunk.points) == 8 and all(len(p.positions) == 7 for p in chunk.points)
    dts = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in chunk.points]
    np.testing.assert_allclose(dts, np.arange(8) * 0.05, atol=1e-6)
    assert _answers_any([chunk], sent), "chunk stamp must be the stamp of an observation sent"
    st = _status(client, t)[-1]
    assert st["state"] == "running" and st["sampler"] == "standin"
    for key in ("latency_ms", "uncertainty", "obs_age_ms", "chunks", "holds"):
        assert key in st

    # --- malformed inputs: each one -> hold + status naming it; node survives; good input recovers
    cases = {
        "wrong_encoding": "/agentview/color/image_raw: encoding 'bgr8'",
        "wrong_size": "/agentview/color/image_raw: image size 64x64, expected 84x84",
        "nan_joint": "/joint_states: non-finite positions for ['panda_finger_joint1']",
        "huge": "/agentview/color/image_raw: message too large",
        "stale": "stale_observation",
    }
    for fault, text in cases.items():
        t = time.time()

        def tick(f=fault):
            pub.publish(age_s=2.0) if f == "stale" else pub.publish(fault=f)
        seen = client.wait_for(lambda: [s for s in _status(client, t) if s["state"] == "hold" and text in s["reason"]],
                               15, poll=0.05, tick=tick)
        assert seen, f"{fault}: no hold status mentioning {text!r}; got {[s['reason'] for s in _status(client, t)][-3:]}"
        assert _holds(client, t), f"{fault}: no explicit hold (empty trajectory) published"
        t_hold = time.time()
        # The fault goes on for a while, paced like a robot's control rate.
        client.wait_for(lambda: False, 0.4, poll=0.05, tick=tick)
        t_recover = time.time()
        assert procs.poll()["inference_node"] is None, f"inference node died on {fault}"
        assert seen[-1]["level"] >= 1
        _running(client, pub, timeout=10)
        # While only faulty input arrived, nothing was commanded (0.1 s for chunks already in flight). A
        # chunk may carry a faulty publish's stamp only if built from its valid parts before the refusal:
        # the parts of one observation arrive as separate messages.
        during = [m for m in client.received(CHUNK, t_hold + 0.1) if m.points and _stamp(m) < t_recover - 0.05]
        assert not during, f"{fault}: {len(during)} chunks published during the fault"

    counts = _status(client, 0)[-1]
    assert int(counts["events.bad_input"]) >= 4 and int(counts["events.stale_observation"]) >= 1

    # --- enable service: disabling publishes a hold, and nothing goes out until it is enabled again
    t = time.time()
    resp = client.call(SetBool, "/policy/enable", SetBool.Request(data=False))
    assert resp.success and "enabled=False" in resp.message
    assert client.wait_for(lambda: _holds(client, t), 10, tick=pub.publish), "disabling must publish a hold"
    t_disabled = time.time()                 # chunks published before the hold arrived before it
    assert client.wait_for(lambda: [s for s in _status(client, t_disabled) if s["state"] == "disabled"], 10,
                           poll=0.05, tick=pub.publish), "status never reported disabled"
    t_enable = time.time()
    resp = client.call(SetBool, "/policy/enable", SetBool.Request(data=True))
    assert resp.success
    _running(client, pub, timeout=10)
    # Enabling restarts the history: every chunk after the hold answers an observation sent after it.
    assert all(_stamp(m) >= t_enable for m in _chunks(client, t_disabled)), "chunks published while disabled"

    # --- reset service
    resp = client.call(Trigger, "/policy/reset", Trigger.Request())
    assert resp.success and "reset" in resp.message
    _running(client, pub, timeout=10)
    assert procs.poll()["inference_node"] is None


def _stamp_exact(msg):
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def test_stamps_are_copied_verbatim_and_poses_must_be_in_the_base_frame(node):
    """docs/ros2.md: a chunk (and a hold answering an observation) carries that observation's
    builtin_interfaces/Time bit for bit; chunks of an eef_delta policy carry header.frame_id = base frame;
    a pose in another frame is refused (hold, reason naming the frame)."""
    from builtin_interfaces.msg import Time
    procs, client, pub = node
    _running(client, pub)

    # Awkward nanoseconds (…456789) that a float-seconds round trip changes: near 1.7e9 s a double
    # resolves ~0.24 us.
    sent = set()

    def tick():
        sec, nanosec = divmod(time.time_ns(), 1_000_000_000)
        stamp = Time(sec=sec, nanosec=nanosec - nanosec % 1_000_000 + 456_789)
        pub.publish(stamp=stamp)
        sent.add((stamp.sec, stamp.nanosec))

    client.wait_for(lambda: False, 0.3, poll=0.05, tick=tick)   # chunks answering earlier observations land
    t = time.time()
    client.wait_for(lambda: len(_chunks(client, t)) >= 10, 15, poll=0.05, tick=tick)
    chunks = _chunks(client, t)
    assert len(chunks) >= 10
    unmatched = [_stamp_exact(c) for c in chunks if _stamp_exact(c) not in sent]
    assert not unmatched, f"chunk stamps not equal (sec, nanosec) to any observation sent: {unmatched[:3]}"
    assert {c.header.frame_id for c in chunks} == {"panda_link0"}

    # A hold answering an observation (stamped in the future: the watchdog refuses it) carries that
    # observation's stamp.
    old = Time(sec=int(time.time()) + 2, nanosec=987654321)
    t = time.time()
    holds = client.wait_for(lambda: _holds(client, t), 10, poll=0.05, tick=lambda: pub.publish(stamp=old))
    assert holds and _stamp_exact(holds[0]) == (old.sec, old.nanosec), [_stamp_exact(h) for h in holds]
    assert holds[0].header.frame_id == "panda_link0"
    _running(client, pub, timeout=10)

    # Poses in another frame: refused with a reason naming it, no chunk while they last.
    t = time.time()
    text = "/ee_pose: frame_id 'world', expected the robot base frame 'panda_link0'"
    seen = client.wait_for(lambda: [s for s in _status(client, t) if s["state"] == "hold" and text in s["reason"]],
                           15, poll=0.05, tick=lambda: pub.publish(frame="world"))
    assert seen, [s["reason"] for s in _status(client, t)][-3:]
    t_fault = time.time()
    client.wait_for(lambda: False, 0.5, tick=lambda: pub.publish(frame="world"))
    assert not _chunks(client, t_fault + 0.15), "chunks published from poses in the wrong frame"
    _running(client, pub, timeout=10)
    assert procs.poll()["inference_node"] is None


def test_refuses_a_policy_whose_actions_it_cannot_describe(ros_env, tmp_path):
    import io
    out = io.StringIO()
    from ros_nodes.graph import describe
    from ros_nodes.launcher import GraphProcesses
    procs = GraphProcesses(describe({"policy": standin("make_undescribable")}), tmp_path, env=node_env(ros_env),
                           out=out).start(only={"inference_node"})
    code = procs.wait("inference_node", timeout=90)
    procs.stop()
    log = out.getvalue()
    assert code == 2, log[-2000:]
    errors = [line for line in log.splitlines() if "error:" in line]
    assert len(errors) == 1 and "action space cannot be described" in errors[0] and "squeeze" in errors[0], log[-2000:]
    assert "Traceback" not in log
