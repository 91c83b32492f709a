"""Single-attribute training queries: "pick up the small cube", "grab the blue cube".

Why: a referring expression such as "the small blue cube" names a conjunction of attributes. A model
trained only on full expressions can learn each (size, colour) pair as one visual concept; a pair it
never saw (held out) then has no meaning for it. Queries that name ONE attribute teach each attribute
on its own: "the small cube" points at every small cube of the frame, whatever its colour, so the size
word must be grounded in size, not in the colours that happened to come with it.

What they are made of, and why that keeps the held-out splits clean:
- the image, the keypoints and the attribute values come from the training rows themselves (the train
  collections contain no held-out (size, colour) pair, even as a distractor);
- the wording is the training row's own sub-instruction with its description replaced by one attribute
  word ("grasp the small green cube" -> "grasp the small cube" / "grasp the green cube"), so no
  held-out template is used;
- a derived text names one attribute only, so it cannot name any (size, colour) pair at all.
Where several cubes of a frame share the attribute, the query has several answers: one row per
answer (same image and text). Under the spatial-softmax cross-entropy that is the same expected loss
as one target with a Gaussian on each answer: the model learns to spread its mass over all of them.
A query is made only from frames where every object of the layout is visible (otherwise an occluded
answer would be missing from the target).

The attribute vocabulary is read from the training rows' labels (`target_colour`, `target_size`), not
from the simulator, so the core stays free of sim/ imports.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

ATTRIBUTE_KEYS = ("target_size", "target_colour")   # per-row labels of a grounding collection


@dataclass(frozen=True)
class AttributeQuery:
    source_row: int      # row whose image (and frame) the query is asked on
    answer_row: int      # row whose keypoint is one answer to it
    attribute: str       # the one attribute word, e.g. "small" or "blue"
    text: str            # the derived sub-instruction


def attribute_vocab(meta: dict) -> dict[str, list[str]]:
    """{"target_size": [...], "target_colour": [...]}: the attribute words of the training rows."""
    return {k: sorted(set(meta.get(k, []))) for k in ATTRIBUTE_KEYS}


def description_span(text: str, words: set[str]) -> tuple[int, int] | None:
    """(start, end) of the run of attribute words right before 'cube'/'one' in `text`, or None."""
    tokens = list(re.finditer(r"[A-Za-z]+", text))
    for i, tok in enumerate(tokens):
        if tok.group(0) not in ("cube", "one"):
            continue
        j = i
        while j > 0 and tokens[j - 1].group(0) in words:
            j -= 1
        if j < i:
            return tokens[j].start(), tokens[i - 1].end()
    return None


def with_single_attribute(text: str, attribute: str, words: set[str]) -> str | None:
    """The same sentence with its description reduced to one attribute word, or None when the text has
    no description made of known attribute words."""
    span = description_span(text, words)
    if span is None:
        return None
    return text[:span[0]] + attribute + text[span[1]:]


def single_attribute_queries(instructions: list[str], meta: dict, objects_per_frame: int | None = None,
                             keys: tuple[str, ...] = ATTRIBUTE_KEYS) -> list[AttributeQuery]:
    """Derived queries for the training rows of a grounding collection (rows grouped into frames by
    (episode_seed, frame)); see the module docstring. objects_per_frame: the layout's object count
    (default: the most rows any frame has)."""
    n = len(instructions)
    for k in ("episode_seed", "frame", *keys):
        if len(meta.get(k, [])) != n:
            raise ValueError(f"single-attribute queries need the per-row label {k!r} for all {n} rows")
    vocab = attribute_vocab(meta)
    words = {w for k in keys for w in vocab[k]}
    frames: dict[tuple, list[int]] = defaultdict(list)
    for i in range(n):
        frames[(meta["episode_seed"][i], meta["frame"][i])].append(i)
    if objects_per_frame is None:
        objects_per_frame = max(len({meta["target_size"][i] + "/" + meta["target_colour"][i] for i in rows})
                                for rows in frames.values())
    out: list[AttributeQuery] = []
    for rows in frames.values():
        # one row per visible object (several rows can name the same object in different words)
        objects = {}
        for i in rows:
            objects.setdefault(tuple(meta[k][i] for k in keys), i)
        if len(objects) < objects_per_frame:
            continue                      # an object is hidden: its answer would be missing
        for ki, key in enumerate(keys):
            for value in sorted({obj[ki] for obj in objects}):
                answers = [i for obj, i in objects.items() if obj[ki] == value]
                # the wording: a training row of this frame (its own template), description replaced
                source = answers[0]
                text = with_single_attribute(instructions[source], value, words)
                if text is None:
                    continue
                out.extend(AttributeQuery(source, a, value, text) for a in answers)
    return out


def attribute_variants(text: str, words: set[str]) -> list[str]:
    """For a description of two or more attribute words ("raise the small blue cube"): the sentence once
    per word with that word alone ("raise the small cube", "raise the blue cube"); [] otherwise.
    Used to compose a grounding as a product over the attributes (KitePolicy, compose_attributes)."""
    span = description_span(text, words)
    if span is None:
        return []
    attrs = text[span[0]:span[1]].split()
    if len(attrs) < 2:
        return []
    return [text[:span[0]] + a + text[span[1]:] for a in attrs]
