"""sim/instructions.py: templates, splits (disjoint, deterministic), decomposition and parsing."""
import pytest

from sim.instructions import (HELDOUT_COMBOS, SPLITS, TEMPLATES, draw_episode, matches_description,
                              split_instruction, templates_for)

SLOTS = [("cube0", "small"), ("cube1", "small"), ("cube2", "large"), ("cube3", "large")]
KINDS = ("pick", "stack", "tower")


def _episodes(split, n=200):
    return [draw_episode(s, split, SLOTS, kinds=KINDS) for s in range(n)]


def test_about_forty_templates_with_heldout_paraphrases_of_every_kind():
    assert 36 <= len(TEMPLATES) <= 44
    for kind in KINDS:
        train, held = templates_for("train", kind), templates_for("heldout_templates", kind)
        assert train and held
        assert not {t.text for t in train} & {t.text for t in held}


def test_draw_is_deterministic_by_seed_and_varies_across_seeds():
    for split in SPLITS:
        assert draw_episode(7, split, SLOTS, KINDS) == draw_episode(7, split, SLOTS, KINDS)
    texts = {e.instruction for e in _episodes("train", 100)}
    assert len(texts) > 60


def test_splits_are_disjoint_along_their_axis():
    train = _episodes("train")
    train_templates = {e.template_id for e in train}
    train_texts = {s.text for e in train for s in e.steps} | {e.instruction for e in train}
    # no held-out paraphrase in training, and no training wording in heldout_templates
    held_t = _episodes("heldout_templates")
    assert not train_templates & {e.template_id for e in held_t}
    assert not train_texts & ({e.instruction for e in held_t} | {s.text for e in held_t for s in e.steps})
    # held-out attribute combinations never appear in any train layout, and are every heldout target
    assert not {c.combo for e in train for c in e.layout} & HELDOUT_COMBOS
    held_a = _episodes("heldout_attributes")
    by_name = [{c.name: c for c in e.layout} for e in held_a]
    assert all(m[e.target].combo in HELDOUT_COMBOS for e, m in zip(held_a, by_name))
    # its target is named with the size word, and a same-colour twin of the other size is present
    for e, m in zip(held_a, by_name):
        t = m[e.target]
        assert f"{t.size} {t.colour} cube" in e.steps[0].text
        assert any(c.colour == t.colour and c.size != t.size for c in e.layout)
    # heldout_layouts: train wording and attributes, but different layouts for the same seeds
    held_l = _episodes("heldout_layouts")
    assert {e.template_id for e in held_l} <= {t.id for t in TEMPLATES if not t.heldout}
    assert not {c.combo for e in held_l for c in e.layout} & HELDOUT_COMBOS
    assert [e.layout for e in held_l] != [e.layout for e in train]


def test_heldout_mixes_the_three_heldout_axes_by_seed():
    drawn = [draw_episode(s, "heldout", SLOTS, KINDS) for s in range(30)]
    assert {e.split for e in drawn} == {"heldout_templates", "heldout_attributes", "heldout_layouts"}
    for s, e in enumerate(drawn):
        assert e == draw_episode(s, e.split, SLOTS, KINDS)


def test_every_description_is_unambiguous_in_its_layout():
    for split in SPLITS:
        for e in _episodes(split, 100):
            for step in e.steps:
                desc = step.text
                named = [c for c in e.layout if any(
                    matches_description(d, c) for d in _descriptions_in(desc))]
                assert [c.name for c in named] == [step.target], (desc, e.layout)


def _descriptions_in(text):
    words = text.replace(":", " ").replace(",", " ").split()
    out = []
    for i, w in enumerate(words):
        if w in ("cube", "one"):
            j = i - 1
            while j >= 0 and words[j] in ("small", "large", "red", "green", "blue", "yellow", "purple", "orange"):
                j -= 1
            out.append(" ".join(words[j + 1:i + 1]))
    return out


def test_compound_instructions_become_pick_place_sequences():
    towers = [e for e in _episodes("train") if e.kind == "tower"]
    assert towers
    for e in towers:
        assert [s.skill for s in e.steps] == ["pick", "place", "pick", "place"]
        assert [s.target for s in e.steps] == [e.objects[k] for k in "abca"]
    stacks = [e for e in _episodes("train") if e.kind == "stack"]
    assert all([s.skill for s in e.steps] == ["pick", "place"] for e in stacks)


def test_split_instruction_recovers_the_steps_of_every_split():
    for split in SPLITS:
        for e in _episodes(split, 100):
            assert [p.text for p in split_instruction(e.instruction)] == [s.text for s in e.steps]
            assert [p.skill for p in split_instruction(e.instruction)] == [s.skill for s in e.steps]


def test_bad_inputs_fail_clearly():
    with pytest.raises(ValueError, match="valid splits"):
        draw_episode(0, "test", SLOTS)
    with pytest.raises(ValueError, match="no known template"):
        split_instruction("dance with the red cube")
