"""Recording files and conversion, without ROS processes: MCAP episodes written from CDR bytes (rosbags
serializes them exactly like a raw rclpy subscription hands them over), then converted.

What is checked: every frame takes the latest message at or before it (never a future one) within
max_age_s; frame counts follow duration x fps; a killed episode leaves only a temp file, which the next
start removes, and committed episodes survive; mapping files are validated with clear errors."""
import json
from pathlib import Path

import numpy as np
import pytest

from policy_stack.data.reader import LeRobotDatasetReader as DatasetReader
from policy_stack.recording import align
from policy_stack.recording.convert_bag import convert, episode_frames, list_episodes
from policy_stack.recording.episode_files import (EpisodeMcapWriter, finished_episodes, header_stamp_ns,
                                                  remove_leftovers, typestore)
from policy_stack.recording.mapping import load_mapping, parse_mapping

NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
TOPICS = {"/cam/color/image_raw": "sensor_msgs/msg/Image", "/joint_states": "sensor_msgs/msg/JointState",
          "/teleop/action": "trajectory_msgs/msg/JointTrajectory", "/flag": "std_msgs/msg/Bool"}
MAPPING = {"fps": 20, "anchor": "/cam/color/image_raw", "max_age_s": 0.1, "task": "t",
           "features": {"cam_rgb": {"topic": "/cam/color/image_raw", "field": "image"},
                        "robot0_joint_pos": {"topic": "/joint_states", "field": "position", "names": ["j1", "j0"]},
                        "action": {"topic": "/teleop/action", "field": "points[0].positions", "names": NAMES}}}


def _msgs():
    ts = typestore()
    M = lambda name: ts.types[name]
    Time, Header, Duration = M("builtin_interfaces/msg/Time"), M("std_msgs/msg/Header"), M("builtin_interfaces/msg/Duration")
    hdr = lambda ns: Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="f")

    def image(ns, value):
        data = np.full((4, 6, 3), value, np.uint8)
        return ts.serialize_cdr(M("sensor_msgs/msg/Image")(header=hdr(ns), height=4, width=6, encoding="rgb8",
                                                           is_bigendian=0, step=18, data=data.reshape(-1)),
                                "sensor_msgs/msg/Image")

    def joints(ns, value):
        return ts.serialize_cdr(M("sensor_msgs/msg/JointState")(
            header=hdr(ns), name=["j0", "j1"], position=np.array([value, -value], np.float64),
            velocity=np.zeros(0), effort=np.zeros(0)), "sensor_msgs/msg/JointState")

    def action(ns, values):
        pt = M("trajectory_msgs/msg/JointTrajectoryPoint")(
            positions=np.asarray(values, np.float64), velocities=np.zeros(0), accelerations=np.zeros(0),
            effort=np.zeros(0), time_from_start=Duration(sec=0, nanosec=0))
        return ts.serialize_cdr(M("trajectory_msgs/msg/JointTrajectory")(header=hdr(ns), joint_names=NAMES, points=[pt]),
                                "trajectory_msgs/msg/JointTrajectory")
    return image, joints, action


