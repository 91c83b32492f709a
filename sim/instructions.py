"""Language instructions for the multi-object tasks: templates, attributes, splits, sub-instructions.

Pure Python (no robosuite, no numpy): the envs draw from here at reset, the grounding-data collector
labels from here, and a policy may parse an instruction back into its steps with `split_instruction`.

Vocabulary
- An object is described by its attributes: for cubes a colour (COLOURS) and a size (SIZES). A layout's
  referring expression ("the small red cube", "the red cube") is the shortest one that is unambiguous in
  that layout, and sometimes the full one, so the size word is always meaningful when it appears.
- A template is a full instruction with slots ({a}, {b}, {c}) plus its decomposition into
  sub-instructions, each one skill on one object, each with its own text in the same phrasing family
  (a held-out paraphrase decomposes into held-out phrasings too). KITE grounds one sub-instruction at a
  time: sub-instruction text -> keypoint on its object, skill -> primitive.

Splits (for evaluation, everything a model never saw in training is held out along one axis at a time)
- train:               train templates, train attribute combinations, layouts from the train seed stream
- heldout_templates:   paraphrase templates never used in training (same kinds of task, new wording)
- heldout_attributes:  the target is a (size, colour) combination that never appears in any train
                       layout (neither as target nor as distractor), and a same-colour cube of the other
                       size sits beside it, so the size word must be understood
- heldout_layouts:     train templates and attributes, layouts from a disjoint seed stream (unseen
                       arrangements of the same distribution)
- heldout:             the three above in turn, by seed (the episode records which one it drew)
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

# Colour name -> RGBA used by the env. Saturated, far apart in hue, so a 128x128 render separates them.
COLOURS = {
    "red": (0.85, 0.10, 0.10, 1.0),
    "green": (0.10, 0.70, 0.15, 1.0),
    "blue": (0.10, 0.25, 0.90, 1.0),
    "yellow": (0.95, 0.85, 0.10, 1.0),
    "purple": (0.55, 0.15, 0.75, 1.0),
    "orange": (1.00, 0.50, 0.05, 1.0),
}
# Size word -> cube half-size in metres (robosuite Stack's cubes are 0.02 and 0.025).
SIZES = {"small": 0.02, "large": 0.026}
# (size, colour) pairs that never appear in a train layout; only heldout_attributes targets them.
HELDOUT_COMBOS = frozenset({("large", "red"), ("small", "blue"), ("large", "yellow")})

HELDOUT_SPLITS = ("heldout_templates", "heldout_attributes", "heldout_layouts")
# "heldout": the three held-out axes mixed, episode by episode (seed % 3 picks one; Episode.split says which)
SPLITS = ("train",) + HELDOUT_SPLITS + ("heldout",)
SKILLS = ("pick", "place")
# Task kind -> number of objects named in the instruction.
TASK_OBJECTS = {"pick": 1, "stack": 2, "tower": 3}


@dataclass(frozen=True)
class Template:
    id: int
    kind: str                 # "pick" | "stack" | "tower"
    text: str                 # full instruction with slots {a} {b} {c}
    steps: tuple              # ((skill, slot, sub-instruction text), ...)
    heldout: bool = False     # a paraphrase held out for evaluation


def _t(kind, text, steps, heldout=False):
    return (kind, text, tuple(steps), heldout)


# Sub-instruction phrasings, reused by the compound templates. Train and held-out families stay apart.
_PICK = "pick up the {x}"
_PLACE = "place it on the {x}"
_RAW = [
    # ---- pick, train (16)
    _t("pick", "pick up the {a}", [("pick", "a", "pick up the {a}")]),
    _t("pick", "grab the {a}", [("pick", "a", "grab the {a}")]),
    _t("pick", "lift the {a}", [("pick", "a", "lift the {a}")]),
    _t("pick", "pick the {a} up", [("pick", "a", "pick the {a} up")]),
    _t("pick", "grasp the {a}", [("pick", "a", "grasp the {a}")]),
    _t("pick", "take the {a}", [("pick", "a", "take the {a}")]),
    _t("pick", "lift up the {a}", [("pick", "a", "lift up the {a}")]),
    _t("pick", "please pick up the {a}", [("pick", "a", "please pick up the {a}")]),
    _t("pick", "raise the {a} off the table", [("pick", "a", "raise the {a} off the table")]),
    _t("pick", "get the {a}", [("pick", "a", "get the {a}")]),
    _t("pick", "pick up the {a} from the table", [("pick", "a", "pick up the {a} from the table")]),
    _t("pick", "can you grab the {a}", [("pick", "a", "can you grab the {a}")]),
    _t("pick", "the {a}: pick it up", [("pick", "a", "the {a}: pick it up")]),
    _t("pick", "hold the {a} in the air", [("pick", "a", "hold the {a} in the air")]),
    _t("pick", "go and lift the {a}", [("pick", "a", "go and lift the {a}")]),
    _t("pick", "find the {a} and pick it up", [("pick", "a", "find the {a} and pick it up")]),
    # ---- stack, train (10)
    _t("stack", "stack the {a} on the {b}", [("pick", "a", _PICK), ("place", "b", _PLACE)]),
    _t("stack", "put the {a} on top of the {b}", [("pick", "a", "grab the {a}"), ("place", "b", "put it on top of the {b}")]),
    _t("stack", "place the {a} onto the {b}", [("pick", "a", "pick up the {a}"), ("place", "b", "place it onto the {b}")]),
    _t("stack", "stack the {a} on the {b_one}", [("pick", "a", _PICK), ("place", "b", "stack it on the {b_one}")]),
    _t("stack", "move the {a} onto the {b}", [("pick", "a", "lift the {a}"), ("place", "b", "move it onto the {b}")]),
    _t("stack", "set the {a} on the {b}", [("pick", "a", "take the {a}"), ("place", "b", "set it on the {b}")]),
    _t("stack", "put the {a} on the {b_one}", [("pick", "a", "grasp the {a}"), ("place", "b", "put it on the {b_one}")]),
    _t("stack", "pick up the {a} and stack it on the {b}", [("pick", "a", _PICK), ("place", "b", "stack it on the {b}")]),
    _t("stack", "the {a} goes on top of the {b}", [("pick", "a", "get the {a}"), ("place", "b", "put it on top of the {b}")]),
    _t("stack", "stack the {a} onto the {b}", [("pick", "a", _PICK), ("place", "b", "stack it onto the {b}")]),
    # ---- tower (compound: two stacks), train (3)
    _t("tower", "stack the {a} on the {b}, then the {c} on the {a}",
       [("pick", "a", _PICK), ("place", "b", _PLACE), ("pick", "c", _PICK), ("place", "a", _PLACE)]),
    _t("tower", "build a tower: the {b} at the bottom, then the {a}, then the {c}",
       [("pick", "a", "grab the {a}"), ("place", "b", "put it on top of the {b}"),
        ("pick", "c", "grab the {c}"), ("place", "a", "put it on top of the {a}")]),
    _t("tower", "put the {a} on the {b} and then put the {c} on the {a}",
       [("pick", "a", "take the {a}"), ("place", "b", "set it on the {b}"),
        ("pick", "c", "take the {c}"), ("place", "a", "set it on the {a}")]),
    # ---- held-out paraphrases (11): wording never used in training, sub-instructions included
    _t("pick", "could you raise the {a}", [("pick", "a", "could you raise the {a}")], True),
    _t("pick", "take hold of the {a} and lift it", [("pick", "a", "take hold of the {a} and lift it")], True),
    _t("pick", "I need the {a} picked up", [("pick", "a", "I need the {a} picked up")], True),
    _t("pick", "retrieve the {a}", [("pick", "a", "retrieve the {a}")], True),
    _t("pick", "snatch the {a}", [("pick", "a", "snatch the {a}")], True),
    _t("pick", "elevate the {a}", [("pick", "a", "elevate the {a}")], True),
    _t("stack", "rest the {a} atop the {b}", [("pick", "a", "retrieve the {a}"), ("place", "b", "rest it atop the {b}")], True),
    _t("stack", "I want the {a} sitting on the {b_one}", [("pick", "a", "take hold of the {a}"), ("place", "b", "lay it on the {b_one}")], True),
    _t("stack", "balance the {a} on top of the {b}", [("pick", "a", "snatch the {a}"), ("place", "b", "balance it on top of the {b}")], True),
    _t("stack", "deposit the {a} onto the {b}", [("pick", "a", "retrieve the {a}"), ("place", "b", "deposit it onto the {b}")], True),
    _t("tower", "make a pile: the {b} under the {a}, and the {c} crowning it",
       [("pick", "a", "retrieve the {a}"), ("place", "b", "rest it atop the {b}"),
        ("pick", "c", "retrieve the {c}"), ("place", "a", "rest it atop the {a}")], True),
]
TEMPLATES: tuple[Template, ...] = tuple(Template(i, *row) for i, row in enumerate(_RAW))


def templates_for(split: str, kind: str) -> list[Template]:
    """The templates a split draws from for a task kind (held-out paraphrases only in heldout_templates)."""
    _check_split(split)
    want_heldout = split == "heldout_templates"
    return [t for t in TEMPLATES if t.kind == kind and t.heldout == want_heldout]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown instruction split {split!r}; valid splits: {list(SPLITS)}")


# --------------------------------------------------------------------------------------------- objects
@dataclass(frozen=True)
class CubeSpec:
    name: str       # env object name, e.g. "cube2"
    colour: str
    size: str

    @property
    def combo(self) -> tuple:
        return (self.size, self.colour)


def allowed_combos(split: str) -> list[tuple]:
    """(size, colour) pairs a layout of this split may contain (train-like splits exclude the held-out ones)."""
    _check_split(split)
    every = [(s, c) for s in SIZES for c in COLOURS]
    if split == "heldout_attributes":
        return every
    return [sc for sc in every if sc not in HELDOUT_COMBOS]


def describe(cube: CubeSpec, layout: list[CubeSpec], rng: random.Random, full: bool = False) -> str:
    """Referring expression for `cube` in this layout: 'small red cube' or, where its colour alone is
    unambiguous (and not forced full), sometimes 'red cube'."""
    same_colour = [c for c in layout if c.colour == cube.colour]
    if len(same_colour) > 1 or full or rng.random() < 0.5:
        return f"{cube.size} {cube.colour} cube"
    return f"{cube.colour} cube"


def _one_form(desc: str) -> str:
    """'small red cube' -> 'small red one' (the {b_one} slot: 'stack the blue cube on the yellow one')."""
    return desc[:-len("cube")] + "one"


# --------------------------------------------------------------------------------------------- episodes
@dataclass(frozen=True)
class SubInstruction:
    skill: str       # "pick" | "place"
    target: str      # env object name the keypoint belongs to
    text: str        # what the grounding model reads


@dataclass(frozen=True)
class Episode:
    """One drawn instruction: the layout's cubes and what to do with them."""
    split: str
    kind: str
    template_id: int
    instruction: str
    objects: dict                       # slot ("a", "b", "c") -> env object name
    steps: tuple                        # SubInstruction, in order
    layout: tuple = field(default=())   # CubeSpec for every cube in the scene

    @property
    def target(self) -> str:
        """The object the instruction is about first (the one picked)."""
        return self.objects["a"]


