"""Gamepad through pygame's joystick events (works headless with SDL_VIDEODRIVER=dummy).

State comes only from the event queue (JOYAXISMOTION, JOYBUTTONDOWN/UP, JOYDEVICEREMOVED), so the
device behaves the same for a real pad and for posted events. Layout (SDL's Xbox-style numbering):
  deadman: hold LB (button 4); released -> zero motion at the next tick
  left stick: base x (forward = stick up) and y (left = stick left); right stick: z (up = stick up) and yaw
  LT / RT (axes 2 / 5, if present): roll -/+ ; X (button 2): toggle the gripper
  Start (7): start episode, A (0): stop as success, B (1): stop as failure, Y (3): re-record,
  Back (6): reset, Guide (8): quit
A pad that disappears (JOYDEVICEREMOVED) releases everything.
"""
from __future__ import annotations

import os

import numpy as np

from hardware.teleop.device import TeleopDevice

DEADMAN_BUTTON, GRIPPER_BUTTON = 4, 2
BUTTON_EVENTS = {7: "start", 0: "success", 1: "failure", 3: "rerecord", 6: "reset", 8: "quit"}
DEAD_ZONE = 0.1


def init_pygame():
    """pygame with the dummy video driver (no display needed) and the joystick subsystem."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame
    pygame.display.init()
    pygame.joystick.init()
    return pygame


class GamepadDevice(TeleopDevice):
    name = "gamepad"

    def __init__(self, space, index: int = 0, require_pad: bool = True, **kw):
        super().__init__(space, **kw)
        self.pg = init_pygame()
        self.pad = None
        if require_pad:
            if self.pg.joystick.get_count() <= index:
                raise OSError(f"no gamepad {index} (pygame sees {self.pg.joystick.get_count()})")
            self.pad = self.pg.joystick.Joystick(index)
        self.axes: dict[int, float] = {}
        self.held: set[int] = set()

    def _read(self, now, obs):
        pg = self.pg
        events, toggle = [], False
        for ev in pg.event.get((pg.JOYAXISMOTION, pg.JOYBUTTONDOWN, pg.JOYBUTTONUP, pg.JOYDEVICEREMOVED)):
            if ev.type == pg.JOYAXISMOTION:
                self.axes[ev.axis] = float(ev.value)
            elif ev.type == pg.JOYBUTTONDOWN:
                self.held.add(ev.button)
                if ev.button == GRIPPER_BUTTON:
                    toggle = not toggle
                if ev.button in BUTTON_EVENTS:
                    events.append(BUTTON_EVENTS[ev.button])
            elif ev.type == pg.JOYBUTTONUP:
                self.held.discard(ev.button)
            elif ev.type == pg.JOYDEVICEREMOVED:
                self.axes.clear()
                self.held.clear()
        a = lambda i: self._dz(self.axes.get(i, 0.0))
        # SDL: stick up / left are negative; triggers rest at -1 and go to +1.
        trig = lambda i: (self.axes.get(i, -1.0) + 1.0) / 2.0
        axes = np.array([-a(1), -a(0), -a(4), trig(5) - trig(2) if (2 in self.axes or 5 in self.axes) else 0.0,
                         0.0, -a(3)])
        return axes, DEADMAN_BUTTON in self.held, events, toggle

    @staticmethod
    def _dz(v: float) -> float:
        return 0.0 if abs(v) < DEAD_ZONE else float(v)

    def close(self) -> None:
        self.pg.joystick.quit()
        self.pg.display.quit()
