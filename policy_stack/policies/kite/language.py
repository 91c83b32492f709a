"""Instruction handling the policy does without a language model: a compound instruction becomes a
list of sub-instructions, each grounded to one keypoint and executed by one skill (KITE sequences
its skills the same way).

The split is on explicit sequencing words only ("then", "and then", "after that", ";"), never on a
bare "and" (it also joins attributes: "the red and white can").
"""
from __future__ import annotations

import re

_SEQUENCE = re.compile(r"\s*(?:;|,?\s*and then\b|,?\s*then\b|,?\s*after that\b|,?\s*afterwards\b)\s*", re.IGNORECASE)


def split_instruction(text: str) -> list[str]:
    """'pick up the red cube, then put it on the blue one' -> ['pick up the red cube', 'put it on the blue one']."""
    parts = [p.strip(" ,.") for p in _SEQUENCE.split(" ".join(str(text).split()))]
    return [p for p in parts if p]