def draw_layout(rng: random.Random, split: str, slots: list[tuple[str, str]],
                must_contain: tuple | None = None) -> list[CubeSpec]:
    """Colours for the env's cube slots [(name, size)]: within one size the colours differ; a colour may
    repeat across sizes (then only the size word tells the two apart). must_contain: a (size, colour)
    that must be in the layout (on a slot of that size)."""
    allowed = allowed_combos(split)
    while True:
        used, layout = set(), []
        for name, size in slots:
            options = [c for (s, c) in allowed if s == size and (s, c) not in used]
            colour = rng.choice(options)
            used.add((size, colour))
            layout.append(CubeSpec(name, colour, size))
        if must_contain is None or must_contain in used:
            return layout
        # put the required combination on a random slot of its size, keeping colours distinct per size
        idx = [i for i, (_, s) in enumerate(slots) if s == must_contain[0]]
        i = rng.choice(idx)
        if all(c.combo != must_contain for c in layout):
            layout[i] = CubeSpec(layout[i].name, must_contain[1], must_contain[0])
        if len({c.combo for c in layout}) == len(layout):
            return layout


def draw_episode(seed: int, split: str, slots: list[tuple[str, str]], kinds=("pick", "stack")) -> Episode:
    """Deterministic in (seed, split, slots, kinds): layout colours, task kind, template, objects, text.

    slots: the env's cube slots [(object name, size word)], e.g. [("cube0", "small"), ...].
    heldout_layouts uses a seed stream disjoint from the others (same distribution, unseen layouts);
    heldout takes heldout_templates, heldout_attributes, heldout_layouts in turn by seed."""
    _check_split(split)
    if split == "heldout":
        split = HELDOUT_SPLITS[seed % len(HELDOUT_SPLITS)]
    stream = 1_000_003 if split == "heldout_layouts" else 0
    rng = random.Random(f"{split}:{seed + stream}")
    kind = rng.choice(list(kinds))
    if kind not in TASK_OBJECTS:
        raise ValueError(f"unknown task kind {kind!r}; valid kinds: {list(TASK_OBJECTS)}")
    n = TASK_OBJECTS[kind]
    if n > len(slots):
        raise ValueError(f"task kind {kind!r} needs {n} objects; the env has {len(slots)}")
    if split == "heldout_attributes":
        # a held-out combination as the target, with its same-colour twin of the other size beside it
        sizes_present = {s for _, s in slots}
        combos = [sc for sc in HELDOUT_COMBOS if sc[0] in sizes_present]
        target_combo = rng.choice(sorted(combos))
        layout = draw_layout(rng, split, slots, must_contain=target_combo)
        twin = (next(s for s in SIZES if s != target_combo[0]), target_combo[1])
        if twin[0] in sizes_present and twin not in {c.combo for c in layout}:
            others = [i for i, c in enumerate(layout) if c.size == twin[0]]
            i = rng.choice(others)
            layout[i] = CubeSpec(layout[i].name, twin[1], twin[0])
        target = next(c for c in layout if c.combo == target_combo)
        rest = [c for c in layout if c is not target]
        rng.shuffle(rest)
        chosen = [target] + rest[:n - 1]
    else:
        layout = draw_layout(rng, split, slots)
        chosen = rng.sample(layout, n)
    template = rng.choice(templates_for(split, kind))
    full = split == "heldout_attributes"
    desc = {slot: describe(c, layout, rng, full=full and slot == "a") for slot, c in zip("abc", chosen)}
    fill = dict(desc)
    fill.update({f"{k}_one": _one_form(v) for k, v in desc.items()})
    objects = {slot: c.name for slot, c in zip("abc", chosen)}
    steps = tuple(SubInstruction(skill, objects[slot], sub.format(x=desc[slot], **fill))
                  for skill, slot, sub in template.steps)
    return Episode(split, kind, template.id, template.text.format(**fill), objects, steps, tuple(layout))


