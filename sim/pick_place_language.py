"""Language for the multi-object PickPlace task: object words, templates, splits, sub-instructions.

Pure Python (no robosuite, no numpy), like sim/instructions.py for the cubes. robosuite's PickPlace
has four objects (milk carton, bread, cereal box, can) in one bin and four target bins, one per
object, in a second bin split into quadrants. An instruction names one object; "its bin" / "the bin
for milk" names the target quadrant. Each instruction decomposes into two sub-instructions, each one
skill on one keypoint:

    "put the can in its bin" -> pick_object can     "pick up the can"
                                place_in    can_bin "put it in the can bin"

Skills: `pick_object` (grasp an object by its top, fingers across its narrow side) and `place_in`
(lower the held object into a bin). Their names differ from the cubes' pick/place because their
geometry differs (policy_stack/skills/object_skills.py).

Splits: train (train templates, train seed stream), heldout_templates (paraphrases never trained on,
sub-instructions included), heldout_layouts (train wording, a disjoint seed stream of layouts),
heldout (the two in turn, by seed). There are no attribute combinations here (every object is
unique), so heldout_attributes does not exist for this task.
"""
from __future__ import annotations

import random

from sim.instructions import Episode, SubInstruction

# robosuite's object order (PickPlace.object_to_id): bin i of the goal bin belongs to object i.
OBJECTS = ("milk", "bread", "cereal", "can")
# Object name -> referring expressions (the first is the canonical one).
OBJECT_WORDS = {"milk": ("milk carton", "milk"), "bread": ("bread", "loaf of bread"),
                "cereal": ("cereal box", "box of cereal"), "can": ("can", "soda can")}
# Object name -> the word a bin is named by ("the bin for milk", "the can bin").
BIN_WORDS = {"milk": "milk", "bread": "bread", "cereal": "cereal", "can": "can"}
SKILLS = ("pick_object", "place_in")
SPLITS = ("train", "heldout_templates", "heldout_layouts", "heldout")
HELDOUT_SPLITS = ("heldout_templates", "heldout_layouts")
KIND = "bin"


def bin_name(obj: str) -> str:
    """Env name of an object's target bin (its keypoint: the bin's floor centre)."""
    return f"{obj}_bin"


# (text with {o} = object words and {b} = bin word, pick sub-instruction, place sub-instruction, heldout)
_PICK_TRAIN = ("pick up the {o}", "grab the {o}", "lift the {o}", "take the {o}")
_RAW = [
    ("put the {o} in its bin", "pick up the {o}", "put it in the {b} bin"),
    ("place the {o} in the bin for {b}", "grab the {o}", "place it in the bin for {b}"),
    ("move the {o} to the {b} bin", "lift the {o}", "move it to the {b} bin"),
    ("drop the {o} into its bin", "take the {o}", "drop it into the {b} bin"),
    ("pick up the {o} and put it in its bin", "pick up the {o}", "put it in the {b} bin"),
    ("sort the {o} into its bin", "grab the {o}", "sort it into the {b} bin"),
    ("the {o} goes in the {b} bin", "take the {o}", "put it in the {b} bin"),
    ("put the {o} into the bin for the {b}", "lift the {o}", "put it into the bin for the {b}"),
    ("bring the {o} to its bin", "pick up the {o}", "bring it to the {b} bin"),
    ("put away the {o} in the {b} bin", "grab the {o}", "put it away in the {b} bin"),
]
_RAW_HELDOUT = [
    ("return the {o} to where it belongs", "retrieve the {o}", "return it to the {b} compartment"),
    ("I'd like the {o} stored in its bin", "snatch the {o}", "store it in the bin meant for {b}"),
    ("could you file the {o} under {b}", "take hold of the {o}", "file it in the {b} section"),
    ("deposit the {o} in the {b} compartment", "retrieve the {o}", "deposit it in the {b} compartment"),
]
# id, text, pick text, place text, heldout. Ids start at 100 (the cube templates use 0..39).
TEMPLATES = tuple((100 + i, *row, False) for i, row in enumerate(_RAW)) + \
    tuple((100 + len(_RAW) + i, *row, True) for i, row in enumerate(_RAW_HELDOUT))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown instruction split {split!r} for pick_place_multi; valid splits: {list(SPLITS)}")


def templates_for(split: str) -> list[tuple]:
    _check_split(split)
    return [t for t in TEMPLATES if t[4] == (split == "heldout_templates")]


def layout_seed(seed: int, split: str) -> int:
    """The seed the env places the objects with: heldout_layouts draws from a disjoint stream."""
    if split == "heldout":
        split = HELDOUT_SPLITS[seed % len(HELDOUT_SPLITS)]
    return seed + (1_000_003 if split == "heldout_layouts" else 0)


def _fill(template, obj: str, words: str) -> tuple[str, tuple]:
    tid, text, pick, place, _ = template
    fill = {"o": words, "b": BIN_WORDS[obj]}
    steps = (SubInstruction("pick_object", obj, pick.format(**fill)),
             SubInstruction("place_in", bin_name(obj), place.format(**fill)))
    return text.format(**fill), steps


def draw_episode(seed: int, split: str) -> Episode:
    """Deterministic in (seed, split): which object, template and wording."""
    _check_split(split)
    if split == "heldout":
        split = HELDOUT_SPLITS[seed % len(HELDOUT_SPLITS)]
    rng = random.Random(f"pick_place:{split}:{layout_seed(seed, split)}")
    obj = rng.choice(OBJECTS)
    template = rng.choice(templates_for(split))
    text, steps = _fill(template, obj, rng.choice(OBJECT_WORDS[obj]))
    return Episode(split, KIND, template[0], text, {"a": obj, "b": bin_name(obj)}, steps, ())


# Every instruction any template produces -> its steps: the vocabulary is finite, so parsing is a lookup.
_PARSE = {}
for _t in TEMPLATES:
    for _obj in OBJECTS:
        for _w in OBJECT_WORDS[_obj]:
            _text, _steps = _fill(_t, _obj, _w)
            _PARSE[" ".join(_text.lower().split())] = _steps


def split_instruction(instruction: str) -> list[SubInstruction]:
    """A full instruction (train or held-out wording) -> its sub-instructions; ValueError if unknown.
    The stand-in for the language model KITE decomposes instructions with (as for the cubes)."""
    key = " ".join(str(instruction).strip().lower().split())
    if key not in _PARSE:
        raise ValueError(f"instruction {instruction!r} matches no pick_place_multi template")
    return list(_PARSE[key])


def grounding_queries(rng: random.Random, split: str, target: str, n: int = 1) -> list[tuple]:
    """n sub-instructions naming `target` (an object or a bin) for grounding data:
    [(template_id, skill, text)] from random templates of the split."""
    _check_split(split)
    pool = templates_for(split if split != "heldout" else rng.choice(HELDOUT_SPLITS))
    out = []
    for _ in range(n):
        t = rng.choice(pool)
        if target.endswith("_bin"):
            obj = target[:-len("_bin")]
            _, steps = _fill(t, obj, OBJECT_WORDS[obj][0])
            out.append((t[0], "place_in", steps[1].text))
        else:
            _, steps = _fill(t, target, rng.choice(OBJECT_WORDS[target]))
            out.append((t[0], "pick_object", steps[0].text))
    return out
