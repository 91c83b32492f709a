"""Hostile input to the inference node (as a process, real ROS 2): each case found by the adversarial
campaign, replayed. The node must refuse the input with a clear reason, never build a chunk from it,
recover when good input resumes, and keep its status small and truthful."""
import subprocess
import sys
import time

import numpy as np
import pytest

from ros_testlib import REPO, inference_node_under_test, node_env, standin, status_values

pytestmark = pytest.mark.timeout(240)
CHUNK, STATUS = "/policy/action_chunk", "/policy/status"


@pytest.fixture
def node(ros_env, monkeypatch, tmp_path):
    with inference_node_under_test(ros_env, tmp_path, monkeypatch, "make_rgbd") as session:
        yield session


def chunks(client, since):
    return [m for m in client.received(CHUNK, since) if m.points]


def statuses(client, since):
    return [status_values(m) for m in client.received(STATUS, since)]


def running(client, pub, timeout=30.0):
    t = time.time()
    assert client.wait_for(lambda: chunks(client, t), timeout, poll=0.05, tick=pub.publish), statuses(client, 0)[-2:]


def publish_with(pub, **stamps_s):
    """One observation whose streams carry their own stamps (seconds from now, per stream)."""
    from ros_nodes import convert as C
    now = time.time()
    st = {k: C.sec_to_stamp(now + stamps_s.get(k, 0.0)) for k in ("joint", "ee", "cube", "image")}
    q = [1.0, 0.0, 0.0, 0.0]
    names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
    pos = np.zeros(9)
    pos[7:] = [0.02, 0.02]
    pub.joint.publish(C.joint_state_msg(names, pos, st["joint"]))
    pub.ee.publish(C.pose_msg([0.56, 0.0, 0.09], q, st["ee"], "panda_link0"))
    pub.cube.publish(C.pose_msg([0.61, 0.0, -0.09], q, st["cube"], "panda_link0"))
    s = pub.size
    pub.info.publish(C.camera_info_msg({"K": [[50, 0, 41.5], [0, 50, 41.5], [0, 0, 1]], "width": s, "height": s},
                                       st["image"], "cam"))
    pub.depth.publish(C.depth_to_image(np.ones((s, s), np.float32), st["image"], "cam"))
    pub.rgb.publish(C.rgb_to_image(np.zeros((s, s, 3), np.uint8), st["image"], "cam"))


def test_duplicate_joints_future_stamps_and_huge_strings(node):
    procs, client, pub = node
    running(client, pub)

    # Duplicate joint names with different values: refused, named, no chunk built from it.
    from ros_nodes import convert as C
    t = time.time()
    names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2", "panda_joint3"]

    def dup():
        pub.publish()
        stamp = pub.last_msg_stamp
        pub.joint.publish(C.joint_state_msg(names, np.r_[np.zeros(7), 0.02, 0.02, 1.5], stamp))
    assert client.wait_for(lambda: [s for s in statuses(client, t) if "joint names repeated" in s["reason"]], 10,
                           tick=dup), statuses(client, t)[-2:]
    running(client, pub)

    # Low-dim streams stamped an hour ahead: refused on arrival; the node answers good input again within
    # about one watchdog window (not after an hour).
    t = time.time()
    assert client.wait_for(lambda: [s for s in statuses(client, t) if "in the future" in s["reason"]], 10,
                           tick=lambda: publish_with(pub, joint=3600.0, ee=3600.0, cube=3600.0))
    t_good = time.time()
    running(client, pub, timeout=5.0)
    assert time.time() - t_good < 5.0
    # The same for the RGB anchor stamped 5 s ahead.
    t = time.time()
    assert client.wait_for(lambda: [s for s in statuses(client, t) if "in the future" in s["reason"]], 10,
                           tick=lambda: publish_with(pub, image=5.0))
    running(client, pub, timeout=5.0)

    # A 1 MB encoding string: refused, and nothing copied from it makes the status large.
    t = time.time()
    img_pub_encoding = "x" * 1_000_000

    def send():
        pub.publish()
        img = C.rgb_to_image(np.zeros((pub.size, pub.size, 3), np.uint8), pub.last_msg_stamp, "cam")
        img.encoding = img_pub_encoding
        pub.rgb.publish(img)
    assert client.wait_for(lambda: [s for s in statuses(client, t) if "encoding" in s["reason"]], 10, tick=send)
    sizes = [sum(len(kv.key) + len(kv.value) for st in m.status for kv in st.values) + len(m.status[0].message)
             for m in client.received(STATUS, t)]
    assert max(sizes) < 20_000, f"a status message carried {max(sizes)} characters"
    assert procs.poll()["inference_node"] is None


def test_status_is_never_running_while_no_chunk_goes_out(node):
    procs, client, pub = node
    running(client, pub)
    # The RGB anchor stops; the low-dim streams go on. No complete observation, so no chunk: the status
    # must leave "running" within about a watchdog window.
    from ros_nodes import convert as C
    q = [1.0, 0.0, 0.0, 0.0]

    def lowdim_only():
        stamp = C.sec_to_stamp(time.time())
        names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
        pub.joint.publish(C.joint_state_msg(names, np.r_[np.zeros(7), 0.02, 0.02], stamp))
        pub.ee.publish(C.pose_msg([0.56, 0.0, 0.09], q, stamp, "panda_link0"))
        pub.cube.publish(C.pose_msg([0.61, 0.0, -0.09], q, stamp, "panda_link0"))
    t = time.time()
    client.wait_for(lambda: False, 1.5, poll=0.05, tick=lowdim_only)
    late = [s for s in statuses(client, t + 0.6)]
    assert late and not [s for s in late if s["state"] == "running"], [(s["state"], s["reason"]) for s in late][-3:]
    assert not chunks(client, t + 0.3)


BAD_PARAMS = [
    ("rate_hz:=0.0", "rate_hz"),
    ("max_message_bytes:=-1", "max_message_bytes"),
    ("sync_tolerance_s:=.nan", "sync_tolerance_s"),
    ("rate_hz:=fast", "rate_hz"),
    ("joint_states_topic:=/bad topic!", "topic"),
]


@pytest.mark.parametrize("param,named", BAD_PARAMS)
def test_bad_start_up_parameters_are_one_line_and_exit_2(ros_env, param, named):
    cmd = [sys.executable, "-m", "ros_nodes.inference_node", "--ros-args", "--params-file",
           str(REPO / "config" / "inference_node.yaml"), "-p", f"policy:={standin('make_lowdim')}", "-p", param]
    proc = subprocess.run(cmd, env=node_env(ros_env), cwd=REPO, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "Traceback" not in out, out[-2000:]
    errors = [line for line in out.splitlines() if "error:" in line.lower()]
    assert len(errors) == 1 and named in errors[0], out[-2000:]


def test_deeply_nested_checkpoint_config_is_one_line_and_exit_2(ros_env, tmp_path):
    ckpt = tmp_path / "nested"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    (ckpt / "model.safetensors").write_bytes(b"")
    cmd = [sys.executable, "-m", "ros_nodes.inference_node", "--ros-args", "--params-file",
           str(REPO / "config" / "inference_node.yaml"), "-p", f"policy:={ckpt}"]
    proc = subprocess.run(cmd, env=node_env(ros_env), cwd=REPO, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out[-2000:]
    assert len([line for line in out.splitlines() if "error:" in line.lower()]) == 1, out[-2000:]
