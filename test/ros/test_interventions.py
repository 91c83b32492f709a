"""Human interventions (HIL-SERL style) across real processes: the stand-in policy drives the sim through
the inference node; a teleop node in intervention mode (publish_when_released false) replays a scripted
intervention window of 30 actions (1.5 s at 20 Hz) and then releases the deadman for good. The sim's
executed steps (/sim/status "source") switch from the policy to teleop and back to the policy, and the
teleop steps execute the operator's action."""
import json
import sys

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray

from ros_nodes.graph import Graph, NodeSpec
from ros_nodes.launcher import GraphProcesses
from ros_testlib import RosClient, node_env, standin, start_graph, status_values

pytestmark = pytest.mark.timeout(200)
TELEOP_ACTION = [0.0, 0.0, 0.3, 0.0, 0.0, 0.0, -1.0]     # up, gripper open: unlike the policy's approach


def _action(s) -> np.ndarray:
    return np.array([float(x) for x in s["action"].strip("[]").split(",")])


def test_intervention_takes_over_and_the_policy_resumes(ros_env, tmp_path):
    env = node_env(ros_env)
    procs = start_graph({"policy": standin("make_lowdim"), "episodes": "0", "max_steps": "2000",
                         "cameras": "", "depth": "false"}, env, tmp_path,
                        overrides={"sim_node": {"teleop_topic": "/teleop/action", "end_on_success": False}})
    client = RosClient("intervention_test_client")
    client.record(DiagnosticArray, "/sim/status")
    teleop = None
    try:
        sources = lambda since=0.0: [status_values(m)["source"] for m in client.received("/sim/status", since)]
        assert client.wait_for(lambda: sources().count("policy") >= 10, 90), "the policy never drove the sim"
        waypoints = tmp_path / "intervention.json"
        waypoints.write_text(json.dumps({"actions": [TELEOP_ACTION] * 30, "end_event": "failure"}))
        spec = NodeSpec(name="teleop_node", executable="teleop_node", module="ros_nodes.teleop_node",
                        parameters={"device": "scripted", "waypoints_file": str(waypoints),
                                    "publish_when_released": False, "sim_reset_service": "/nobody/reset",
                                    "rate_hz": 20.0})
        t0 = client.now()
        teleop = GraphProcesses(Graph((spec,), {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}), tmp_path / "teleop",
                                env=dict(env), out=sys.stderr).start()

        def resumed():                       # teleop steps seen, then 20 policy steps after the last of them
            seq = sources(t0)
            if "teleop" not in seq:
                return False
            last = len(seq) - 1 - seq[::-1].index("teleop")
            return seq[last + 1:].count("policy") >= 20
        assert client.wait_for(resumed, 90), sources(t0)[-60:]
        statuses = [status_values(m) for m in client.received("/sim/status", t0)]
        seq = [s["source"] for s in statuses]
        first, last = seq.index("teleop"), len(seq) - 1 - seq[::-1].index("teleop")
        assert "policy" in seq[:first] or "policy" in sources()[:10]   # the policy drove before the operator
        window = seq[first:last + 1]
        # The operator held the deadman for 30 ticks (1.5 s): most of the window's steps are teleop ones (a
        # loaded machine can delay a teleop tick past teleop_timeout_s, and the policy fills in that step).
        assert window.count("teleop") >= 10 and window.count("teleop") >= 0.7 * len(window), window
        # Teleop steps execute the operator's action (after the first steps: max_step_delta ramps the switch).
        teleop_steps = [s for s in statuses if s["source"] == "teleop"][2:]
        for s in teleop_steps:
            np.testing.assert_allclose(_action(s), TELEOP_ACTION, atol=1e-6)
        # After the release only the policy (or a hold) drives: no teleop step after the last one.
        assert all(x in ("policy", "hold") for x in seq[last + 1:])
        assert procs.poll()["sim_node"] is None
    finally:
        client.close()
        if teleop is not None:
            teleop.stop()
        codes = procs.stop()
    assert codes["sim_node"] == 0, codes
