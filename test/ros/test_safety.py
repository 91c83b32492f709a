"""Unit tests of the action-path safety module and observation time alignment (pure numpy, no ROS)."""
import math

import numpy as np
import pytest

from policy_stack import safety as S
from policy_stack.time_alignment import ObservationSync
from policy_stack.spaces import ActionSpace

SPACE = ActionSpace(names=["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"], low=[-1] * 7, high=[1] * 7,
                    kind="eef_delta", discrete=[6])
JOINTS = ActionSpace(names=[f"j{i}" for i in range(3)], low=[-2] * 3, high=[2] * 3, kind="joint_position")


def test_nan_and_inf_chunks_are_rejected_with_position():
    safety = S.ActionSafety(SPACE)
    chunk = np.zeros((4, 7))
    chunk[2, 1] = np.nan
    v = safety.filter_chunk(chunk)
    assert not v.ok and v.chunk is None
    assert v.events[0].kind == S.NAN_CHUNK and "step 2" in v.events[0].detail and "'dy'" in v.events[0].detail
    chunk[2, 1] = np.inf
    assert safety.filter_chunk(chunk).events[0].kind == S.NAN_CHUNK


def test_bad_shape_rejected():
    v = S.ActionSafety(SPACE).filter_chunk(np.zeros((4, 6)))
    assert not v.ok and v.events[0].kind == S.BAD_SHAPE


def test_clamp_to_bounds_reported():
    v = S.ActionSafety(SPACE).filter_chunk(np.full((3, 7), 5.0))
    assert v.ok and np.all(v.chunk == 1.0)
    assert [e.kind for e in v.events] == [S.CLAMPED_BOUNDS]


