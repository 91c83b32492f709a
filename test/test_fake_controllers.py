"""Validation, timeout and conversion logic of the fake real-robot controllers (sim/fake_controllers.py).
Fast, no ROS and no simulation steps."""
import math

import numpy as np
import pytest

from sim.fake_controllers import (GRIPPER_OPEN_M, CommandRejected, FakeCartesianImpedance, FakeGripper,
                                  FakeJointTrajectoryController, FakeServo, arm_part_config,
                                  joint_position_composite, osc_config, rotation_delta)

NAMES = [f"panda_joint{i}" for i in range(1, 8)]
SCALE = np.array([0.05, 0.05, 0.05, 0.5, 0.5, 0.5])


def test_osc_scales_come_from_robosuites_config():
    from robosuite.controllers import load_composite_controller_config
    arm = arm_part_config(load_composite_controller_config(robot="Panda"))
    cfg = osc_config()
    expected = (np.asarray(arm["output_max"], float) - np.asarray(arm["output_min"], float)) / (
        arm["input_max"] - arm["input_min"])
    np.testing.assert_allclose(cfg.scale, expected)
    assert cfg.kp == arm["kp"]


def test_joint_position_composite_keeps_gains_and_gripper():
    arm = arm_part_config(joint_position_composite())
    osc = arm_part_config(__import__("robosuite").controllers.load_composite_controller_config(robot="Panda"))
    assert arm["type"] == "JOINT_POSITION" and arm["input_type"] == "absolute"
    assert arm["kp"] == osc["kp"] and arm["gripper"] == osc["gripper"]
    assert osc["type"] == "OSC_POSE"        # the source config is not modified in place


# ------------------------------------------------------------------ gripper
@pytest.mark.parametrize("g", [-1.0, -0.3, 0.0, 0.123456789, 1.0])
def test_gripper_mapping_is_lossless(g):
    grip = FakeGripper()
    pos = FakeGripper.value_to_position(g)
    assert 0.0 <= pos <= GRIPPER_OPEN_M
    assert grip.command([pos]) == pytest.approx(g, abs=1e-12)


def test_gripper_ends_of_the_range():
    assert FakeGripper.value_to_position(1.0) == 0.0          # +1 closes: fingers at 0
    assert FakeGripper.value_to_position(-1.0) == GRIPPER_OPEN_M


@pytest.mark.parametrize("data", [[float("nan")], [0.05], [-0.001], [], [0.01, 0.02], [0.01, 0.01, 0.01]])
def test_gripper_rejects_bad_commands_and_keeps_its_value(data):
    grip = FakeGripper()
    grip.command([0.0])
    with pytest.raises(CommandRejected):
        grip.command(data)
    assert grip.value == 1.0


# ------------------------------------------------------------------ servo
def test_servo_converts_twist_to_osc_delta():
    s = FakeServo("panda_link0", SCALE, dt=0.05)
    s.command("panda_link0", [0.1, 0.0, -0.2], [0.0, 1.0, 0.0], now=10.0)
    # 0.1 m/s for 0.05 s = 5 mm = 0.1 of the 0.05 m scale; 1 rad/s * 0.05 s / 0.5 rad = 0.1
    np.testing.assert_allclose(s.arm_delta(10.01), [0.1, 0.0, -0.2, 0.0, 0.1, 0.0])


def test_servo_clips_to_the_controllers_input_range():
    s = FakeServo("panda_link0", SCALE, dt=0.05)
    s.command("panda_link0", [5.0, 0, 0], [0, 0, -50.0], now=0.0)
    np.testing.assert_allclose(s.arm_delta(0.0), [1, 0, 0, 0, 0, -1])


def test_servo_halts_after_the_command_timeout():
    s = FakeServo("panda_link0", SCALE, dt=0.05, timeout_s=0.1)
    s.command("panda_link0", [0.1, 0, 0], [0, 0, 0], now=1.0)
    assert s.arm_delta(1.099)[0] > 0
    assert s.state(1.101) == "halted (command timeout)"
    np.testing.assert_array_equal(s.arm_delta(1.101), np.zeros(6))
    s.command("panda_link0", [0.1, 0, 0], [0, 0, 0], now=1.2)    # a fresh command moves again
    assert s.arm_delta(1.25)[0] > 0


def test_servo_rejects_wrong_frame_and_nan_keeping_the_last_command():
    s = FakeServo("panda_link0", SCALE, dt=0.05)
    s.command("panda_link0", [0.1, 0, 0], [0, 0, 0], now=0.0)
    with pytest.raises(CommandRejected, match="frame 'world'"):
        s.command("world", [0.2, 0, 0], [0, 0, 0], now=0.01)
    with pytest.raises(CommandRejected, match="NaN"):
        s.command("panda_link0", [math.nan, 0, 0], [0, 0, 0], now=0.01)
    assert s.arm_delta(0.02)[0] == pytest.approx(0.1)


