"""Terminal keyboard (raw tty, no display: pynput needs one). A terminal reports key presses, not key
releases, so each motion key press jogs ONE control tick; holding a key repeats it at the terminal's
auto-repeat rate. The deadman is therefore built in: with no key pressed in a tick the motion is zero.

  w/s: base +x/-x   a/d: +y/-y   r/f: +z/-z   q/e: yaw +/-   i/k: pitch +/-   j/l: roll +/-
  space: toggle the gripper   Enter: start   right arrow: stop as success   x: stop as failure
  left arrow: re-record   Backspace: reset   Esc: quit
"""
from __future__ import annotations

import os
import select

import numpy as np

from hardware.teleop.device import TeleopDevice

MOTION_KEYS = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
               "j": (3, 1), "l": (3, -1), "i": (4, 1), "k": (4, -1), "q": (5, 1), "e": (5, -1)}
EVENT_KEYS = {"\r": "start", "\n": "start", "x": "failure", "\x7f": "reset", "\x08": "reset"}
ARROWS = {"C": "success", "D": "rerecord"}      # ESC [ C = right, ESC [ D = left


def parse_keys(data: bytes) -> tuple[np.ndarray, list[str], bool]:
    """Bytes read from a raw-mode terminal in one tick -> (6 motion axes, events, gripper toggled)."""
    text = data.decode("latin-1")
    axes, events, toggle = np.zeros(6), [], False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            if text[i + 1:i + 2] in ("[", "O") and i + 2 < len(text):
                ev = ARROWS.get(text[i + 2])
                if ev:
                    events.append(ev)
                i += 3
                continue
            events.append("quit")                 # a lone Esc
            i += 1
            continue
        key = ch.lower()
        if key in MOTION_KEYS:
            axis, sign = MOTION_KEYS[key]
            axes[axis] = sign
        elif key == " ":
            toggle = not toggle
        elif ch in EVENT_KEYS:
            events.append(EVENT_KEYS[ch])
        i += 1
    return axes, events, toggle


class KeyboardDevice(TeleopDevice):
    name = "keyboard"

    def __init__(self, space, tty: str = "/dev/tty", fd: int | None = None, **kw):
        super().__init__(space, **kw)
        self._own = fd is None
        self.fd = os.open(tty, os.O_RDONLY | os.O_NONBLOCK) if fd is None else fd
        self._saved = None
        import termios
        import tty as tty_mod
        if os.isatty(self.fd):                    # a pipe (tests) has no terminal mode to set
            self._saved = termios.tcgetattr(self.fd)
            tty_mod.setcbreak(self.fd)            # keys arrive one by one, no echo

    def _read(self, now, obs):
        data = b""
        while select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 1024)
            if not chunk:
                break
            data += chunk
        axes, events, toggle = parse_keys(data)
        return axes, bool(np.any(axes)), events, toggle

    def close(self) -> None:
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        if self._own:
            os.close(self.fd)
