"""3Dconnexion SpaceMouse over raw HID (hidapi's `hid.device`), parsed here.

HID reports (SpaceNavigator / SpaceMouse Compact / Wireless, as pyspacemouse and libspnav read them):
  id 1: translation x, y, z as int16 little-endian (newer devices append rx, ry, rz: 13 bytes)
  id 2: rotation rx, ry, rz as int16 little-endian
  id 3: buttons, one bit each (bit 0 left, bit 1 right)
Raw counts reach about +-350 at full deflection. The device sends reports continuously while the puck
is deflected and one all-zero report on release, so "deadman held" = a non-zero motion state refreshed
by a report within `deadman_timeout_s`: a released puck or a dead link gives zero motion.
Axis convention (pyspacemouse's): x right, y forward (away from the user), z up; roll about y,
pitch about x, yaw about z. Mapped to the robot base frame for an operator facing the robot from the
front of the table: base x = forward, base y = left, base z = up (`AXIS_MAP`, editable).
Buttons: left toggles the gripper, right ends the episode as a success. Other episode controls: the
teleop node's services.
"""
from __future__ import annotations

import math
import struct

import numpy as np

from hardware.teleop.device import DEADMAN_TIMEOUT_S, TeleopDevice

VENDOR_3DCONNEXION = (0x046D, 0x256F)       # Logitech-era and 3Dconnexion vendor ids
FULL_SCALE = 350.0
# base-frame axis <- (device axis index in x y z roll pitch yaw, sign)
# (rotations follow the translations: roll about base x = about the device's y, pitch about base y = -rx)
AXIS_MAP = ((1, 1.0), (0, -1.0), (2, 1.0), (4, 1.0), (3, -1.0), (5, 1.0))
REPORT_BYTES = 13


def parse_report(report, state: np.ndarray) -> tuple[bool, int | None]:
    """Apply one HID report (a sequence of ints, report id first) to `state` (6 raw device axes).
    Returns (it carried motion, button bitmask or None). Unknown or short reports change nothing."""
    data = bytes(report)
    if len(data) >= 7 and data[0] == 1:
        state[0:3] = struct.unpack_from("<3h", data, 1)
        if len(data) >= 13:                       # newer devices: all six axes in report 1
            state[3:6] = struct.unpack_from("<3h", data, 7)
        return True, None
    if len(data) >= 7 and data[0] == 2:
        state[3:6] = struct.unpack_from("<3h", data, 1)
        return True, None
    if len(data) >= 2 and data[0] == 3:
        return False, int.from_bytes(data[1:3] if len(data) >= 3 else data[1:2], "little")
    return False, None


def open_hid(path: str = ""):
    """Open the first 3Dconnexion device (or the hidraw `path`), non-blocking. OSError if none."""
    import hid   # hidapi
    dev = hid.device()
    if path:
        dev.open_path(path.encode())
    else:
        found = [d for d in hid.enumerate() if d.get("vendor_id") in VENDOR_3DCONNEXION]
        if not found:
            raise OSError("no SpaceMouse found (3Dconnexion HID device); check the udev rule for hidraw access")
        dev.open_path(found[0]["path"])
    dev.set_nonblocking(1)
    return dev


class SpaceMouseDevice(TeleopDevice):
    name = "spacemouse"

    def __init__(self, space, hid_device=None, hid_path: str = "", deadman_timeout_s: float = DEADMAN_TIMEOUT_S,
                 **kw):
        super().__init__(space, deadman_timeout_s=deadman_timeout_s, **kw)
        self.dev = hid_device if hid_device is not None else open_hid(hid_path)
        self.raw = np.zeros(6)
        self.buttons = 0
        self.last_report = -math.inf

    def _read(self, now, obs):
        events, toggle = [], False
        for _ in range(256):                       # drain what arrived since the last tick
            report = self.dev.read(REPORT_BYTES, 0)
            if not report:
                break
            motion, buttons = parse_report(report, self.raw)
            if motion:
                self.last_report = now
            if buttons is not None:
                pressed = buttons & ~self.buttons
                toggle ^= bool(pressed & 1)
                if pressed & 2:
                    events.append("success")
                self.buttons = buttons
        moving = bool(np.any(self.raw != 0)) and now - self.last_report <= self.deadman_timeout_s
        axes = np.array([s * self.raw[i] for i, s in AXIS_MAP]) / FULL_SCALE
        return axes, moving, events, toggle

    def close(self) -> None:
        close = getattr(self.dev, "close", None)
        if close:
            close()
