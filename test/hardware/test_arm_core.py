"""The arm adapter's logic without ROS: limits, watchdogs, e-stop, backends (hardware/arms/)."""
import math

import numpy as np
import pytest

from hardware.arms import adapter as A
from bench.adapter_plant import Plant, run_hostile
from hardware.arms.backends import gripper_position, gripper_value
from hardware.arms.kinematics import DifferentialIK, Kinematics
from hardware.arms.limits import ROBOSUITE_TABLE_WORKSPACE, MotionLimiter, MotionLimits
from hardware.arms.scaling import load_osc_scaling
from policy_stack import safety as S

TICK = 0.02
LIMITS = MotionLimits(*ROBOSUITE_TABLE_WORKSPACE)


def make_core(backend, **kw):
    ik = DifferentialIK(Kinematics()) if backend == "jtc" else None
    cfg = A.AdapterConfig(backend=backend, rate_hz=1.0 / TICK, limits=kw.pop("limits", LIMITS), **kw)
    return A.ArmAdapterCore(cfg, load_osc_scaling(), ik)


@pytest.mark.parametrize("backend", ["servo", "pose", "jtc"])
def test_1000_hostile_chunks_never_violate_workspace_or_speed(backend):
    core = make_core(backend)
    stats = run_hostile(core, chunks=1000, seed={"servo": 0, "pose": 1, "jtc": 2}[backend])
    L = core.config.limits
    assert stats["workspace_violations"] == 0 and stats["speed_violations"] == 0, stats
    assert stats["stop_point_violations"] == 0, stats       # jtc: the stop segment's end, too
    if backend == "jtc":
        # the end effector moves by FK of the IK's joint targets: the IK's residual (about 0.03 mm per
        # tick) shows as acceleration a little over the commanded limit; more than 10 % over is rare
        assert stats["accel_over_10pct"] < 0.01 * stats["ticks"], stats
    else:
        assert stats["accel_violations"] == 0, stats
    # the run exercised what it claims: mostly executing, walls reached, NaN chunks rejected, speed saturated
    assert stats["executing"] > 0.5 * stats["ticks"], stats
    assert stats["events"]["limited_workspace"] > 0 and stats["events"][S.NAN_CHUNK] > 0
    assert stats["max_speed_m_s"] > 0.9 * L.max_linear_speed, stats


def test_limiter_caps_speed_accel_and_workspace():
    lim = MotionLimiter(MotionLimits((0, 0, 0), (1, 1, 1), 0.25, 1.0, 2.5, 10.0), TICK)
    v, w, what = lim.limit([10, 0, 0], [0, 0, 10], [0.5, 0.5, 0.5], TICK)
    assert np.linalg.norm(v) == pytest.approx(2.5 * TICK) and "speed" in what and "accel" in what
    for _ in range(50):
        v, w, what = lim.limit([10, 0, 0], [0, 0, 10], [0.5, 0.5, 0.5], TICK)
    assert np.linalg.norm(v) == pytest.approx(0.25) and np.linalg.norm(w) == pytest.approx(1.0)
    # at the wall: no further motion outward, motion inward allowed
    lim.stop()
    v, _, what = lim.limit([0.1, 0, 0], [0, 0, 0], [1.0, 0.5, 0.5], TICK)
    assert v[0] == 0.0 and "workspace" in what
    v, _, _ = lim.limit([-0.01, 0, 0], [0, 0, 0], [1.2, 0.5, 0.5], TICK)   # outside: back in only
    assert v[0] < 0
    v, w, what = lim.limit([np.nan, 0, 0], [0, 0, 0], [0.5, 0.5, 0.5], TICK)
    assert what == ["non_finite"] and not v.any() and not w.any()


def test_gripper_mapping_is_lossless_and_matches_the_contract():
    assert gripper_position(1.0) == 0.0 and gripper_position(-1.0) == pytest.approx(0.04)
    for g in np.linspace(-1, 1, 21):
        assert gripper_value(gripper_position(g)) == pytest.approx(g, abs=1e-12)


def _run(core, plant, t0, seconds, chunk_every=None, rng=None):
    cmds, t = [], t0
    while t < t0 + seconds - 1e-9:
        if chunk_every and rng is not None and round((t - t0) / TICK) % chunk_every == 0:
            core.on_chunk(t, 0.05, np.tile([0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], (8, 1)), t)
        plant.feed(t)
        cmd = core.tick(t)
        plant.apply(cmd)
        cmds.append(cmd)
        t += TICK
    return cmds, t


