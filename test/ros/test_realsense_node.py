"""The realsense_node as a process, playing a recording synthesized with pyrealsense2 (software_device +
recorder) through the real librealsense playback and rs.align, received by an rclpy client in another
process: the topics, values, stamps and frame ids a realsense-ros consumer relies on, ~/enable, and the
one-line start-up error."""
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy  # noqa: F401  before pyrealsense2 (the fixture loads it): see test/hardware/conftest.py

from ros_testlib import REPO, RosClient, image_transport_env, status_values

COEFFS = (0.01, -0.02, 0.001, 0.0005, 0.003)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from hardware.realsense.synth import synthesize
    return synthesize(tmp_path_factory.mktemp("rs") / "plane.db3", width=640, height=480, fps=30, frames=30,
                      depth_mm=1234, coeffs=COEFFS)


def start_camera(ros_env, run_dir, parameters):
    from ros_nodes.graph import Graph, NodeSpec
    from ros_nodes.launcher import GraphProcesses
    spec = NodeSpec(name="realsense_node", executable="realsense_node", module="ros_nodes.realsense_node",
                    parameters=parameters)
    env = dict(ros_env, **image_transport_env())
    return GraphProcesses(Graph((spec,), {}), run_dir, env=env, out=sys.stderr).start()


def test_camera_node_publishes_the_recording_like_realsense_ros(ros_env, tmp_path, monkeypatch, recording):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image
    from std_srvs.srv import SetBool

    from hardware.realsense.synth import expected_color
    from ros_nodes import convert as C
    from ros_nodes.common import SENSOR_QOS

    for k, v in image_transport_env().items():     # the client receives 640x480 frames: same transport
        monkeypatch.setenv(k, v)
    procs = start_camera(ros_env, tmp_path, {"recording": recording.path, "camera": "cam",
                                             "diagnostics_period_s": 0.5})
    client = RosClient()
    topics = {"color": "/cam/color/image_raw", "depth": "/cam/aligned_depth_to_color/image_raw",
              "color_info": "/cam/color/camera_info", "depth_info": "/cam/aligned_depth_to_color/camera_info"}
    try:
        qos = dict(color=SENSOR_QOS, depth=SENSOR_QOS)
        for key, topic in topics.items():
            client.record(Image if key in ("color", "depth") else CameraInfo, topic, qos.get(key))
        client.record(DiagnosticArray, "/diagnostics")
        assert client.wait_for(lambda: len(client.received(topics["color"])) >= 10, timeout=60), \
            f"fewer than 10 color frames: {procs.tails['realsense_node']}"
        colors = client.received(topics["color"])
        depths = {C.stamp_to_ns(m.header.stamp): m for m in client.received(topics["depth"])}
        infos = {C.stamp_to_ns(m.header.stamp): m for m in client.received(topics["color_info"])}
        paired = 0
        for color in colors:
            assert color.encoding == "rgb8" and (color.width, color.height) == (640, 480)
            assert color.header.frame_id == "cam_color_optical_frame"
            rgb = C.image_to_rgb(color, "color")
            k = int(rgb[0, 0, 2])          # the pattern's blue channel is the frame index
            np.testing.assert_array_equal(rgb, expected_color(640, 480, k))
            depth = depths.get(C.stamp_to_ns(color.header.stamp))   # identical stamp, not merely close
            if depth is None:
                continue                   # best effort: a depth frame may be lost, never mispaired
            paired += 1
            assert depth.encoding == "16UC1" and depth.header.frame_id == "cam_color_optical_frame"
            assert C.image_to_depth(depth, "depth", dtype="uint16")[240, 320] == 1234
        assert paired >= 5, f"only {paired} color frames had a depth frame with the same stamp"
        for info in list(infos.values()) + client.received(topics["depth_info"])[-1:]:
            np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), recording.K)
            assert info.distortion_model == "plumb_bob" and (info.width, info.height) == (640, 480)
            np.testing.assert_allclose(info.d, COEFFS, rtol=1e-6)
            assert info.header.frame_id == "cam_color_optical_frame"
        assert set(infos) & {C.stamp_to_ns(c.header.stamp) for c in colors}, "camera_info stamps differ from color"
        # stamp_source auto plays a recording with "now": stamps are fresh, not the recording's past.
        assert abs(C.stamp_to_sec(colors[-1].header.stamp) - time.time()) < 5.0

        def diag():
            for m in reversed(client.received("/diagnostics")):
                if m.status and m.status[0].name == "policy_stack/realsense_node":
                    return status_values(m)
        values = client.wait_for(lambda: (v := diag()) and float(v["fps"]) > 0 and v, timeout=10)
        assert values, "no /diagnostics from the camera node"
        assert int(values["drops"]) == 0 and values["lifecycle"] == "active"
        assert float(values["latency_ms.p50"]) > 0

        # ~/enable false: publishing stops (the capture goes on); true: it resumes.
        assert client.call(SetBool, "/realsense_node/enable", SetBool.Request(data=False)).success
        time.sleep(0.5)                    # frames already in flight land
        n = len(client.received(topics["color"]))
        time.sleep(1.0)
        assert len(client.received(topics["color"])) == n, "frames published while disabled"
        assert client.call(SetBool, "/realsense_node/enable", SetBool.Request(data=True)).success
        assert client.wait_for(lambda: len(client.received(topics["color"])) > n + 3, timeout=30), \
            "publishing did not resume after ~/enable true"
    finally:
        client.close()
        codes = procs.stop()
    assert codes["realsense_node"] == 0, f"camera node did not exit cleanly: {codes}"


