"""Teleop devices: HID report / pygame event / terminal byte parsing, the action mapping and the deadman.

Only the hardware is faked, and the fakes behave like it: FakeHid.read(n, timeout_ms) returns a list of
ints or [] like hidapi's hid.device in non-blocking mode; the gamepad gets real pygame events posted to
pygame's real queue (SDL dummy video driver); the keyboard reads a real pipe with raw bytes a terminal
sends (arrow keys as ESC [ C)."""
import json
import os
import struct

import numpy as np
import pytest

from hardware.teleop import make_device
from hardware.teleop.device import TwistMapper
from hardware.teleop.keyboard import parse_keys
from hardware.teleop.scripted import ScriptedDevice, WaypointSource
from hardware.teleop.spacemouse import SpaceMouseDevice, parse_report
from policy_stack.spaces import ActionSpace

SPACE = ActionSpace(["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"], [-1] * 7, [1] * 7, discrete=[6])


class FakeHid:
    """hidapi hid.device in non-blocking mode: read() returns the next queued report or []."""
    def __init__(self):
        self.queue = []
        self.closed = False

    def push(self, report_id, *values, fmt="<3h"):
        self.queue.append(list(bytes([report_id]) + struct.pack(fmt, *values)))

    def read(self, max_length, timeout_ms=0):
        return self.queue.pop(0)[:max_length] if self.queue else []

    def close(self):
        self.closed = True


def test_spacemouse_reports_parse_to_raw_axes():
    state = np.zeros(6)
    assert parse_report(list(b"\x01" + struct.pack("<3h", 100, -200, 350)), state) == (True, None)
    assert parse_report(list(b"\x02" + struct.pack("<3h", 7, 8, -9)), state) == (True, None)
    np.testing.assert_array_equal(state, [100, -200, 350, 7, 8, -9])
    # newer devices: all six axes in report 1
    parse_report(list(b"\x01" + struct.pack("<6h", 1, 2, 3, 4, 5, 6)), state)
    np.testing.assert_array_equal(state, [1, 2, 3, 4, 5, 6])
    assert parse_report([3, 0b10, 0], state) == (False, 2)
    assert parse_report([9, 1, 2, 3], state) == (False, None)        # unknown report: ignored
    assert parse_report([1, 5], state) == (False, None)              # short report: ignored
    np.testing.assert_array_equal(state, [1, 2, 3, 4, 5, 6])


def test_spacemouse_maps_to_action_space_and_buttons():
    hid = FakeHid()
    dev = SpaceMouseDevice(SPACE, hid_device=hid)
    hid.push(1, 0, 350, -175)      # device y forward -> base +x; device z -> base z
    hid.push(2, 0, 0, 350)         # yaw
    cmd = dev.poll(0.0)
    assert cmd.engaged
    np.testing.assert_allclose(cmd.action[:6], [1.0, 0.0, -0.5, 0.0, 0.0, 1.0], atol=1e-6)
    assert cmd.action[6] == -1.0                                   # gripper starts open
    np.testing.assert_allclose(cmd.twist[:3], [0.05 / 0.05, 0.0, -0.025 / 0.05])   # m/s at 20 Hz
    hid.queue.append([3, 1, 0])    # left button press: gripper toggles closed
    hid.queue.append([3, 0, 0])    # release
    hid.queue.append([3, 2, 0])    # right button: stop as success
    cmd = dev.poll(0.01)
    assert cmd.action[6] == 1.0 and cmd.events == ["success"]
    dev.close()
    assert hid.closed


def test_spacemouse_deadman_zero_within_50ms_of_silence_or_release():
    hid = FakeHid()
    dev = SpaceMouseDevice(SPACE, hid_device=hid)
    hid.push(1, 350, 0, 0)
    assert dev.poll(1.0).engaged
    # link goes silent with the puck deflected (state unchanged): still moving at 40 ms, zero at 60 ms
    assert dev.poll(1.04).engaged
    cmd = dev.poll(1.06)
    assert not cmd.engaged and np.all(cmd.action[:6] == 0)
    # released puck: the device sends one all-zero report -> zero at once
    hid.push(1, 350, 0, 0)
    assert dev.poll(2.0).engaged
    hid.push(1, 0, 0, 0)
    hid.push(2, 0, 0, 0)
    cmd = dev.poll(2.01)
    assert not cmd.engaged and np.all(cmd.action[:6] == 0)


def test_mapper_clips_scales_and_refuses_joint_space():
    m = TwistMapper(SPACE, translation_scale=0.5, rotation_scale=0.2)
    a = m.map([3, -3, np.nan, 1, 0, 0], gripper=1.0)
    np.testing.assert_allclose(a, [0.5, -0.5, 0.0, 0.2, 0, 0, 1.0], atol=1e-7)
    with pytest.raises(ValueError, match="eef_delta"):
        TwistMapper(ActionSpace(["j0"], [-1], [1], kind="joint_position"))
    with pytest.raises(ValueError, match="lacks"):
        TwistMapper(ActionSpace(["dx", "gripper"], [-1, -1], [1, 1]))


def test_keyboard_bytes_parse_like_a_terminal_sends_them():
    axes, events, toggle = parse_keys(b"wd r")
    np.testing.assert_array_equal(axes, [1, -1, 1, 0, 0, 0])
    assert toggle and events == []
    assert parse_keys(b"\x1b[C")[1] == ["success"]
    assert parse_keys(b"\x1b[D")[1] == ["rerecord"]
    assert parse_keys(b"\x1bOC")[1] == ["success"]          # application cursor mode
    assert parse_keys(b"\r")[1] == ["start"]
    assert parse_keys(b"x\x7f")[1] == ["failure", "reset"]
    assert parse_keys(b"\x1b")[1] == ["quit"]                 # a lone Esc
    assert parse_keys(b"zzz9")[0].tolist() == [0] * 6           # unmapped keys do nothing