@pytest.mark.parametrize("backend", ["servo", "jtc", "pose"])
def test_estop_latches_stops_at_once_and_needs_reset(backend):
    core = make_core(backend)
    plant = Plant(core)
    rng = np.random.default_rng(0)
    cmds, t = _run(core, plant, 100.0, 0.5, chunk_every=2, rng=rng)
    assert cmds[-1].hold is None and np.linalg.norm(plant.pose.p - Plant(core).pose.p) > 0.02   # it moved
    stop = core.estop("test", t)
    assert stop is not None and stop.hold.kind == A.ESTOP
    if backend == "servo":
        assert not np.any(stop.twist[0]) and not np.any(stop.twist[1]) and stop.stop
    elif backend == "jtc":
        assert len(stop.trajectory) == 1 and not np.any(stop.trajectory[0].velocities)
        np.testing.assert_allclose(stop.trajectory[0].positions, core.q)     # the last measured position
    else:
        assert np.linalg.norm(stop.pose.p - plant.pose.p) < 0.02
    assert core.estop("again", t) is None           # latched: idempotent
    frozen = plant.pose.p.copy()
    cmds, t = _run(core, plant, t, 1.0, chunk_every=2, rng=rng)        # the policy keeps sending
    assert all(c.hold is not None and c.hold.kind == A.ESTOP for c in cmds)
    assert all(c.gripper is None for c in cmds)
    if backend in ("servo", "jtc"):
        assert all(c.trajectory is None and c.twist is None for c in cmds)   # the one stop command holds
    assert np.linalg.norm(plant.pose.p - frozen) < 0.02       # pose: walks back to the measured pose only
    # reset: chunks stamped before it are ignored; a fresh one moves the arm again
    assert core.reset_estop(t)
    core.on_chunk(t - 0.05, 0.05, np.tile([0.5, 0, 0, 0, 0, 0, 1.0], (8, 1)), t)
    plant.feed(t)
    assert core.tick(t).hold.kind == S.NO_CHUNK
    cmds, t = _run(core, plant, t, 0.3, chunk_every=2, rng=rng)
    assert cmds[-1].hold is None
    assert not core.reset_estop(t)


@pytest.mark.parametrize("backend", ["servo", "jtc"])
def test_a_150_ms_joint_state_gap_holds(backend):
    core = make_core(backend)
    plant = Plant(core)
    t = 50.0
    cmds, t = _run(core, plant, t, 0.3, chunk_every=2, rng=np.random.default_rng(0))
    assert cmds[-1].hold is None
    holds = []
    for _ in range(int(round(0.15 / TICK))):            # 150 ms without /joint_states (chunks keep coming)
        core.on_chunk(t, 0.05, np.tile([0.5, 0, 0, 0, 0, 0, 1.0], (8, 1)), t)
        cmd = core.tick(t)
        holds.append(cmd.hold.kind if cmd.hold else None)
        plant.apply(cmd)
        t += TICK
    assert holds[:4] == [None] * 4 or holds[0] is None       # fresh for the first 100 ms
    assert holds[-1] == A.STALE_JOINTS and A.STALE_JOINTS in core.events.counts
    if backend == "servo":
        assert not np.any(cmd.twist[0])
    plant.feed(t)
    assert core.tick(t).hold is None                     # a fresh message resumes


def test_camera_watchdog_holds_after_200_ms():
    core = make_core("servo", cameras=("/agentview/color/image_raw",))
    plant = Plant(core)
    t = 10.0
    core.on_camera("/agentview/color/image_raw", t)
    core.on_chunk(t, 0.05, np.tile([0.5, 0, 0, 0, 0, 0, 1.0], (8, 1)), t)
    plant.feed(t)
    assert core.tick(t).hold is None
    plant.feed(t + 0.19)
    assert core.tick(t + 0.19).hold is None
    plant.feed(t + 0.21)
    assert core.tick(t + 0.21).hold.kind == A.STALE_CAMERA