# --------------------------------------------------------------------------------------------- parsing
# An object's attribute words before "cube"/"one": one or two words ("red", "small red").
_DESC = r"[a-z]+(?: [a-z]+)?"


def _template_regex(text: str) -> re.Pattern:
    """Template text -> regex with a named group per slot (the description of an object)."""
    out, pos, seen = [], 0, set()
    for m in re.finditer(r"\{(\w+)\}", text):
        out.append(re.escape(text[pos:m.start()]))
        slot = m.group(1)
        base = slot[0]
        if base in seen:                              # the same object named twice: must match again
            out.append(f"(?P={base}) one" if slot.endswith("_one") else f"(?P={base}) cube")
        elif slot.endswith("_one"):
            out.append(rf"(?P<{base}>{_DESC}) one")
            seen.add(base)
        else:
            out.append(rf"(?P<{base}>{_DESC}) cube")
            seen.add(base)
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return re.compile("^" + "".join(out) + "$")


_PARSERS = [(t, _template_regex(t.text)) for t in TEMPLATES]


@dataclass(frozen=True)
class ParsedStep:
    skill: str
    description: str   # "small red cube"
    text: str          # sub-instruction text for the grounding model


def split_instruction(instruction: str) -> list[ParsedStep]:
    """A full instruction (from any template, held-out paraphrases included) -> its sub-instructions.

    This is the oracle decomposition KITE gets from its language model: it knows every template, so it
    parses held-out wordings too; grounding the described object is left to the grounding model.
    ValueError for text no template produces."""
    text = " ".join(instruction.strip().split())
    for template, regex in _PARSERS:
        m = regex.match(text)
        if m is None:
            continue
        desc = {k: v.strip() for k, v in m.groupdict().items()}
        fill = {k: f"{v} cube" for k, v in desc.items()}
        fill.update({f"{k}_one": f"{v} one" for k, v in desc.items()})
        return [ParsedStep(skill, fill[slot], sub.format(x=fill[slot], **fill))
                for skill, slot, sub in template.steps]
    raise ValueError(f"instruction {instruction!r} matches no known template")


