"""The inference node as a managed (lifecycle) node, started from its standard parameter file.

Each node runs as its own process, started exactly as docs/ros2.md says:
`python -m ros_nodes.inference_node --ros-args --params-file config/inference_node.yaml -p ...`, and is
driven through the standard lifecycle services (what `ros2 lifecycle set` and nav2's lifecycle manager
call) and /policy/enable.
"""
import signal
import subprocess
import sys
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from ros_testlib import REPO, ObservationPublisher, RosClient, node_env, standin

pytestmark = pytest.mark.timeout(180)

CHUNK, DIAG = "/policy/action_chunk", "/diagnostics"
PARAMS = REPO / "config" / "inference_node.yaml"


def start_node(env, *params: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ros_nodes.inference_node", "--ros-args", "--params-file", str(PARAMS)]
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def stop_node(proc: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"node did not stop on SIGINT within {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


def lifecycle_state(client, node="inference_node") -> str:
    return client.call(GetState, f"/{node}/get_state", GetState.Request(), timeout=30).current_state.label


def transition(client, tid: int, node="inference_node") -> bool:
    return client.call(ChangeState, f"/{node}/change_state",
                       ChangeState.Request(transition=Transition(id=tid)), timeout=60).success


def chunks(client, since):
    return [m for m in client.received(CHUNK, since) if m.points]


def holds(client, since):
    return [m for m in client.received(CHUNK, since) if not m.points]


def diagnostics(client, since):
    out = []
    for m in client.received(DIAG, since):
        for st in m.status:
            if st.name == "policy_stack/inference_node":
                out.append(({"level": int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level),
                             "message": st.message}, {kv.key: kv.value for kv in st.values}))
    return out


@pytest.fixture
def client():
    c = RosClient()
    c.record(JointTrajectory, CHUNK)
    c.record(DiagnosticArray, DIAG)
    yield c
    c.close()


def test_lifecycle_transitions_enable_and_clean_shutdown(ros_env, client):
    proc = start_node(node_env(ros_env), f"policy:={standin('make_lowdim')}", "autostart:=false")
    pub = ObservationPublisher(client)
    try:
        assert lifecycle_state(client) == "unconfigured"
        # /diagnostics reports in every state, at about diagnostics_period_s (1 s).
        t = time.time()
        assert client.wait_for(lambda: diagnostics(client, t), 10), "no /diagnostics from the unconfigured node"
        assert diagnostics(client, t)[-1][1]["lifecycle"] == "unconfigured"

        assert transition(client, Transition.TRANSITION_CONFIGURE)
        assert lifecycle_state(client) == "inactive"
        t = time.time()
        client.wait_for(lambda: False, 1.0, tick=pub.publish)
        assert not chunks(client, t), "an inactive node must not publish chunks"

        assert transition(client, Transition.TRANSITION_ACTIVATE)
        assert lifecycle_state(client) == "active"
        t = time.time()
        assert client.wait_for(lambda: chunks(client, t), 30, poll=0.05, tick=pub.publish), "no chunk once active"
        assert client.wait_for(lambda: [d for d in diagnostics(client, t) if d[1]["state"] == "running"], 10,
                               tick=pub.publish)

        # deactivate: one explicit hold (empty trajectory), then silence
        t = time.time()
        assert transition(client, Transition.TRANSITION_DEACTIVATE)
        assert lifecycle_state(client) == "inactive"
        assert client.wait_for(lambda: holds(client, t), 5), "deactivate must publish a hold"
        t_quiet = time.time()
        client.wait_for(lambda: False, 1.0, tick=pub.publish)
        assert not chunks(client, t_quiet + 0.2), "chunks after deactivate"

        # /policy/enable is the same transition
        assert client.call(SetBool, "/policy/enable", SetBool.Request(data=True)).success
        assert lifecycle_state(client) == "active"
        t = time.time()
        assert client.wait_for(lambda: chunks(client, t), 30, poll=0.05, tick=pub.publish)
        assert client.call(SetBool, "/policy/enable", SetBool.Request(data=False)).success
        assert lifecycle_state(client) == "inactive"

        # cleanup frees the policy; the node is back to unconfigured and can be configured again
        assert transition(client, Transition.TRANSITION_CLEANUP)
        assert lifecycle_state(client) == "unconfigured"
        assert not client.call(SetBool, "/policy/enable", SetBool.Request(data=True)).success
        assert transition(client, Transition.TRANSITION_CONFIGURE)
        assert lifecycle_state(client) == "inactive"
    finally:
        rc, out = stop_node(proc)
    assert rc == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


def test_bad_checkpoint_fails_configure_and_the_node_stays_up(ros_env, client, tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    proc = start_node(node_env(ros_env), f"policy:={missing}", "autostart:=false")
    try:
        assert lifecycle_state(client) == "unconfigured"
        assert not transition(client, Transition.TRANSITION_CONFIGURE)
        assert proc.poll() is None, "a failed configure must leave the process alive"
        assert lifecycle_state(client) == "unconfigured"
        t = time.time()
        assert client.wait_for(lambda: diagnostics(client, t), 10)
        status, values = diagnostics(client, t)[-1]
        assert status["level"] == 2 and str(missing) in status["message"], status
    finally:
        rc, out = stop_node(proc)
    assert rc == 0 and "Traceback" not in out, out[-3000:]
    assert "cannot load policy" in out


def test_bad_checkpoint_at_autostart_is_a_one_line_error(ros_env, tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    proc = start_node(node_env(ros_env), f"policy:={missing}")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if "error:" in line]
    assert len(errors) == 1 and str(missing) in errors[0], out


def test_sigint_during_inference_exits_cleanly(ros_env, client):
    """Ctrl-C while act() runs: the inference thread stops before the context goes (no traceback)."""
    proc = start_node(node_env(ros_env), f"policy:={standin('make_slow')}", "max_inference_s:=5.0")
    pub = ObservationPublisher(client)
    try:
        t = time.time()
        assert client.wait_for(lambda: chunks(client, t), 60, poll=0.05, tick=pub.publish), "never ran"
        # act() takes 0.4 s: keep the node busy, then interrupt it in the middle of one.
        for _ in range(3):
            pub.publish()
            time.sleep(0.15)
    finally:
        rc, out = stop_node(proc)
    assert rc == 0, out[-3000:]
    assert "Traceback" not in out and "context is invalid" not in out, out[-3000:]
