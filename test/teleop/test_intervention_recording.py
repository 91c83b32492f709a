"""Recording human interventions, without ROS processes: an MCAP episode as the recorder writes it (CDR
bytes of the sim's observation, its executed action and the teleop node's /teleop/state) converted with
the intervention mapping of `policy-stack record` (ros_nodes.record_graph.sim_mapping(interventions=True)).
The dataset's `intervention` column equals the deadman flag that was sent for each frame, its `action`
the action the sim executed (the teleop one inside the window, the policy's outside), and the flag is a
plain bool column (not an observation the policy would read)."""
import json

import numpy as np
import pytest

from policy_stack.data.reader import LeRobotDatasetReader
from policy_stack.recording.convert_bag import convert
from policy_stack.recording.episode_files import EpisodeMcapWriter, typestore
from policy_stack.recording.mapping import parse_mapping
from ros_nodes.record_graph import STATE_TOPIC, sim_mapping, sim_topics

NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
T0, MS = 1_700_000_000_000_000_000, 1_000_000
N = 40                                     # frames at 20 Hz; the operator holds the deadman for 12..27
WINDOW = range(12, 28)


def _serializers():
    ts = typestore()
    M = ts.types.__getitem__
    Time, Header, Duration = M("builtin_interfaces/msg/Time"), M("std_msgs/msg/Header"), M("builtin_interfaces/msg/Duration")
    hdr = lambda ns: Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="panda_link0")
    ser = ts.serialize_cdr

    def joints(ns, k):
        names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
        return ser(M("sensor_msgs/msg/JointState")(header=hdr(ns), name=names, position=np.full(9, 0.01 * k),
                                                   velocity=np.zeros(0), effort=np.zeros(0)), "sensor_msgs/msg/JointState")

    def pose(ns, k):
        P = M("geometry_msgs/msg/Pose")(position=M("geometry_msgs/msg/Point")(x=0.1 * k, y=0.0, z=1.0),
                                        orientation=M("geometry_msgs/msg/Quaternion")(x=0.0, y=0.0, z=0.0, w=1.0))
        return ser(M("geometry_msgs/msg/PoseStamped")(header=hdr(ns), pose=P), "geometry_msgs/msg/PoseStamped")

    def action(ns, a):
        pt = M("trajectory_msgs/msg/JointTrajectoryPoint")(
            positions=np.asarray(a, np.float64), velocities=np.zeros(0), accelerations=np.zeros(0),
            effort=np.zeros(0), time_from_start=Duration(sec=0, nanosec=0))
        return ser(M("trajectory_msgs/msg/JointTrajectory")(header=hdr(ns), joint_names=NAMES, points=[pt]),
                   "trajectory_msgs/msg/JointTrajectory")

    def joy(ns, a, engaged):
        return ser(M("sensor_msgs/msg/Joy")(header=hdr(ns), axes=np.asarray(a, np.float32),
                                            buttons=np.array([int(engaged)], np.int32)), "sensor_msgs/msg/Joy")

    def flag(v):
        return ser(M("std_msgs/msg/Bool")(data=v), "std_msgs/msg/Bool")
    return joints, pose, action, joy, flag


def test_intervention_flag_and_executed_actions_are_recorded(tmp_path):
    mapping_doc = sim_mapping([], [], False, 20, NAMES, interventions=True)
    assert mapping_doc["features"]["intervention"]["topic"] == STATE_TOPIC
    topics = sim_topics([], [], False)
    executed_topic = mapping_doc["features"]["action"]["topic"]
    assert executed_topic in topics and executed_topic != "/teleop/action"
    joints, pose, action, joy, flag = _serializers()
    rec = tmp_path / "rec"
    w = EpisodeMcapWriter(rec, topics)
    w.open()
    sent_flags, sent_actions = [], []
    for k in range(N):
        t = T0 + k * 50 * MS
        engaged = k in WINDOW
        teleop_a = [0.0, 0.0, 0.3, 0.0, 0.0, 0.0, -1.0]
        policy_a = [0.02 * k, -0.1, 0.0, 0.0, 0.0, 0.0, 1.0]
        # the teleop node ticks 20 ms after the observation; the sim executes at the observation's stamp
        w.add("/joint_states", joints(t, k), t)
        w.add("/ee_pose", pose(t, k), t)
        w.add(STATE_TOPIC, joy(t + 20 * MS, teleop_a, engaged), t + 20 * MS)
        executed = teleop_a if k - 1 in WINDOW else policy_a     # the flag of tick k-1 rules step k
        w.add(executed_topic, action(t, executed), t + 5 * MS)
        w.add("/episode/success", flag(False), t + 6 * MS)
        sent_flags.append(k - 1 in WINDOW)
        sent_actions.append(np.float32(executed))
    w.commit({"task": "lift", "success": False, "seed": 3})
    result = convert([rec], parse_mapping(mapping_doc), tmp_path / "ds")
    assert result["reports"][0]["frames"] == N
    ds = LeRobotDatasetReader(tmp_path / "ds")
    ep = ds.episode(0)
    np.testing.assert_array_equal(ep["intervention"].astype(bool), sent_flags)
    np.testing.assert_array_equal(ep["action"], np.stack(sent_actions))
    assert sum(sent_flags) == len(WINDOW)
    info = json.loads((tmp_path / "ds" / "meta" / "info.json").read_text())
    assert info["features"]["intervention"]["dtype"] == "bool"
    state_names = info["features"]["observation.state"]["names"]
    assert not any("intervention" in n for n in state_names)      # a label, never a policy input