T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def _record(folder, n_frames=21, action_offset_ms=17, commit=True, flag_from=None):
    """A 20 Hz camera, 100 Hz joints, 20 Hz actions offset by action_offset_ms, and (flag_from: from that
    tick on, every 0.3 s) a stamp-less Bool; returns the actions sent."""
    image, joints, action = _msgs()
    flag = lambda v: typestore().serialize_cdr(typestore().types["std_msgs/msg/Bool"](data=v), "std_msgs/msg/Bool")
    w = EpisodeMcapWriter(folder, TOPICS)
    w.open()
    sent = []
    for k in range(n_frames * 5):
        t = T0 + k * 10 * MS
        w.add("/joint_states", joints(t, k), t)
        if k % 5 == 0:
            w.add("/cam/color/image_raw", image(t, k // 5), t + 3 * MS)
        if k % 5 == 1:
            ta = T0 + (k // 5) * 50 * MS + action_offset_ms * MS
            a = [0.01 * k, 0, 0, 0, 0, 0, 1.0]
            sent.append((ta, np.float32(a)))
            w.add("/teleop/action", action(ta, a), ta)
        if flag_from is not None and k >= flag_from and (k - flag_from) % 30 == 0:
            w.add("/flag", flag(True), t)          # no header: the log (receive) time is its stamp
    if commit:
        w.commit({"task": "lift", "success": True, "seed": 7})
    return w, sent


def test_header_stamp_read_from_cdr_bytes():
    image, _, _ = _msgs()
    assert header_stamp_ns(image(T0 + 123, 1)) == T0 + 123


def test_latest_at_or_before_never_a_future_message(tmp_path):
    _, sent = _record(tmp_path)
    mapping = parse_mapping(MAPPING)
    frames, report = episode_frames(tmp_path / "episode_000000.mcap", mapping)
    stamps = np.array(report["frame_stamps_ns"])
    # 21 camera frames over 1.0 s at 20 fps: duration x fps + 1, first frame dropped (no action yet)
    assert report["frames"] == 20 and report["dropped"] == {"action": 1} and report["grid_gaps"] == 0
    for k, t in enumerate(stamps):
        expected = max((s for s in sent if s[0] <= t), key=lambda s: s[0])
        np.testing.assert_array_equal(frames["action"][k], expected[1])
        assert expected[0] <= t < expected[0] + 50 * MS            # the latest, and not a future one
    # joints: 100 Hz; frame at camera time t takes the joint message stamped exactly t (at or before)
    idx = (stamps - T0) // (10 * MS)
    np.testing.assert_array_equal(frames["robot0_joint_pos"], np.stack([-idx, idx], 1).astype(np.float32))
    assert frames["cam_rgb"].shape == (20, 4, 6, 3) and frames["cam_rgb"].dtype == np.uint8
    np.testing.assert_array_equal(frames["cam_rgb"][:, 0, 0, 0], (stamps - T0) // (50 * MS))


def test_max_age_drops_frames_whose_input_is_stale(tmp_path):
    _record(tmp_path)
    m = dict(MAPPING, max_age_s=0.01)           # actions are 17 ms older than the frame: too old
    with pytest.raises(ValueError, match="no complete frame"):
        episode_frames(tmp_path / "episode_000000.mcap", parse_mapping(m))


def test_fixed_clock_without_camera(tmp_path):
    _record(tmp_path)
    m = {k: v for k, v in MAPPING.items() if k != "anchor"}
    m["features"] = {k: v for k, v in MAPPING["features"].items() if k != "cam_rgb"}
    m["fps"] = 10
    frames, report = episode_frames(tmp_path / "episode_000000.mcap", parse_mapping(m))
    # clock from the first stamp all topics have (the first action, 17 ms) to the last message (1.04 s)
    assert report["frames"] == 11 and report["frame_stamps_ns"][0] == T0 + 17 * MS and np.all(np.diff(report["frame_stamps_ns"]) == 100 * MS)


def test_stampless_signal_default_and_own_max_age(tmp_path):
    _record(tmp_path, flag_from=52)                 # first flag at 0.52 s, then every 0.3 s
    feats = dict(MAPPING["features"], success={"topic": "/flag", "field": "data"})
    frames, report = episode_frames(tmp_path / "episode_000000.mcap", parse_mapping(dict(MAPPING, features=feats)))
    # present only within 0.1 s after 0.52 and 0.82 s: 4 of 20 frames; the rest are dropped
    assert report["dropped"]["success"] == 16
    feats["success"].update(default=False, max_age_s=10.0)
    frames, report = episode_frames(tmp_path / "episode_000000.mcap", parse_mapping(dict(MAPPING, features=feats)))
    stamps = np.array(report["frame_stamps_ns"])
    assert report["frames"] == 20 and "success" not in report["dropped"]
    np.testing.assert_array_equal(frames["success"], stamps >= T0 + 520 * MS)   # never a future one
    with pytest.raises(ValueError, match="max_age_s"):
        parse_mapping(dict(MAPPING, features={**feats, "success": {"topic": "/flag", "field": "data", "max_age_s": 0}}))


def test_anchor_grid_counts_jitter_gaps_and_repeats():
    period = 50 * MS
    jittered = np.array([k * period + (4 * MS if k % 2 else -4 * MS) for k in range(41)]) + T0
    picks, gaps, repeats = align.anchor_frames(jittered, 20, 2 * period)
    assert picks == list(range(41)) and gaps == 0 and repeats == 0
    slow = T0 + np.arange(0, 2 * 10**9 + 1, 100 * MS)          # a 10 Hz anchor resampled to 20 fps
    picks, gaps, repeats = align.anchor_frames(slow, 20, 2 * period)
    assert len(picks) == 41 and repeats == 20 and gaps == 0
    sparse = np.array([T0, T0 + 10**9])                          # a 1 s hole: older than max_age -> gaps
    picks, gaps, _ = align.anchor_frames(sparse, 20, 2 * period)
    assert len(picks) + gaps == 21 and gaps == 17


def test_convert_writes_a_dataset_our_reader_loads(tmp_path):
    rec = tmp_path / "rec"
    _, sent = _record(rec)
    _record(rec, n_frames=11)
    result = convert([rec], parse_mapping(MAPPING), tmp_path / "ds")
    assert [r["frames"] for r in result["reports"]] == [20, 10]
    ds = DatasetReader(tmp_path / "ds")
    assert ds.num_episodes == 2 and ds.fps == 20
    ep = ds.episode(0)
    assert ep["action"].shape == (20, 7) and bool(ep["success"][-1]) and bool(ep["done"][-1])
    np.testing.assert_array_equal(ep["action"][0], sent[0][1] if sent[0][0] <= T0 + 50 * MS else sent[1][1])


def test_killed_episode_leaves_only_a_temp_file(tmp_path):
    _record(tmp_path)
    w, _ = _record(tmp_path, commit=False)          # "killed": never committed
    tmp = list(tmp_path.glob("episode_000001.mcap.*.tmp"))
    assert len(tmp) == 1 and finished_episodes(tmp_path) == [0]
    assert list_episodes([tmp_path]) == [tmp_path / "episode_000000.mcap"]   # not converted
    assert remove_leftovers(tmp_path) == [tmp[0].name]
    assert not list(tmp_path.glob("*.tmp"))
    assert json.loads((tmp_path / "episode_000000.json").read_text())["seed"] == 7
    w2 = EpisodeMcapWriter(tmp_path, TOPICS)
    assert w2.open() == 1                             # the next episode takes the free index
    w2.discard()
    assert not list(tmp_path.glob("*.tmp")) and finished_episodes(tmp_path) == [0]


def test_mapping_errors_are_one_clear_line(tmp_path):
    bad = [({"fps": 0, "features": {"action": {}}}, "fps"),
           ({"fps": 20, "features": {"x": {"topic": "/a", "field": "data"}}}, "action"),
           ({"fps": 20, "features": {"action": {"topic": "/a"}}}, "topic and a field"),
           ({"fps": 20, "features": {"action": {"topic": "/a", "field": "a..b"}}}, "bad field"),
           ({"fps": 20, "max_age_s": -1, "features": {"action": {"topic": "/a", "field": "d"}}}, "max_age_s"),
           ({"fps": 20, "bogus": 1, "features": {"action": {"topic": "/a", "field": "d"}}}, "unknown keys")]
    for data, match in bad:
        with pytest.raises(ValueError, match=match):
            parse_mapping(data)
    f = tmp_path / "m.yaml"
    f.write_text("fps: [")
    with pytest.raises(ValueError, match="YAML"):
        load_mapping(f)
    with pytest.raises(ValueError, match="unknown message type"):
        EpisodeMcapWriter(tmp_path, {"/x": "nope_msgs/msg/Nope"})
    _record(tmp_path / "r")
    m = dict(MAPPING, features={**MAPPING["features"], "action": {"topic": "/missing", "field": "data"}})
    with pytest.raises(ValueError, match="no messages on"):
        episode_frames(tmp_path / "r" / "episode_000000.mcap", parse_mapping(m))


def test_convert_and_record_cli(tmp_path, capsys):
    import yaml

    from policy_stack.cli import main
    _record(tmp_path / "rec")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(MAPPING))
    assert main(["convert", "mcap", str(tmp_path / "rec"), "--mapping", str(tmp_path / "m.yaml"),
                 "--out", str(tmp_path / "ds"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes"] == 1 and summary["frames"] == 20
    assert DatasetReader(tmp_path / "ds").num_frames == 20
    # an MCAP folder given to `convert rosbag2`, a missing input, --real: one line, exit 2
    assert main(["convert", "rosbag2", str(tmp_path / "rec"), "--mapping", str(tmp_path / "m.yaml"),
                 "--out", str(tmp_path / "ds2")]) == 2
    assert "use `convert mcap`" in capsys.readouterr().err
    assert main(["convert", "mcap", str(tmp_path / "nope"), "--mapping", str(tmp_path / "m.yaml"),
                 "--out", str(tmp_path / "ds3")]) == 2
    assert "no such file" in capsys.readouterr().err
    # --real drives a fake arm through the arm adapter (test_record_real.py); a real arm is no --arm choice
    with pytest.raises(SystemExit) as exc:
        main(["record", "--real", "--arm", "servo", "--out", str(tmp_path / "ds4")])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
