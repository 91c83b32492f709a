"""Message conversion round trips (rclpy message types and serialization, no processes)."""
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ros_nodes import convert as C

NAMES = [f"j{i}" for i in range(7)]


def test_trajectory_writer_reuses_one_message_and_round_trips():
    writer = C.TrajectoryWriter(NAMES, 0.05)
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(16, 7)).astype(np.float32), rng.normal(size=(16, 7))
    msg = writer(first, C.sec_to_stamp(12.5))
    wire = serialize_message(msg)
    assert writer(second, C.sec_to_stamp(13.0)) is msg          # refilled, not rebuilt
    back = deserialize_message(wire, JointTrajectory)           # what went out before the refill
    stamp, dt, chunk = C.trajectory_to_chunk(back, "/t", NAMES)
    assert stamp == pytest.approx(12.5) and dt == pytest.approx(0.05)
    np.testing.assert_array_equal(chunk, first.astype(np.float64))
    stamp, _, chunk = C.trajectory_to_chunk(deserialize_message(serialize_message(msg), JointTrajectory), "/t", NAMES)
    assert stamp == pytest.approx(13.0)
    np.testing.assert_array_equal(chunk, second)
    # The same message as one built field by field (compared decoded: CDR padding bytes are not
    # initialized, so the raw bytes of equal messages may differ); a new length rebuilds the points.
    fresh = JointTrajectory(header=C._header(C.sec_to_stamp(1.0), ""), joint_names=NAMES, points=[
        JointTrajectoryPoint(positions=row.tolist(), time_from_start=C.sec_to_duration(0.05 * k))
        for k, row in enumerate(second)])
    assert deserialize_message(serialize_message(writer(second, C.sec_to_stamp(1.0))), JointTrajectory) == fresh
    assert len(writer(second[:4], C.sec_to_stamp(1.0)).points) == 4


def test_trajectory_writer_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"expected \(T, 7\)"):
        C.TrajectoryWriter(NAMES, 0.05)(np.zeros((16, 6)), C.sec_to_stamp(0.0))