def test_missing_recording_is_a_one_line_error(ros_env, tmp_path):
    missing = tmp_path / "nowhere.db3"
    r = subprocess.run([sys.executable, "-m", "ros_nodes.realsense_node", "--ros-args", "-p", f"recording:={missing}"],
                       env=ros_env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("[RealSenseNode] error:")]
    assert lines == [f"[RealSenseNode] error: recording not found: {missing}"], r.stderr


def test_device_stamps_unaligned_depth_and_a_nested_camera_name(ros_env, tmp_path, monkeypatch, recording):
    """stamp_source device: the recording's own (past) timestamps, verbatim; align false: the depth
    camera's image and intrinsics under depth/; camera "camera/camera": realsense-ros 4.x's topic layout,
    frame ids from the last part."""
    from sensor_msgs.msg import CameraInfo, Image

    from ros_nodes import convert as C
    from ros_nodes.common import SENSOR_QOS

    for k, v in image_transport_env().items():
        monkeypatch.setenv(k, v)
    procs = start_camera(ros_env, tmp_path, {"recording": recording.path, "camera": "camera/camera",
                                             "stamp_source": "device", "align": False})
    client = RosClient()
    try:
        client.record(Image, "/camera/camera/color/image_raw", SENSOR_QOS)
        client.record(Image, "/camera/camera/depth/image_rect_raw", SENSOR_QOS)
        client.record(CameraInfo, "/camera/camera/depth/camera_info")
        assert client.wait_for(lambda: len(client.received("/camera/camera/depth/image_rect_raw")) >= 3
                               and len(client.received("/camera/camera/color/image_raw")) >= 3, timeout=60), \
            f"no frames on the nested topics: {procs.tails['realsense_node']}"
        for color in client.received("/camera/camera/color/image_raw"):
            k = int(C.image_to_rgb(color, "color")[0, 0, 2])
            assert C.stamp_to_ns(color.header.stamp) == int(round(recording.stamp_ms(k) * 1e6))
            assert color.header.frame_id == "camera_color_optical_frame"
        depth = client.received("/camera/camera/depth/image_rect_raw")[-1]
        assert depth.header.frame_id == "camera_depth_optical_frame"
        assert C.image_to_depth(depth, "depth", dtype="uint16")[240, 320] == 1234
        info = client.received("/camera/camera/depth/camera_info")[-1]
        np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), recording.K)
        assert list(info.d) == [0.0] * 5 and info.header.frame_id == "camera_depth_optical_frame"
    finally:
        client.close()
        codes = procs.stop()
    assert codes["realsense_node"] == 0, f"camera node did not exit cleanly: {codes}"
