"""`make_device(kind, space, ...)`: the one place that knows the device kinds (imports are lazy: pygame,
hidapi and termios load only for the device in use)."""
from __future__ import annotations

DEVICES = ("scripted", "spacemouse", "gamepad", "keyboard")


def make_device(kind: str, space, period_s: float = 0.05, source=None, **options):
    """source: the scripted device's action source (WaypointSource or an expert); options: per-device."""
    common = {k: options.pop(k) for k in ("translation_scale", "rotation_scale", "deadman_timeout_s")
              if k in options}
    if kind == "scripted":
        from hardware.teleop.scripted import ScriptedDevice
        if source is None:
            raise ValueError("scripted device: needs a waypoint file or an expert")
        return ScriptedDevice(space, source, period_s=period_s, **common, **options)
    if kind == "spacemouse":
        from hardware.teleop.spacemouse import SpaceMouseDevice
        return SpaceMouseDevice(space, period_s=period_s, **common, **options)
    if kind == "gamepad":
        from hardware.teleop.gamepad import GamepadDevice
        return GamepadDevice(space, period_s=period_s, **common, **options)
    if kind == "keyboard":
        from hardware.teleop.keyboard import KeyboardDevice
        return KeyboardDevice(space, period_s=period_s, **common, **options)
    raise ValueError(f"unknown teleop device {kind!r}; choose from {list(DEVICES)}")
