"""Language for `nut_assembly_both`: robosuite NutAssembly with both nuts and both pegs.

Two task kinds, each instruction naming one nut:
    grab: "grab the square nut by its handle" -> pick_handle square_nut "grab the square nut by its handle"
    fit:  "put the round nut on the round peg" -> pick_handle round_nut  "pick up the round nut by the handle"
                                                   place_on_peg round_peg "put it on the round peg"
Keypoints: a nut's handle (the top of its handle bar), a peg's top centre. Splits as for
pick_place_multi: train, heldout_templates (paraphrases), heldout_layouts (disjoint layout seeds),
heldout (the two in turn).
Pure Python.
"""
from __future__ import annotations

import random

from sim.instructions import Episode, SubInstruction

NUTS = ("square", "round")
SPLITS = ("train", "heldout_templates", "heldout_layouts", "heldout")
HELDOUT_SPLITS = ("heldout_templates", "heldout_layouts")
KINDS = ("grab", "fit")


def nut_name(shape: str) -> str:
    return f"{shape}_nut"


def peg_name(shape: str) -> str:
    return f"{shape}_peg"


# (kind, text, [(skill, "nut" | "peg", sub-instruction)], heldout); {n} = nut shape word
_RAW = [
    ("grab", "grab the {n} nut by its handle", [("pick_handle", "nut", "grab the {n} nut by its handle")], False),
    ("grab", "pick up the {n} nut by the handle", [("pick_handle", "nut", "pick up the {n} nut by the handle")], False),
    ("grab", "lift the {n} nut", [("pick_handle", "nut", "lift the {n} nut")], False),
    ("grab", "take the {n} nut by its handle", [("pick_handle", "nut", "take the {n} nut by its handle")], False),
    ("fit", "put the {n} nut on the {n} peg",
     [("pick_handle", "nut", "pick up the {n} nut by the handle"), ("place_on_peg", "peg", "put it on the {n} peg")], False),
    ("fit", "fit the {n} nut onto the {n} peg",
     [("pick_handle", "nut", "grab the {n} nut by its handle"), ("place_on_peg", "peg", "fit it onto the {n} peg")], False),
    ("fit", "place the {n} nut over the {n} peg",
     [("pick_handle", "nut", "take the {n} nut by its handle"), ("place_on_peg", "peg", "place it over the {n} peg")], False),
    ("grab", "seize the {n} nut's handle", [("pick_handle", "nut", "seize the {n} nut's handle")], True),
    ("fit", "slide the {n} nut down the {n} post",
     [("pick_handle", "nut", "seize the {n} nut's handle"), ("place_on_peg", "peg", "slide it down the {n} post")], True),
]
TEMPLATES = tuple((200 + i, *row) for i, row in enumerate(_RAW))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown instruction split {split!r} for nut_assembly_both; valid splits: {list(SPLITS)}")


def layout_seed(seed: int, split: str) -> int:
    if split == "heldout":
        split = HELDOUT_SPLITS[seed % len(HELDOUT_SPLITS)]
    return seed + (1_000_003 if split == "heldout_layouts" else 0)


def _fill(template, shape: str):
    tid, kind, text, steps, _ = template
    names = {"nut": nut_name(shape), "peg": peg_name(shape)}
    return text.format(n=shape), tuple(SubInstruction(s, names[t], sub.format(n=shape)) for s, t, sub in steps)


def draw_episode(seed: int, split: str, kinds=KINDS) -> Episode:
    _check_split(split)
    if split == "heldout":
        split = HELDOUT_SPLITS[seed % len(HELDOUT_SPLITS)]
    rng = random.Random(f"nut:{split}:{layout_seed(seed, split)}")
    kind = rng.choice(list(kinds))
    shape = rng.choice(NUTS)
    pool = [t for t in TEMPLATES if t[1] == kind and t[4] == (split == "heldout_templates")]
    template = rng.choice(pool)
    text, steps = _fill(template, shape)
    return Episode(split, kind, template[0], text, {"a": nut_name(shape), "b": peg_name(shape)}, steps, ())


_PARSE = {" ".join(_fill(t, s)[0].lower().split()): _fill(t, s)[1] for t in TEMPLATES for s in NUTS}


def split_instruction(instruction: str) -> list[SubInstruction]:
    key = " ".join(str(instruction).strip().lower().split())
    if key not in _PARSE:
        raise ValueError(f"instruction {instruction!r} matches no nut_assembly_both template")
    return list(_PARSE[key])


def grounding_queries(rng: random.Random, split: str, target: str, n: int = 1) -> list[tuple]:
    """n sub-instructions naming `target` (a nut or a peg) for grounding data."""
    _check_split(split)
    heldout = split == "heldout_templates"
    shape, what = target.split("_")
    out = []
    for _ in range(n):
        pool = [t for t in TEMPLATES if t[4] == heldout and any(w == what for _, w, _ in t[3])]
        t = rng.choice(pool)
        _, steps = _fill(t, shape)
        step = next(s for s in steps if s.target == target)
        out.append((t[0], step.skill, step.text))
    return out
