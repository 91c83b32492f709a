"""The node graph of `policy-stack record` in sim, as data (like ros_nodes/graph.py): the sim node
executing /teleop/action, the teleop node, and the recorder writing one MCAP per episode. Also the
topic-to-feature mapping that turns such a recording into the same dataset `collect` writes.
No rclpy here."""
from __future__ import annotations

from ros_nodes.graph import ARM_BACKENDS, FAKE_ARM_WORKSPACE, Graph, NodeSpec, _typed, _typed_if_defined
from ros_nodes.params import load_definitions
from ros_nodes.transport import shm_profile_file

ACTION_TOPIC, EVENT_TOPIC, STATE_TOPIC = "/teleop/action", "/teleop/episode_event", "/teleop/state"
SIM_STEP_CAP = 100_000            # the teleop side ends episodes; the sim's own cap never should
# Lockstep with the scripted expert: how long a sim step waits for the expert's answer to its observation
# (normally a few ms; generous for a loaded machine, where a late answer would pair with the next frame).
ANSWER_WAIT_S = 1.0


def executed_action_topic(arm: str) -> str:
    """Where the action that moved the robot is published: the sim node's topic in sim, the arm adapter's
    behind an arm interface (`record --real`). Both stamp it with the observation it followed."""
    node = "arm_adapter" if arm else "sim_node"
    return load_definitions(node)["executed_action_topic"].default


def decided_action(action_names, fps: int) -> dict:
    """The mapping source of the action each frame was DECIDED to get in a policy recording: the operator's
    teleop action while the deadman is held (it is published only then), else the point of the newest policy
    chunk planned for the frame's time. Unlike the executed action, it carries no inference latency (under
    load a robot executes a plan made a few frames earlier), so it is the label for imitation from policy
    rollouts (a sim-to-real session's fine-tuning); `action` in the recorded dataset stays the executed one."""
    chunk_topic = load_definitions("inference_node")["action_chunk_topic"].default
    names = list(action_names)
    return {"topic": chunk_topic, "field": "points[0].positions", "names": names, "chunk_time": True,
            "max_age_s": 0.5,
            # published every tick while the deadman is held, never after: a frame takes the operator's
            # action of the last tick before it (one period), so the release ends it at the next frame
            "prefer": {"topic": ACTION_TOPIC, "field": "points[0].positions", "names": names,
                       "max_age_s": round(1.0 / fps, 6)}}


def sim_topics(objects, cameras, depth: bool, arm: str = "") -> dict[str, str]:
    """Topic -> type of everything a sim recording keeps (defaults of config/sim_node_parameters.yaml)."""
    d = {k: v.default for k, v in load_definitions("sim_node").items()}
    topics = {executed_action_topic(arm): "trajectory_msgs/msg/JointTrajectory",
              d["joint_states_topic"]: "sensor_msgs/msg/JointState", d["ee_pose_topic"]: "geometry_msgs/msg/PoseStamped",
              d["success_topic"]: "std_msgs/msg/Bool", ACTION_TOPIC: "trajectory_msgs/msg/JointTrajectory",
              EVENT_TOPIC: "std_msgs/msg/String", STATE_TOPIC: "sensor_msgs/msg/Joy",
              d["executed_action_topic"]: "trajectory_msgs/msg/JointTrajectory"}
    for o in objects:
        topics[d["object_pose_topic"].format(name=o)] = "geometry_msgs/msg/PoseStamped"
    for cam in cameras:
        topics[d["color_topic"].format(camera=cam)] = "sensor_msgs/msg/Image"
        topics[d["camera_info_topic"].format(camera=cam)] = "sensor_msgs/msg/CameraInfo"
        if depth:
            topics[d["depth_topic"].format(camera=cam)] = "sensor_msgs/msg/Image"
    return topics