def test_garbage_state_is_refused_and_ends_in_a_hold():
    core = make_core("servo")
    plant = Plant(core)
    t = 5.0
    core.on_chunk(t, 0.05, np.tile([0.5, 0, 0, 0, 0, 0, 1.0], (8, 1)), t)
    plant.feed(t)
    assert core.tick(t).hold is None
    assert core.on_joint_state([np.nan] * 7, t + 0.05).kind == A.BAD_STATE
    assert core.on_ee_pose([1e9, 0, 0], [0, 0, 0, 1], t + 0.05).kind == A.BAD_STATE
    assert core.on_ee_pose([0.5, 0, 0], [0, 0, 0, 0], t + 0.05).kind == A.BAD_STATE
    assert core.tick(t + 0.15).hold.kind == A.STALE_JOINTS


def test_servo_twist_is_delta_times_scale_over_dt_and_latency_is_compensated_by_stamp():
    lim = MotionLimits(*ROBOSUITE_TABLE_WORKSPACE, max_linear_speed=5.0, max_angular_speed=50.0,
                       max_linear_accel=1e3, max_angular_accel=1e4)
    core = make_core("servo", limits=lim)
    plant = Plant(core)
    t = 20.0
    chunk = np.zeros((8, 7))
    chunk[:, 0] = np.linspace(0.1, 0.8, 8)    # action k: dx = 0.1 k-th value
    chunk[:, 5] = 0.2
    # stamped 0.12 s ago (a slow network): action index 2 is due now
    core.on_chunk(t - 0.12, 0.05, chunk, t)
    plant.feed(t)
    cmd = core.tick(t)
    assert cmd.chunk_index == 2
    np.testing.assert_allclose(cmd.twist[0], [chunk[2, 0] * 0.05 / 0.05, 0, 0], atol=1e-9)
    np.testing.assert_allclose(cmd.twist[1], [0, 0, 0.2 * 0.5 / 0.05], atol=1e-9)
    assert cmd.gripper == pytest.approx(0.02)


@pytest.mark.parametrize("backend", ["jtc", "pose"])
def test_target_backends_reach_the_osc_target_of_each_step(backend):
    """target_i = measured pose at step i + delta_i * scale, reached within the step (slow deltas)."""
    core = make_core(backend)
    plant = Plant(core)
    t = 30.0
    start = plant.pose.p.copy()
    chunk = np.tile([0.1, -0.1, 0.05, 0.0, 0.0, 0.0, -1.0], (4, 1))    # 5 mm, -5 mm, 2.5 mm per 50 ms step
    core.on_chunk(t, 0.05, chunk, t)
    for _ in range(10):                                # 4 steps of 50 ms = 200 ms
        plant.feed(t)
        plant.apply(core.tick(t))
        t += TICK
    np.testing.assert_allclose(plant.pose.p - start, 4 * np.array([0.005, -0.005, 0.0025]), atol=1.5e-3)


def test_jtc_trajectory_ends_at_rest_and_stops_on_its_own():
    core = make_core("jtc")
    plant = Plant(core)
    t = 40.0
    core.on_chunk(t, 0.05, np.tile([0.5, 0.2, 0.0, 0.0, 0.0, 0.3, 1.0], (8, 1)), t)
    for _ in range(10):
        plant.feed(t)
        cmd = core.tick(t)
        plant.apply(cmd)
        t += TICK
    traj = cmd.trajectory
    assert len(traj) == 2 and traj[0].time_from_start == pytest.approx(TICK)
    assert np.any(traj[0].velocities) and not np.any(traj[-1].velocities)
    kin = Kinematics()
    assert np.all(traj[-1].positions >= kin.lower) and np.all(traj[-1].positions <= kin.upper)
    # the stop segment's end keeps to the workspace too
    assert LIMITS.inside(kin.fk(traj[-1].positions)[0], tol=1e-4)


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="empty"):
        MotionLimits((0, 0, 0), (0, 1, 1))
    with pytest.raises(ValueError, match="max_linear_speed"):
        MotionLimits(max_linear_speed=math.nan)
    with pytest.raises(ValueError, match="backend"):
        make_core("velocity")