def test_servo_pause_stops_and_resume_needs_a_fresh_command():
    s = FakeServo("panda_link0", SCALE, dt=0.05)
    s.command("panda_link0", [0.1, 0, 0], [0, 0, 0], now=0.0)
    s.set_paused(True)
    np.testing.assert_array_equal(s.arm_delta(0.01), np.zeros(6))
    with pytest.raises(CommandRejected, match="paused"):
        s.command("panda_link0", [0.1, 0, 0], [0, 0, 0], now=0.02)
    s.set_paused(False)
    assert s.state(0.03) == "no command"            # the pre-pause twist does not snap back in
    np.testing.assert_array_equal(s.arm_delta(0.03), np.zeros(6))


# ------------------------------------------------------------------ joint trajectory controller
def _points(*rows):
    return [(t, p, v) for t, p, v in rows]


def test_jtc_interpolates_linearly_from_the_measured_position():
    jtc = FakeJointTrajectoryController(NAMES)
    q0 = np.zeros(7)
    jtc.command(NAMES, 0.0, _points((1.0, np.ones(7), [])), now=5.0, measured=q0)
    np.testing.assert_allclose(jtc.setpoint(5.25, q0), 0.25 * np.ones(7))
    np.testing.assert_allclose(jtc.setpoint(7.0, q0), np.ones(7))           # holds the last point


def test_jtc_reorders_joints_by_name():
    jtc = FakeJointTrajectoryController(NAMES)
    target = np.arange(7.0)
    jtc.command(NAMES[::-1], 0.0, _points((0.5, target[::-1], [])), now=0.0, measured=np.zeros(7))
    np.testing.assert_allclose(jtc.setpoint(0.5, np.zeros(7)), target)


@pytest.mark.parametrize("names,match", [
    (NAMES[:6], "missing"), (NAMES[:6] + ["joint_x"], "unknown"), (NAMES[:6] + [NAMES[0]], "missing")])
def test_jtc_rejects_bad_joint_names(names, match):
    jtc = FakeJointTrajectoryController(NAMES)
    with pytest.raises(CommandRejected, match=match):
        jtc.command(names, 0.0, _points((0.5, np.ones(len(names)), [])), now=0.0, measured=np.zeros(7))
    assert not jtc.executing


def test_jtc_rejects_nonzero_final_velocity_nan_and_bad_times():
    jtc = FakeJointTrajectoryController(NAMES)
    q = np.zeros(7)
    with pytest.raises(CommandRejected, match="non-zero velocity"):
        jtc.command(NAMES, 0.0, _points((0.5, np.ones(7), np.full(7, 0.1))), now=0.0, measured=q)
    bad = np.ones(7)
    bad[3] = math.nan
    with pytest.raises(CommandRejected, match="NaN"):
        jtc.command(NAMES, 0.0, _points((0.5, bad, [])), now=0.0, measured=q)
    with pytest.raises(CommandRejected, match="not after"):
        jtc.command(NAMES, 0.0, _points((0.5, q, []), (0.5, q, [])), now=0.0, measured=q)
    with pytest.raises(CommandRejected, match="without points"):
        jtc.command(NAMES, 0.0, [], now=0.0, measured=q)
    with pytest.raises(CommandRejected, match="expected 7"):
        jtc.command(NAMES, 0.0, _points((0.5, np.ones(6), [])), now=0.0, measured=q)
    with pytest.raises(CommandRejected, match="ended"):
        jtc.command(NAMES, 3.0, _points((0.5, q, [])), now=10.0, measured=q)
    assert not jtc.executing
    np.testing.assert_array_equal(jtc.setpoint(1.0, q), q)     # nothing accepted: holds


def test_jtc_zero_final_velocity_is_accepted_and_cubic():
    jtc = FakeJointTrajectoryController(NAMES)
    q = np.zeros(7)
    jtc.command(NAMES, 0.0, _points((1.0, np.full(7, 0.5), np.full(7, 1.0)), (2.0, np.ones(7), np.zeros(7))),
                now=0.0, measured=q)
    assert jtc.setpoint(1.0, q)[0] == pytest.approx(0.5)
    mid = jtc.setpoint(1.5, q)[0]
    assert 0.75 < mid < 1.0          # cubic with v=1 at 1 s and 0 at 2 s: ahead of the linear 0.75


def test_jtc_future_stamp_starts_later_and_old_trajectory_runs_until_then():
    jtc = FakeJointTrajectoryController(NAMES)
    q = np.zeros(7)
    jtc.command(NAMES, 0.0, _points((1.0, np.ones(7), [])), now=0.0, measured=q)
    jtc.command(NAMES, 2.0, _points((1.0, -np.ones(7), [])), now=0.5, measured=q)
    assert jtc.setpoint(1.5, q)[0] == pytest.approx(1.0)       # old one, finished, until the new start
    assert jtc.setpoint(2.5, q)[0] == pytest.approx(0.0)       # from 1.0 at t=2 to -1 at t=3
    assert jtc.setpoint(3.0, q)[0] == pytest.approx(-1.0)