def sim_mapping(objects, cameras, depth: bool, fps: int, action_names, interventions: bool = False,
                arm: str = "") -> dict:
    """Mapping (policy_stack.recording.mapping format) from a sim recording to collect's features.

    interventions (policy rollouts with human interventions, HIL-SERL): `action` is the action the sim (or,
    with `arm`, the arm adapter) EXECUTED (the policy's, or the operator's while the deadman is held) and
    `intervention` the deadman flag of /teleop/state; without it `action` is the teleop command (pure teleop
    recordings)."""
    d = {k: v.default for k, v in load_definitions("sim_node").items()}
    feats = {
        "robot0_joint_pos": {"topic": d["joint_states_topic"], "field": "position", "names": list(d["joint_names"])},
        "robot0_gripper_qpos": {"topic": d["joint_states_topic"], "field": "position",
                                "names": list(d["gripper_joint_names"])},
        "robot0_eef_pos": {"topic": d["ee_pose_topic"], "field": "pose.position"},
        "robot0_eef_quat": {"topic": d["ee_pose_topic"], "field": "pose.orientation"},
    }
    for o in objects:
        feats[f"{o}_pos"] = {"topic": d["object_pose_topic"].format(name=o), "field": "pose.position"}
        feats[f"{o}_quat"] = {"topic": d["object_pose_topic"].format(name=o), "field": "pose.orientation"}
    for cam in cameras:
        feats[f"{cam}_rgb"] = {"topic": d["color_topic"].format(camera=cam), "field": "image"}
        if depth:
            feats[f"{cam}_depth"] = {"topic": d["depth_topic"].format(camera=cam), "field": "image"}
    feats["action"] = {"topic": executed_action_topic(arm) if interventions else ACTION_TOPIC,
                       "field": "points[0].positions", "names": list(action_names)}
    if interventions and arm:
        # The adapter stamps what it executed with the observation it followed and publishes nothing while
        # it holds (e.g. until an episode's first chunk): only an action stamped with the frame's own
        # observation belongs to it (1 ms: the stamps are equal), else an older one (the end of the previous
        # episode, right after a reset) would fill the frame. Such frames are dropped and counted.
        feats["action"]["max_age_s"] = 0.001
    if interventions:
        # buttons[0] = deadman engaged, every teleop tick; false before the teleop node's first tick.
        feats["intervention"] = {"topic": STATE_TOPIC, "field": "buttons[0]", "default": False}
    # Bool has no stamp (receive time stands in) and is published after each step: hold the last value
    # (it changes once an episode), false before the first one.
    feats["success"] = {"topic": d["success_topic"], "field": "data", "max_age_s": 10.0, "default": False}
    anchor = d["color_topic"].format(camera=cameras[0]) if cameras else d["joint_states_topic"]
    # Observation topics of one step share its stamp; the teleop action and the (stamp-less) success
    # signal run on their own clocks, one period apart: two periods is the most any may lag.
    return {"fps": int(fps), "anchor": anchor, "max_age_s": round(2.0 / fps, 6), "features": feats}