def test_pose_backend_resyncs_to_the_measured_pose_after_the_arm_was_moved():
    """A reset or a discontinuity reflex leaves the arm far from the last target: the next targets start
    from the measured pose (a Franka accepts nothing else after a reflex), not from the stale target."""
    core = make_core("pose")
    plant = Plant(core)
    t = 60.0
    chunk = np.tile([0.2, 0, 0, 0, 0, 0, -1.0], (8, 1))
    core.on_chunk(t, 0.05, chunk, t)
    for _ in range(3):
        plant.feed(t)
        plant.apply(core.tick(t))
        t += TICK
    plant.pose.p = plant.pose.p + np.array([0.0, 0.06, 0.0])      # teleported (episode reset) 6 cm away
    kinds = []
    for _ in range(10):                                         # the arm stands there (a reflexed arm would)
        core.on_chunk(t, 0.05, chunk, t)
        plant.feed(t)
        cmd = core.tick(t)
        kinds += [e.kind for e in cmd.events]
        if A.POSE_RESYNC in kinds:
            break
        t += TICK
    assert A.POSE_RESYNC in kinds
    assert np.linalg.norm(cmd.pose.p - plant.pose.p) < 0.006      # one step from the measured pose
    # a moving arm that lags 3 cm behind its target is not re-synced
    core2 = make_core("pose")
    plant2 = Plant(core2)
    t = 80.0
    core2.on_chunk(t, 0.05, chunk, t)
    plant2.feed(t)
    core2.tick(t)
    core2.backend.cmd.p = core2.backend.cmd.p + np.array([0.03, 0.0, 0.0])
    for _ in range(15):
        plant2.pose.p = plant2.pose.p + np.array([0.004, 0.0, 0.0])  # moving 0.2 m/s toward it
        core2.on_chunk(t, 0.05, chunk, t)
        plant2.feed(t)
        core2.tick(t)
        t += TICK
    assert core2.events.counts[A.POSE_RESYNC] == 0


def test_jtc_backend_drives_a_six_joint_arm_from_its_urdf():
    """UR arms have 6 joints: the kinematics come from the URDF given, joint count and names included."""
    from pathlib import Path
    urdf = Path(__file__).parent / "data" / "six_dof.urdf"
    kin = Kinematics(urdf, "tool", ["j1", "j2", "j3", "j4", "j5", "j6"])
    q = np.array([0.0, -1.0, 1.2, -0.5, 0.3, 0.2])
    p0, R0 = kin.fk(q)
    box = MotionLimits(p0 - 0.3, p0 + 0.3)
    core = A.ArmAdapterCore(A.AdapterConfig(backend="jtc", rate_hz=1.0 / TICK, limits=box, joint_count=6),
                            load_osc_scaling(), DifferentialIK(kin))
    t = 1.0
    core.on_chunk(t, 0.05, np.tile([0.2, 0, 0, 0, 0, 0, -1.0], (8, 1)), t)
    for _ in range(10):
        core.on_joint_state(q, t)
        cmd = core.tick(t)
        assert cmd.hold is None, cmd.hold
        q = np.array(cmd.trajectory[0].positions)
        assert q.shape == (6,)
        t += TICK
    moved = kin.fk(q)[0] - p0
    assert moved[0] > 0.02 and abs(moved[1]) < 2e-3 and abs(moved[2]) < 2e-3, moved   # along +x only


def test_teleop_takes_over_while_fresh_then_the_policy_resumes():
    """Human intervention arbitration: the policy's chunks arrive every tick throughout; teleop actions
    arrive only during an intervention window. Inside it (and for teleop_timeout_s after the last teleop
    action) the executed action is the teleop one; afterwards the policy's fresh chunk drives again."""
    core = make_core("servo", teleop_timeout_s=0.1)
    plant = Plant(core)
    policy_a, teleop_a = [0.5, 0, 0, 0, 0, 0, 1.0], [0, -0.4, 0, 0, 0, 0, -1.0]
    t, sources, actions = 20.0, [], []
    for k in range(60):                                 # 1.2 s; intervention at ticks 20..34
        core.on_chunk(t, 0.05, np.tile(policy_a, (8, 1)), t)
        if 20 <= k < 35:
            core.on_teleop(t, teleop_a, t)
        plant.feed(t)
        cmd = core.tick(t)
        plant.apply(cmd)
        sources.append(cmd.source)
        actions.append(None if cmd.action is None else np.asarray(cmd.action).tolist())
        t += TICK
    assert sources[:20] == ["policy"] * 20
    # teleop for the window plus teleop_timeout_s (0.1 s = 5 ticks; the boundary tick may go either way)
    assert sources[20:39] == ["teleop"] * 19 and sources[40:] == ["policy"] * 20, sources
    np.testing.assert_allclose(actions[25], teleop_a, atol=1e-6)
    np.testing.assert_allclose(actions[45], policy_a, atol=1e-6)
    assert core.tick(t + 1.0).source == "hold"          # nothing fresh at all: hold