def matches_description(description: str, cube: CubeSpec) -> bool:
    """'small red cube' / 'red cube' / 'red one' names `cube`?"""
    words = description.replace(" one", "").replace(" cube", "").split()
    return all(w in (cube.colour, cube.size) for w in words) and cube.colour in words


def grounding_queries(rng: random.Random, split: str, layout, target: str, n: int = 1) -> list[tuple]:
    """n sub-instructions naming `target` in this layout, for grounding data: [(template_id, skill, text)].

    Each is one step (pick or place phrasing) of a random template of the split, with every slot filled
    by the target's description (a place step names the object it goes on: that object is its keypoint).
    heldout_attributes uses the full description ('large red cube'), like its episodes."""
    _check_split(split)
    cube = next(c for c in layout if c.name == target)
    pool = [t for t in TEMPLATES if t.heldout == (split == "heldout_templates")]
    out = []
    for _ in range(n):
        template = rng.choice(pool)
        skill, _slot, sub = rng.choice(template.steps)
        desc = describe(cube, list(layout), rng, full=split == "heldout_attributes")
        fill = {k: desc for k in "abc"}
        fill.update({f"{k}_one": _one_form(desc) for k in "abc"})
        out.append((template.id, skill, sub.format(x=desc, **fill)))
    return out
