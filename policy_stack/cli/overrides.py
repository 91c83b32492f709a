"""KEY=VALUE command-line overrides (`train --set`, `finetune --set/--agent-set/--ros-set`)."""
from __future__ import annotations

import json


def parse_overrides(items: list[str], flag: str = "--set") -> dict:
    """KEY=VALUE pairs -> {key: value}; VALUE is JSON when it parses as JSON, else the string itself
    (never eval). A pair without `=` or without a key is a ValueError naming `flag` and the item."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out
