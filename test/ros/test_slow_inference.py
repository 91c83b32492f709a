"""A slow or waiting inference node is latency, not a fault (the node as a process, real ROS 2).

- An act() slower than max_inference_s still publishes its chunk, stamped with its observation.
- With no new observation, the node reports "waiting" and publishes no hold: the executing side stops
  by itself (horizon, used-up chunk), so a robot waiting for a slow answer is not told to freeze.
- The first observation after /policy/reset is answered.
"""
import time

import pytest
from std_srvs.srv import Trigger

from ros_nodes.convert import stamp_to_ns as ns
from ros_testlib import inference_node_under_test, status_values

pytestmark = pytest.mark.timeout(150)
CHUNK, STATUS = "/policy/action_chunk", "/policy/status"


@pytest.fixture
def slow_node(ros_env, monkeypatch, tmp_path):
    with inference_node_under_test(ros_env, tmp_path, monkeypatch, "make_slow") as session:
        yield session


def test_slow_inference_publishes_its_chunk_and_waiting_is_not_a_hold(slow_node):
    procs, client, pub = slow_node
    sent = []
    t0 = time.time()
    got = client.wait_for(lambda: len([m for m in client.received(CHUNK, t0) if m.points]) >= 3, 60, poll=0.05,
                          tick=lambda: sent.append(pub.publish_exact()))
    assert got, "no chunks from a node whose act() takes 0.4 s (budget 0.1 s)"
    # Every act() here overruns the budget, and yet chunks go out, each with its observation's stamp.
    chunks = [m for m in client.received(CHUNK, t0) if m.points]
    assert {ns(m.header.stamp) for m in chunks} <= set(sent), "each chunk carries its observation's stamp"
    # /policy/status goes out on its own timer, so the status counting the third overrun may come after
    # the third chunk: wait for it (observations keep flowing meanwhile) instead of reading the last one.
    overruns = lambda: max([int(status_values(m).get("events.inference_overrun", 0)) for m in client.received(STATUS, t0)],
                           default=0)
    assert client.wait_for(lambda: overruns() >= 3, 30, poll=0.05, tick=lambda: sent.append(pub.publish_exact())), \
        f"status counts {overruns()} overruns after 3 chunks of 0.4 s act()s"
    status = [status_values(m) for m in client.received(STATUS, t0)]
    assert any(s["state"] == "running" for s in status)
    # (A hold for an observation that really is older than max_obs_age_s may still happen on a loaded
    # machine; an overrun itself is never the reason.)
    assert not [s for s in status if "inference_overrun" in s["reason"]], "an overrun must not be a hold"
    # The observations that arrived while act() ran (every 50 ms for 0.4 s) went to observe() before the
    # next plan, so the policy's history and warm-start shift follow the steps the robot took.
    shown = [int(s["steps"]) for s in status if s["state"] == "running"]
    assert max(shown) >= 3, f"observations shown to the policy between plans: {shown}"

    # The robot stops publishing (it waits, or its driver stalled): status says waiting, no hold goes out.
    t_quiet = time.time()
    assert client.wait_for(lambda: [s for s in map(status_values, client.received(STATUS, t_quiet))
                                    if s["state"] == "waiting" and "stale_observation" in s["reason"]], 10)
    assert not [m for m in client.received(CHUNK, t_quiet + 0.5) if not m.points], "idle must not publish holds"
    assert procs.poll()["inference_node"] is None


def test_first_observation_after_reset_is_answered(slow_node):
    procs, client, pub = slow_node
    t0 = time.time()
    assert client.wait_for(lambda: [m for m in client.received(CHUNK, t0) if m.points], 60, poll=0.05,
                           tick=pub.publish_exact)
    assert client.call(Trigger, "/policy/reset", Trigger.Request()).success
    time.sleep(0.5)                       # any chunk still in flight lands
    t1 = time.time()
    first = pub.publish_exact()           # ONE observation, right after the reset
    assert client.wait_for(lambda: [m for m in client.received(CHUNK, t1) if m.points], 10), \
        "the first observation after /policy/reset got no answer"
    assert ns([m for m in client.received(CHUNK, t1) if m.points][0].header.stamp) == first
