"""Simulated time: the sim node publishes /clock (one control period per env step), and with
use_sim_time true both nodes run on it: observations, chunks and status are stamped in simulated time."""
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from ros_nodes.convert import stamp_to_ns as ns
from ros_testlib import RosClient, node_env, standin, start_graph

pytestmark = pytest.mark.timeout(240)

NS = 1_000_000_000
PERIOD_NS = 50_000_000          # rate_hz 20


def test_sim_time_drives_both_nodes(ros_env, tmp_path):
    client = RosClient()
    for typ, topic in ((Clock, "/clock"), (JointState, "/joint_states"), (JointTrajectory, "/policy/action_chunk"),
                       (DiagnosticArray, "/policy/status")):
        client.record(typ, topic)
    procs = start_graph({"policy": standin("make_lowdim"), "cameras": "", "depth": "false", "episodes": "1",
                         "max_steps": "40", "use_sim_time": "true"}, node_env(ros_env), tmp_path)
    try:
        assert procs.wait("sim_node", timeout=200) == 0, "sim node failed"
    finally:
        codes = procs.stop()
        client.close()
    assert codes["inference_node"] == 0

    clocks = [ns(m.clock) for m in client.received("/clock")]
    assert len(clocks) >= 20, f"{len(clocks)} /clock messages"
    steps = {b - a for a, b in zip(clocks, clocks[1:])}
    assert steps <= {0, PERIOD_NS}, f"/clock must advance one period per env step, saw steps {sorted(steps)[:5]}"
    assert clocks == sorted(clocks)
    # Observations are stamped with simulated time (small numbers, multiples of the period), not wall time.
    obs = [ns(m.header.stamp) for m in client.received("/joint_states")]
    assert obs and all(s % PERIOD_NS == 0 and s <= clocks[-1] for s in obs), obs[:5]
    assert max(obs) < 100 * NS < time.time() * NS
    # The inference node honours use_sim_time: its chunks answer sim-time observations and its own clock
    # (status stamps) is the sim's /clock.
    chunks = [m for m in client.received("/policy/action_chunk") if m.points]
    assert len(chunks) >= 10
    assert {ns(m.header.stamp) for m in chunks} <= set(obs)
    status = [ns(m.header.stamp) for m in client.received("/policy/status")]
    assert status and max(status) <= clocks[-1] + PERIOD_NS, "inference node status is not on the sim clock"
