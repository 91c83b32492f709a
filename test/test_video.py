"""The one MP4 writer: codec fallback, frame timing, and the sizes yuv420p needs."""
import numpy as np
import pytest

from policy_stack.data import video
from policy_stack.data.video import Mp4Writer, decode_rgb_video, encode_rgb_video, probe_video


def _frames(n, h, w):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, k, axis=1) for k in range(n)]


def test_falls_back_to_the_next_codec_when_one_cannot_open(tmp_path):
    path = tmp_path / "v.mp4"
    with Mp4Writer(path, fps=10, codec=("no_such_encoder", "mpeg4", "libx264")) as w:
        for f in _frames(5, 32, 48):
            w.write(f)
    assert w.codec_name == "mpeg4"
    assert probe_video(path)["video.codec"] == "mpeg4"
    frames, times = decode_rgb_video(path)
    assert frames.shape == (5, 32, 48, 3)
    np.testing.assert_allclose(times, np.arange(5) / 10)     # frame k at k/fps


def test_no_usable_codec_is_one_clear_error_and_no_file(tmp_path):
    path = tmp_path / "v.mp4"
    w = Mp4Writer(path, fps=10, codec=("no_such_encoder", "another_missing_one"))
    with pytest.raises(RuntimeError, match="no usable video encoder.*no_such_encoder.*another_missing_one"):
        w.write(np.zeros((8, 8, 3), np.uint8))
    assert not path.exists()


def test_sim_node_recording_uses_the_core_fallback_and_upscales(tmp_path, monkeypatch):
    # The ROS sim node's recorder once hard-coded libx264: with it unavailable it must still record.
    from ros_nodes.video import Mp4Writer as SimNodeMp4Writer
    monkeypatch.setattr(video, "VIEWING_CODECS", ("libx264_missing_here", "mpeg4"))
    path = tmp_path / "sim.mp4"
    w = SimNodeMp4Writer(str(path), fps=20)
    for f in _frames(3, 84, 84):
        w.write(f)
    assert w.close() == str(path) and w.codec_name == "mpeg4"
    info = probe_video(path)
    assert (info["video.height"], info["video.width"]) == (336, 336)   # x4, the first factor reaching 256
    assert decode_rgb_video(path)[0].shape[0] == 3


def test_viewing_videos_crop_odd_sizes_and_datasets_refuse_them(tmp_path):
    with Mp4Writer(tmp_path / "odd.mp4", fps=10) as w:
        w.write(np.zeros((31, 45, 3), np.uint8))
    info = probe_video(tmp_path / "odd.mp4")
    assert (info["video.height"], info["video.width"]) == (30, 44)
    with pytest.raises(ValueError, match="even frame sizes"):
        encode_rgb_video(tmp_path / "data.mp4", np.zeros((2, 31, 45, 3), np.uint8), fps=10)


def test_close_without_frames_writes_nothing(tmp_path):
    assert Mp4Writer(tmp_path / "empty.mp4", fps=10).close() is None
    assert not (tmp_path / "empty.mp4").exists()
