"""Teleoperation devices behind one interface (no rclpy): SpaceMouse, gamepad, terminal keyboard and a
scripted virtual device. Each turns its raw input into an action in the policy's ActionSpace plus
episode events (start, success, failure, rerecord, reset, quit); see hardware/teleop/device.py."""
from hardware.teleop.device import EVENTS, TeleopCommand, TeleopDevice, TwistMapper  # noqa: F401
from hardware.teleop.factory import DEVICES, make_device  # noqa: F401