def test_keyboard_device_reads_a_pipe_and_jogs_one_tick():
    r, w = os.pipe()
    dev = make_device("keyboard", SPACE, fd=r)
    os.write(w, b"w ")
    cmd = dev.poll(0.0)
    assert cmd.engaged and cmd.action[0] == 1.0 and cmd.action[6] == 1.0
    cmd = dev.poll(0.05)                       # no key in this tick: deadman -> zero, gripper kept
    assert not cmd.engaged and np.all(cmd.action[:6] == 0) and cmd.action[6] == 1.0
    os.write(w, b"\x1b[C")
    assert dev.poll(0.1).events == ["success"]
    dev.close()
    os.close(r)
    os.close(w)


@pytest.fixture
def pygame_events():
    pygame = pytest.importorskip("pygame")
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    dev = make_device("gamepad", SPACE, require_pad=False)
    yield dev, pygame
    dev.close()


def test_gamepad_events_map_and_deadman(pygame_events):
    dev, pg = pygame_events
    post = lambda t, **kw: pg.event.post(pg.event.Event(t, joy=0, instance_id=0, **kw))
    post(pg.JOYAXISMOTION, axis=1, value=-1.0)     # left stick up -> base +x
    post(pg.JOYAXISMOTION, axis=0, value=0.05)     # inside the dead zone
    cmd = dev.poll(0.0)
    assert not cmd.engaged and np.all(cmd.action[:6] == 0)          # deadman not held
    post(pg.JOYBUTTONDOWN, button=4)               # LB: deadman
    post(pg.JOYBUTTONDOWN, button=2)               # X: gripper toggle
    post(pg.JOYBUTTONDOWN, button=7)               # Start
    cmd = dev.poll(0.05)
    assert cmd.engaged and cmd.action[0] == 1.0 and cmd.action[1] == 0.0 and cmd.action[6] == 1.0
    assert cmd.events == ["start"]
    post(pg.JOYBUTTONUP, button=4)                 # deadman released -> zero at the next tick
    cmd = dev.poll(0.1)
    assert not cmd.engaged and np.all(cmd.action[:6] == 0) and cmd.action[6] == 1.0
    post(pg.JOYBUTTONDOWN, button=4)
    post(pg.JOYBUTTONDOWN, button=0)
    post(pg.JOYBUTTONDOWN, button=1)
    post(pg.JOYBUTTONDOWN, button=3)
    assert dev.poll(0.15).events == ["success", "failure", "rerecord"]
    post(pg.JOYDEVICEREMOVED)                      # unplugged: everything released
    cmd = dev.poll(0.2)
    assert not cmd.engaged and np.all(cmd.action[:6] == 0)


def test_scripted_waypoints_episode_protocol(tmp_path):
    acts = [[0.1 * k, 0, 0, 0, 0, 0, 1] for k in range(3)]
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"actions": acts, "end_event": "success"}))
    dev = make_device("scripted", SPACE, source=WaypointSource(f), episodes=2)
    out = [dev.poll(0.05 * k, {"ready": True}) for k in range(3)]
    assert [c.events for c in out] == [["start"], [], ["success", "reset"]]
    np.testing.assert_allclose([c.action for c in out], acts, atol=1e-7)
    cmd = dev.poll(0.2, {"ready": False})           # waiting for the scene reset: zero, not engaged
    assert cmd.events == [] and not cmd.engaged and np.all(cmd.action[:6] == 0) and cmd.action[6] == 1.0
    out = [dev.poll(0.25 + 0.05 * k, {}) for k in range(3)]
    assert out[0].events == ["start"] and out[-1].events == ["success", "reset", "quit"]
    assert dev.finished


def test_scripted_expert_success_and_failure():
    class Expert:
        resets = 0
        def reset(self):
            Expert.resets += 1
        def __call__(self, obs):
            return [5.0, 0, 0, 0, 0, 0, 1]          # out of bounds: clipped to the space
    dev = ScriptedDevice(SPACE, Expert(), max_steps=4, success_hold_steps=2)
    evs = [dev.poll(k, {"success": k in (1, 2)}).events for k in range(3)]
    assert evs == [["start"], [], ["success", "reset"]]
    evs = [dev.poll(k, {"success": False}) for k in range(4)]
    assert evs[-1].events == ["failure", "reset"] and evs[0].action[0] == 1.0
    assert Expert.resets == 2
    with pytest.raises(ValueError):
        ScriptedDevice(SPACE, Expert(), max_steps=0)
    bad = ScriptedDevice(SPACE, lambda obs: [np.nan] * 7)
    bad.source.reset = lambda: None
    with pytest.raises(ValueError, match="finite"):
        bad.poll(0.0)


def test_unknown_device_and_bad_waypoints(tmp_path):
    with pytest.raises(ValueError, match="unknown teleop device"):
        make_device("joystick9", SPACE)
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"actions": [[1, "a"]]}))
    with pytest.raises((ValueError, TypeError)):
        WaypointSource(f)
    f.write_text(json.dumps({"actions": []}))
    with pytest.raises(ValueError, match="non-empty"):
        WaypointSource(f)