def test_rate_limit_exempts_discrete_gripper():
    safety = S.ActionSafety(SPACE, S.SafetyLimits(max_step_delta=0.25))
    chunk = np.zeros((3, 7))
    chunk[:, 0] = 1.0
    chunk[:, 6] = [-1, 1, -1]
    v = safety.filter_chunk(chunk, prev_action=np.zeros(7))
    assert v.ok
    np.testing.assert_allclose(v.chunk[:, 0], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(v.chunk[:, 6], [-1, 1, -1])       # gripper may flip at once
    assert S.CLAMPED_DELTA in [e.kind for e in v.events]


def _rate_limit_reference(chunk, prev, max_delta):
    """The definition, step by step: each step within max_delta of the (limited) step before it."""
    out = np.array(chunk, np.float64)
    for k in range(len(out)):
        if prev is not None:
            out[k] = prev + np.clip(out[k] - prev, -max_delta, max_delta)
        prev = out[k]
    return out


@pytest.mark.parametrize("with_anchor", [True, False])
def test_rate_limit_matches_step_by_step_definition(with_anchor):
    """The vectorized within-limit check and the loop from the first violation give the definition's
    result, whether the violation is at the first step, mid-chunk or nowhere."""
    safety = S.ActionSafety(JOINTS, S.SafetyLimits(max_step_delta=0.1))
    rng = np.random.default_rng(0)
    for case in range(60):
        chunk = np.cumsum(rng.uniform(-0.05, 0.05, (8, 3)), axis=0)    # smooth: within the limit
        if case % 3 == 1:
            chunk[rng.integers(0, 8):] += rng.uniform(-0.5, 0.5, 3)     # a jump somewhere
        prev = rng.uniform(-0.3, 0.3, 3) if with_anchor else None
        out, n = safety.rate_limit(chunk, prev)
        ref = _rate_limit_reference(chunk, prev, safety.max_delta)
        np.testing.assert_allclose(out, ref, atol=1e-12)
        steps = np.diff(np.concatenate([prev[None], out]) if with_anchor else out, axis=0)
        assert np.all(np.abs(steps) <= 0.1 + 1e-12)
        assert (n > 0) == (not np.allclose(ref, chunk))


def test_hold_eef_delta_keeps_gripper_and_joint_position_holds_last_command():
    safety = S.ActionSafety(SPACE)
    np.testing.assert_array_equal(safety.hold_action(np.array([.5, .5, .5, .1, .1, .1, 1.0])), [0, 0, 0, 0, 0, 0, 1])
    assert safety.hold_action(None)[6] == -1.0
    js = S.ActionSafety(JOINTS)
    np.testing.assert_allclose(js.hold_action(np.array([0.1, 0.2, 0.3])), [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_array_equal(js.hold_action(None, current_position=np.array([1.0, 1.0, 1.0])), [1, 1, 1])
    with pytest.raises(ValueError):
        js.hold_action(None)


def test_watchdog_stale_and_overrun():
    wd = S.Watchdog(S.SafetyLimits(max_obs_age_s=0.2, max_inference_s=0.05))
    assert wd.check_observation(10.0, {"a": 9.9, "b": 9.95}) is None
    ev = wd.check_observation(10.0, {"a": 9.7, "b": 9.95})
    assert ev.kind == S.STALE_OBS and "a is 300 ms old" in ev.detail
    assert wd.check_observation(10.0, {"a": 11.0}).kind == S.STALE_OBS        # future stamp
    assert wd.check_observation(10.0, {}).kind == S.STALE_OBS
    assert wd.check_inference(0.01) is None
    assert wd.check_inference(0.2).kind == S.OVERRUN


def test_follower_receding_horizon_stale_hold_and_reset():
    f = S.ChunkFollower(S.ActionSafety(SPACE), max_age_s=0.2)
    a, ev, idx = f.action_at(0.0)
    assert ev.kind == S.NO_CHUNK and idx == -1
    chunk = np.zeros((8, 7))
    chunk[:, 0] = np.arange(8) / 10
    chunk[:, 6] = 1.0
    assert f.set_chunk(100.0, 0.05, chunk)[0]
    assert f.action_at(100.01)[2] == 0
    a, ev, idx = f.action_at(100.06)
    assert ev is None and idx == 1 and a[0] == pytest.approx(0.1)
    a, ev, idx = f.action_at(100.25)               # 250 ms > max age: hold, gripper stays closed
    assert ev.kind == S.STALE_CHUNK and idx == -1
    np.testing.assert_array_equal(a, [0, 0, 0, 0, 0, 0, 1])
    assert not f.set_chunk(99.0, 0.05, chunk)[0]   # older than the current chunk: ignored
    f.set_hold(100.07)
    assert f.action_at(100.08)[1].kind == S.HOLD_CMD
    assert f.set_chunk(100.1, 0.05, chunk)[0]      # a newer chunk ends the hold
    assert f.action_at(100.1)[1] is None
    f.reset(not_before=200.0)
    assert not f.set_chunk(150.0, 0.05, chunk)[0]  # from the previous episode
    assert f.action_at(200.0)[1].kind == S.NO_CHUNK
    bad = chunk.copy()
    bad[0, 0] = math.nan
    ok, events = f.set_chunk(201.0, 0.05, bad)
    assert not ok and events[0].kind == S.NAN_CHUNK
    f.enabled = False
    assert f.set_chunk(202.0, 0.05, chunk)[0] and f.action_at(202.0)[1].kind == S.DISABLED


def test_follower_executes_late_chunks_by_time_and_drops_chunks_with_nothing_left():
    f = S.ChunkFollower(S.ActionSafety(SPACE), max_age_s=0.5)
    chunk = np.zeros((16, 7))
    chunk[:, 0] = np.arange(16) / 100
    chunk[:, 6] = 1.0
    # Computed from an observation stamped 100.0, arriving 120 ms later: steps 0-1 are past, 2 is due.
    assert f.set_chunk(100.0, 0.05, chunk, now=100.12)[0]
    a, ev, idx = f.action_at(100.12)
    assert ev is None and idx == 2 and a[0] == pytest.approx(0.02)
    # A newer chunk takes over at ITS time index; the old one is not finished first.
    newer = chunk.copy()
    newer[:, 0] += 0.5
    assert f.set_chunk(100.1, 0.05, newer, now=100.26)[0]
    a, ev, idx = f.action_at(100.26)
    assert ev is None and idx == 3 and a[0] == pytest.approx(0.53)
    # A chunk whose last action was due before it arrived is dropped with an event; the current continues.
    short = chunk[:4]
    ok, events = f.set_chunk(100.15, 0.05, short, now=100.36)
    assert not ok and [e.kind for e in events] == [S.LATE_CHUNK]
    assert f.action_at(100.36)[2] == 5 and f.chunk_stamp == 100.1
    # Past the horizon (observation 0.5 s old): hold, even though the chunk has actions left.
    a, ev, idx = f.action_at(100.61)
    assert ev.kind == S.STALE_CHUNK and "old" in ev.detail and idx == -1
    np.testing.assert_array_equal(a[:6], 0.0)


def test_follower_blends_the_hand_over_and_records_the_jump():
    def run(blend):
        f = S.ChunkFollower(S.ActionSafety(SPACE), max_age_s=1.0, blend_steps=blend)
        old, new = np.zeros((16, 7)), np.zeros((16, 7))
        old[:, 0], new[:, 0] = 0.0, 0.8
        f.set_chunk(10.0, 0.05, old)
        taken = [f.action_at(10.0 + k * 0.05)[0][0] for k in range(4)]
        f.set_chunk(10.15, 0.05, new)
        taken += [f.action_at(10.0 + k * 0.05)[0][0] for k in range(4, 9)]
        return np.array(taken), list(f.handover_jumps)

    hard, jumps_hard = run(0)
    smooth, jumps_smooth = run(3)
    np.testing.assert_allclose(hard[4:], 0.8)
    np.testing.assert_allclose(smooth[4:], [0.2, 0.4, 0.6, 0.8, 0.8])
    assert jumps_hard == [pytest.approx(0.8)] and jumps_smooth == [pytest.approx(0.2)]

    # Resuming after a hold (the chunk went stale) is a start, not a hand-over: not recorded.
    f = S.ChunkFollower(S.ActionSafety(SPACE), max_age_s=0.2)
    chunk = np.zeros((16, 7))
    chunk[:, 0] = 0.9
    f.set_chunk(20.0, 0.05, chunk)
    f.action_at(20.0)
    assert f.action_at(20.5)[1].kind == S.STALE_CHUNK
    f.set_chunk(20.5, 0.05, chunk)
    assert f.action_at(20.5)[1] is None and list(f.handover_jumps) == []


def test_observation_sync_hands_out_the_steps_between_two_plans_in_order():
    sync = ObservationSync(["img", "joint"], anchor="img", tolerance_s=0.01)
    for t in (1.00, 1.05, 1.06, 1.10, 1.15, 1.20):
        sync.push("img", t, t)
        sync.push("joint", t, -t)
    steps = sync.assemble_between(1.00, 1.20, min_spacing=0.025)
    assert [a.anchor_stamp for a in steps] == [1.05, 1.10, 1.15]      # 1.06 is closer than the spacing
    assert [a.obs["joint"] for a in steps] == [-1.05, -1.10, -1.15]
    assert sync.assemble_between(1.20, 2.0) == []


def test_observation_sync_aligns_nearest_and_hands_out_each_step_once():
    sync = ObservationSync(["img", "joint"], anchor="img", tolerance_s=0.01)
    for t in (1.000, 1.010, 1.020, 1.030, 1.040):
        sync.push("joint", t, t)
    assert sync.assemble() is None                  # no anchor yet
    sync.push("img", 1.022, "frame")
    got = sync.assemble()
    assert got.obs == {"img": "frame", "joint": 1.020} and got.newest == 1.022
    assert sync.assemble(after=got.anchor_stamp) is None
    sync.push("img", 1.2, "late")                    # nothing within tolerance: incomplete
    assert sync.assemble(after=got.anchor_stamp) is None
    sync.invalidate("joint")
    assert sync.missing() == ["joint"]
