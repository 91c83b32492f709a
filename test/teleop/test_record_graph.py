"""Which `policy-stack record` graphs start episodes from the reset scene and run the scripted expert in
lockstep with the sim (ros_nodes/record_graph.py; behaviour in test_record_sim.py). No ROS, no sim."""
import pytest

from ros_nodes.record_graph import STATE_TOPIC, describe_record


def _graph(**kw):
    args = dict(env="lift", device="scripted", episodes=2, seed=0, cameras=[], depth=False, image_size=84,
                rate_hz=20.0, max_steps=100, recordings="/tmp/r", task="lift the cube", objects=["cube"])
    args.update(kw)
    g = describe_record(**args)
    return g.node("sim_node").parameters, g.node("teleop_node").parameters


def test_scripted_expert_answers_each_observation_from_the_reset_scene():
    sim, teleop = _graph()
    assert sim["wait_for_engage"] is True and sim["teleop_state_topic"] == STATE_TOPIC
    assert sim["teleop_answer_wait_s"] > 0 and teleop["answer_observations"] is True


@pytest.mark.parametrize("kw", [{"waypoints_file": "/tmp/w.json"}, {"device": "keyboard"}])
def test_timer_devices_wait_for_the_deadman_but_do_not_answer(kw):
    sim, teleop = _graph(**kw)
    assert sim["wait_for_engage"] is True
    assert "teleop_answer_wait_s" not in sim and "answer_observations" not in teleop


@pytest.mark.parametrize("kw", [{"policy": "runs/x/checkpoint"}, {"arm": "servo"}])
def test_interventions_and_the_hardware_path_keep_their_own_timing(kw):
    sim, teleop = _graph(**kw)
    # a policy drives between interventions (no answer while released); behind an arm the adapter executes
    assert not sim.get("wait_for_engage") and "teleop_answer_wait_s" not in sim
    assert "answer_observations" not in teleop