def test_jtc_new_trajectory_replaces_the_rest_of_the_old_one():
    jtc = FakeJointTrajectoryController(NAMES)
    q = np.zeros(7)
    jtc.command(NAMES, 0.0, _points((1.0, np.ones(7), [])), now=0.0, measured=q)
    jtc.command(NAMES, 0.0, _points((0.5, np.zeros(7), [])), now=0.5, measured=q)
    # Starts from the old setpoint at 0.5 s (0.5), not from a jump; ends at 0 and never reaches 1.
    assert jtc.setpoint(0.5, q)[0] == pytest.approx(0.5)
    assert jtc.setpoint(0.75, q)[0] == pytest.approx(0.25)
    assert jtc.setpoint(5.0, q)[0] == pytest.approx(0.0)


def test_jtc_stop_holds_the_measured_position():
    jtc = FakeJointTrajectoryController(NAMES)
    jtc.command(NAMES, 0.0, _points((1.0, np.ones(7), [])), now=0.0, measured=np.zeros(7))
    jtc.stop(np.full(7, 0.3))
    assert not jtc.executing
    np.testing.assert_allclose(jtc.setpoint(0.5, np.zeros(7)), np.full(7, 0.3))


# ------------------------------------------------------------------ Cartesian impedance
Q_ID = np.array([0.0, 0.0, 0.0, 1.0])


def test_impedance_delta_reaches_the_target():
    imp = FakeCartesianImpedance("panda_link0", SCALE)
    p = np.array([0.5, 0.0, 0.3])
    imp.command("panda_link0", p + [0.005, 0, 0], Q_ID, p, Q_ID)
    np.testing.assert_allclose(imp.arm_delta(p, Q_ID), [0.1, 0, 0, 0, 0, 0], atol=1e-12)


def test_impedance_discontinuity_reflex_latches_until_resynced():
    imp = FakeCartesianImpedance("panda_link0", SCALE, max_jump_m=0.01, max_jump_rad=0.05)
    p = np.array([0.5, 0.0, 0.3])
    imp.command("panda_link0", p + [0.008, 0, 0], Q_ID, p, Q_ID)
    with pytest.raises(CommandRejected, match="discontinuity reflex"):
        imp.command("panda_link0", p + [0.03, 0, 0], Q_ID, p, Q_ID)   # 22 mm from the previous target
    assert imp.reflex
    np.testing.assert_array_equal(imp.arm_delta(p, Q_ID), np.zeros(6))    # holds
    imp.command("panda_link0", p + [0.002, 0, 0], Q_ID, p, Q_ID)        # near the measured pose: recovers
    assert not imp.reflex and imp.arm_delta(p, Q_ID)[0] > 0


def test_impedance_rejects_rotation_jump_wrong_frame_and_bad_quaternion():
    from scipy.spatial.transform import Rotation
    imp = FakeCartesianImpedance("panda_link0", SCALE)
    p = np.zeros(3)
    with pytest.raises(CommandRejected, match="discontinuity"):
        imp.command("panda_link0", p, Rotation.from_rotvec([0, 0, 0.1]).as_quat(), p, Q_ID)
    with pytest.raises(CommandRejected, match="frame"):
        imp.command("world", p, Q_ID, p, Q_ID)
    with pytest.raises(CommandRejected, match="unit quaternion"):
        imp.command("panda_link0", p, [0, 0, 0, 2.0], p, Q_ID)


def test_rotation_delta_is_the_osc_convention():
    from scipy.spatial.transform import Rotation
    cur = Rotation.from_rotvec([0.3, -0.2, 0.1])
    r = np.array([0.0, 0.05, -0.02])
    target = Rotation.from_rotvec(r) * cur            # OSC: goal = R(delta) @ current
    np.testing.assert_allclose(rotation_delta(cur.as_quat(), target.as_quat()), r, atol=1e-12)


def test_the_arm_adapters_conversions_are_inverted_exactly_by_the_fakes():
    """The adapter (hardware/arms) and the fake arm read the scales and map the gripper independently; a
    round trip through both must give back what the policy sent (the contract's lossless mapping)."""
    from hardware.arms.backends import gripper_position
    from hardware.arms.scaling import load_osc_scaling
    delta = np.array([0.3, -1.0, 0.05, 0.7, -0.2, 1.0])
    servo = FakeServo("panda_link0", osc_config().scale, dt=0.05)
    twist = load_osc_scaling().scale(delta) / 0.05                 # the adapter's twist = delta * scale / dt
    servo.command("panda_link0", twist[:3], twist[3:], now=0.0)
    np.testing.assert_allclose(servo.arm_delta(0.0), delta, atol=1e-12)
    grip = FakeGripper()
    for g in np.linspace(-1.0, 1.0, 9):
        assert grip.command([gripper_position(g)]) == pytest.approx(g, abs=1e-12)