def describe_record(*, env: str, device: str, episodes: int, seed: int, cameras, depth: bool, image_size: int,
                    rate_hz: float, max_steps: int, recordings: str, task: str, objects, waypoints_file: str = "",
                    keyboard_tty: str = "", command_log: str = "", results_file: str = "",
                    success_hold_steps: int = 5, arm: str = "", policy: str = "", real_profile: str = "",
                    calibration_gain: str = "", takeover_after_steps: int = 0) -> Graph:
    """arm "" (sim): the sim node executes /teleop/action itself. arm servo | jtc | pose (`record --real`):
    the hardware path, as `up --real` builds it: the arm adapter executes /teleop/action (its teleop_topic)
    and drives the sim node standing in for the robot behind that fake controller.

    policy (a checkpoint spec, as `up --policy`): human interventions. The inference node drives the sim;
    the teleop node runs in intervention mode (actions only while the deadman is held) and the sim's
    arbitration lets a fresh teleop action take over; the recording maps the EXECUTED action and the
    deadman flag (sim_mapping(interventions=True)); behind an arm interface, the adapter arbitrates the teleop
    action against the policy's chunks and publishes what it executed (its executed_action_topic)."""
    if arm and arm not in ARM_BACKENDS:
        raise ValueError(f"arm {arm!r}: expected one of {list(ARM_BACKENDS)}")
    sim_params = {
        "env": env, "cameras": ",".join(cameras), "depth": str(depth).lower(), "image_size": str(image_size),
        "episodes": "0", "seed": str(seed), "max_steps": str(SIM_STEP_CAP), "rate_hz": repr(float(rate_hz)),
        "end_on_success": "false", "teleop_topic": "" if arm else ACTION_TOPIC, "next_seed_on_reset": "true",
        "results_file": results_file, "policy_reset_service": ""}
    if policy:     # the policy's history is cleared at each episode start, as in `up`
        sim_params["policy_reset_service"] = load_definitions("sim_node")["policy_reset_service"].default
        # the deadman's release ends the intervention at once: executed source == recorded flag
        sim_params["teleop_state_topic"] = STATE_TOPIC
    elif not arm:
        # Plain teleop recording in sim: each episode starts from the reset scene (the sim does not step until
        # the device engages), as a `collect` episode and an evaluation do.
        sim_params["teleop_state_topic"] = STATE_TOPIC
        sim_params["wait_for_engage"] = "true"
    # Not with a policy: in intervention mode the teleop node publishes only while engaged, so there is no
    # answer to wait for on released steps.
    answer = device == "scripted" and not waypoints_file and not arm and not policy
    if answer:
        # The scripted expert answers each observation and the sim executes that answer at that step: every
        # recorded frame is paired with the action computed from it (collect's pairing), not the previous one.
        sim_params["teleop_answer_wait_s"] = repr(ANSWER_WAIT_S)
    if arm:
        sim_params["arm_interface"] = arm
    if real_profile:      # a sim-to-real session's "real side" (sim/real_profiles.py)
        sim_params["real_profile"] = real_profile
    sim = NodeSpec(name="sim_node", executable="sim_node", module="ros_nodes.sim_node",
                   parameters=_typed("sim_node", sim_params))
    extra = []
    if policy:
        from ros_nodes.graph import describe
        extra.append(describe({"policy": policy, "cameras": ",".join(cameras), "depth": str(depth).lower(),
                               "rate_hz": repr(float(rate_hz)), "image_size": str(image_size)}).node("inference_node"))
    if arm:
        adapter = {"backend": arm, "teleop_topic": ACTION_TOPIC,
                   "publish_ee_pose": False,           # the fake arm publishes /ee_pose from physics
                   "camera_topics": ",".join(f"/{cam}/color/image_raw" for cam in cameras), **FAKE_ARM_WORKSPACE}
        if calibration_gain:
            from ros_nodes.graph import _gain
            adapter["calibration_gain"] = _gain(calibration_gain)
        extra.append(NodeSpec(name="arm_adapter", executable="arm_adapter", module="ros_nodes.arm_adapter",
                              parameters=_typed_if_defined("arm_adapter", adapter)))
    d = {k: v.default for k, v in load_definitions("sim_node").items()}
    teleop_params = {"device": device, "rate_hz": repr(float(rate_hz)), "env": env, "episodes": str(episodes),
                     "max_steps": str(max_steps), "success_hold_steps": str(success_hold_steps),
                     "sim_reset_service": d["reset_service"], "sim_status_topic": d["status_topic"],
                     "waypoints_file": waypoints_file, "command_log": command_log, "expert_seed": str(seed)}
    if policy:
        teleop_params["publish_when_released"] = "false"     # released: the policy drives
        teleop_params["takeover_after_steps"] = str(int(takeover_after_steps))
    if answer:
        teleop_params["answer_observations"] = "true"
    if keyboard_tty:
        teleop_params["keyboard_tty"] = keyboard_tty
    teleop = NodeSpec(name="teleop_node", executable="teleop_node", module="ros_nodes.teleop_node",
                      parameters=_typed("teleop_node", teleop_params))
    topics = sim_topics(objects, cameras, depth, arm)
    if policy:     # the chunks too: decided_action() labels frames from them
        topics[load_definitions("inference_node")["action_chunk_topic"].default] = "trajectory_msgs/msg/JointTrajectory"
    recorder = NodeSpec(name="recorder_node", executable="recorder_node", module="ros_nodes.recorder_node",
                        parameters={**_typed("recorder_node", {"out_dir": recordings, "task": task, "seed": str(seed),
                                                                 "device": device}),
                                    "topics": [f"{t}={ty}" for t, ty in topics.items()]})
    environment = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    if cameras:
        environment["FASTDDS_DEFAULT_PROFILES_FILE"] = shm_profile_file()
    return Graph((sim, *extra, teleop, recorder), environment, lifetime_node="recorder_node")
