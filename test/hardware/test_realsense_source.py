"""hardware/realsense without ROS: a recording synthesized with pyrealsense2's software_device and
recorder, played back through the real librealsense pipeline, alignment and filters."""
import numpy as np
import pytest

from hardware.realsense import CameraError
from hardware.realsense.filters import parse_filters
from hardware.realsense.source import CameraSettings, RealSenseSource
from hardware.realsense.synth import expected_color, synthesize

COEFFS = (0.01, -0.02, 0.001, 0.0005, 0.003)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("rs") / "plane.db3", width=640, height=480, fps=30, frames=12,
                      depth_mm=1234, coeffs=COEFFS)


def read_frames(settings, n):
    source = RealSenseSource(settings).start()
    try:
        frames = []
        while len(frames) < n:
            f = source.read(timeout_s=5.0)
            assert f is not None or source.unpaired, "no frame from the recording within 5 s"
            if f is not None:
                frames.append((f.color.copy(), f.depth_mm.copy(), f.frame_number, f.device_ms, f.domain))
        return source, frames
    finally:
        source.stop()


def test_playback_reads_back_what_was_synthesized(recording):
    s = recording
    source, frames = read_frames(CameraSettings(recording=s.path, playback_rate=0), n=15)   # > 12: it loops
    ci = source.color_intrinsics
    np.testing.assert_array_equal(ci.K, s.K)          # exact: quarter-pixel values survive float32
    assert (ci.width, ci.height) == (640, 480)
    assert ci.distortion_model == "plumb_bob" and ci.rs_model == "inverse_brown_conrady"
    np.testing.assert_allclose(ci.D, COEFFS, rtol=1e-6)
    assert source.depth_intrinsics is ci                # aligned: depth is in the color camera
    assert source.drops == 0 and source.loops >= 1
    for color, depth, k, device_ms, domain in frames:
        assert depth.dtype == np.uint16 and depth.shape == (480, 640)
        assert depth[240, 320] == 1234
        # Alignment resamples: holes (0, librealsense's pixel-corner rounding leaves thin lines) but never
        # a wrong distance.
        assert set(np.unique(depth)) <= {0, 1234} and (depth > 0).mean() > 0.9
        np.testing.assert_array_equal(color, expected_color(640, 480, k))
        assert device_ms == pytest.approx(s.stamp_ms(k), abs=1e-3) and domain == "global_time"
    numbers = [k for *_, k, _, _ in frames]
    # Consecutive, wrapping at the end of the recording (the syncer may skip a pair at the start or the
    # seam when it gets one stream's frame alone: counted as unpaired, never published half).
    assert all(b == a + 1 or b < a for a, b in zip(numbers, numbers[1:])), numbers


def test_filters_keep_a_flat_plane_and_the_color_resolution(recording):
    _, frames = read_frames(CameraSettings(recording=recording.path, playback_rate=0,
                                           filters=parse_filters("hole_filling,temporal,spatial,decimation")), n=3)
    color, depth, *_ = frames[-1]
    assert depth.shape == color.shape[:2] == (480, 640)
    assert depth[240, 320] == 1234


def test_unaligned_depth_keeps_the_depth_intrinsics(recording):
    source, frames = read_frames(CameraSettings(recording=recording.path, playback_rate=0, align=False), n=2)
    assert source.depth_intrinsics.rs_model == "none" and source.depth_intrinsics.D == (0.0,) * 5
    assert frames[0][1][240, 320] == 1234


@pytest.mark.parametrize("settings, message", [
    (dict(recording="/nonexistent/plane.db3"), "recording not found"),
    (dict(recording=__file__), "expected a librealsense .db3 or .bag"),
    (dict(width=848), "unsupported profile 848x480@30"),
])
def test_clear_errors(recording, settings, message):
    if settings.get("width"):
        settings = dict(settings, recording=recording.path)
    with pytest.raises(CameraError, match=message) as err:
        RealSenseSource(CameraSettings(**settings)).start()
    assert "\n" not in str(err.value)
    if settings.get("width"):
        assert "color 640x480@30 rgb8" in str(err.value)      # what it does offer


def test_no_device_or_unknown_serial_is_one_line():
    """No camera on this machine: the live path must say so (and name the serial) instead of failing
    inside librealsense."""
    import pyrealsense2 as rs
    if len(rs.context().query_devices()):
        pytest.skip("a RealSense device is connected")
    with pytest.raises(CameraError, match="no RealSense device found"):
        RealSenseSource(CameraSettings(serial="123456789012")).start()


def test_filter_names_are_checked():
    assert parse_filters("") == ()
    assert parse_filters(" temporal , decimation") == ("decimation", "temporal")
    with pytest.raises(ValueError, match="unknown depth filter"):
        parse_filters("median")


def test_synthesizer_refuses_bag_output(tmp_path):
    with pytest.raises(ValueError, match="only .db3"):
        synthesize(tmp_path / "x.bag")


def test_cli_synth_then_check(tmp_path, capsys):
    """`policy-stack camera synth` writes a recording that `camera check` (the node's source) reads back."""
    import json

    from policy_stack.cli import main
    out = tmp_path / "cli.db3"
    assert main(["camera", "synth", str(out), "--width", "424", "--height", "240", "--frames", "6",
                 "--depth-mm", "777"]) == 0
    capsys.readouterr()
    assert main(["camera", "check", "--recording", str(out), "--width", "424", "--height", "240",
                 "--frames", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["centre_depth_mm_median"] == 777 and (report["width"], report["height"]) == (424, 240)
    assert report["serial"] == "000000000001" and report["drops"] == 0
    assert main(["camera", "check", "--recording", str(tmp_path / "missing.db3")]) == 2
    assert capsys.readouterr().err.strip() == f"policy-stack camera: error: recording not found: {tmp_path / 'missing.db3'}"
