"""nut_assembly_both's instruction grammar (pure Python): every drawn instruction parses back into its own
steps, `fit` is pick_handle + place_on_peg on the same shape, held-out wording stays out of train."""
import random

import pytest

from sim.nut_language import TEMPLATES, draw_episode, grounding_queries, split_instruction


def test_drawn_instructions_parse_back_and_name_one_shape():
    kinds, heldout_ids = set(), {t[0] for t in TEMPLATES if t[4]}
    for split in ("train", "heldout_templates"):
        for seed in range(80):
            ep = draw_episode(seed, split)
            steps = split_instruction(ep.instruction)
            assert [(s.skill, s.target, s.text) for s in steps] == [(s.skill, s.target, s.text) for s in ep.steps]
            shape = ep.objects["a"].split("_")[0]
            assert all(s.target.startswith(shape) for s in steps)
            assert [s.skill for s in steps] == (["pick_handle"] if ep.kind == "grab" else ["pick_handle", "place_on_peg"])
            assert (ep.template_id in heldout_ids) == (split == "heldout_templates")
            kinds.add(ep.kind)
    assert kinds == {"grab", "fit"}
    with pytest.raises(ValueError):
        split_instruction("put the can in its bin")


def test_grounding_queries_name_their_target():
    rng = random.Random(0)
    for target, skill in (("square_nut", "pick_handle"), ("round_peg", "place_on_peg")):
        for _tid, s, text in grounding_queries(rng, "train", target, 5):
            assert s == skill and target.split("_")[0] in text