def test_scripted_deadman_window(tmp_path):
    """A waypoint file's "engaged" list scripts the deadman: released ticks report engaged false and
    zero motion (the gripper command kept), as a real device does; a malformed list is refused."""
    import pytest

    from hardware.arms.adapter import eef_action_space
    from hardware.teleop import make_device
    from hardware.teleop.scripted import WaypointSource

    f = tmp_path / "w.json"
    acts = [[0.5, 0, 0, 0, 0, 0, 1.0]] * 6
    f.write_text(json.dumps({"actions": acts, "engaged": [False, True, True, False, False, True]}))
    dev = make_device("scripted", eef_action_space(), source=WaypointSource(f))
    cmds = [dev.poll(0.05 * k, {}) for k in range(6)]
    assert [c.engaged for c in cmds] == [False, True, True, False, False, True]
    for c in cmds:
        np.testing.assert_allclose(c.action, acts[0] if c.engaged else [0, 0, 0, 0, 0, 0, 1.0])
    f.write_text(json.dumps({"actions": acts, "engaged": [True] * 5}))
    with pytest.raises(ValueError, match="engaged"):
        WaypointSource(f)


@pytest.mark.parametrize("operator_window", [WINDOW, range(0)])
def test_decided_action_takes_the_planned_point_and_the_operator_first(tmp_path, operator_window):
    """decided_action(): a frame gets the point of the newest chunk planned for its time (chunks arrive
    late and some observations get none), and the operator's teleop action where one is fresh. An
    episode where the operator never took over (no teleop message at all) converts too."""
    from ros_nodes.record_graph import ACTION_TOPIC, decided_action

    src = decided_action(NAMES, 20)
    chunk_topic = src["topic"]
    mapping_doc = {"fps": 20, "anchor": "/joint_states", "max_age_s": 0.1,
                   "features": {"robot0_eef_pos": {"topic": "/ee_pose", "field": "pose.position"}, "action": src}}
    topics = {"/joint_states": "sensor_msgs/msg/JointState", "/ee_pose": "geometry_msgs/msg/PoseStamped",
              chunk_topic: "trajectory_msgs/msg/JointTrajectory", ACTION_TOPIC: "trajectory_msgs/msg/JointTrajectory"}
    joints, pose, _action, _joy, _flag = _serializers()
    ts = typestore()
    M = ts.types.__getitem__
    Time, Header, Duration = M("builtin_interfaces/msg/Time"), M("std_msgs/msg/Header"), M("builtin_interfaces/msg/Duration")

    def traj(ns, rows):       # point i planned for ns + i * 50 ms
        pts = [M("trajectory_msgs/msg/JointTrajectoryPoint")(
            positions=np.asarray(r, np.float64), velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
            time_from_start=Duration(sec=0, nanosec=i * 50 * MS)) for i, r in enumerate(rows)]
        return ts.serialize_cdr(M("trajectory_msgs/msg/JointTrajectory")(
            header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="panda_link0"),
            joint_names=NAMES, points=pts), "trajectory_msgs/msg/JointTrajectory")

    plan = lambda k, i: [k, i, 0, 0, 0, 0, -1.0]      # chunk answering frame k, point i
    operator = [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0]
    rec = tmp_path / "rec"
    w = EpisodeMcapWriter(rec, topics)
    w.open()
    expected = []
    for k in range(N):
        t = T0 + k * 50 * MS
        w.add("/joint_states", joints(t, k), t)
        w.add("/ee_pose", pose(t, k), t)
        if k % 3 != 2:        # every third observation gets no chunk (inference busy); each arrives 120 ms late
            w.add(chunk_topic, traj(t, [plan(k, i) for i in range(8)]), t + 120 * MS)
        if k in operator_window:       # the operator's action for this frame, read 20 ms before it
            w.add(ACTION_TOPIC, _action(t - 20 * MS, operator), t - 20 * MS)
        newest = k if k % 3 != 2 else k - 1
        expected.append(operator if k in operator_window else plan(newest, k - newest))
    w.commit({"task": "lift", "success": False, "seed": 3})
    convert([rec], parse_mapping(mapping_doc), tmp_path / "ds")
    got = LeRobotDatasetReader(tmp_path / "ds").episode(0)["action"]
    bad = [k for k in range(N) if not np.array_equal(got[k], np.float32(expected[k]))]
    assert not bad, [(k, got[k].tolist(), expected[k]) for k in bad]
