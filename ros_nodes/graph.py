"""The node graph of the manipulation stack, as data: ONE description for both front ends.

`launch/manipulation.launch.py` (ros2 launch, launch_ros Node actions) and `policy-stack up` (plain
subprocesses, for machines without ROS 2's launch) both call `describe(args)` and only translate the
result, so the two cannot drift apart. test/ros/test_graph.py checks that they stay in sync and that
every executable exists. No rclpy and no launch imports here.

Arguments (all strings, like launch configurations): see LAUNCH_ARGUMENTS. "auto" for cameras/depth
means: whatever the policy's observation spec needs (read from the checkpoint's config.json when it
lists obs_spec, otherwise by building the policy on CPU once).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ros_nodes.params import load_definitions, params_file
from ros_nodes.transport import shm_profile_file

PACKAGE = "policy_stack"

# name -> (default, description). The launch file declares exactly these; `up` maps its flags onto them.
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "sim": ("true", "true: robosuite sim node executes the chunks; false: real robot (realsense_node per camera + "
                    "arm_adapter; the arm's controllers come from its own bringup, or fake_arm)"),
    "env": ("lift", "sim task: lift, pick_place_can, stack, nut_assembly_square"),
    "policy": ("", "checkpoint folder; empty = the shipped default"),
    "device": ("auto", "auto | cuda | cpu"),
    "backend": ("torch", "torch | onnx"),
    "sampler": ("", "denoising sampler (ddpm | ddim | rti | ebt...); empty = the checkpoint's default"),
    "steps": ("0", "denoising steps per plan; 0 = the checkpoint's default"),
    "policy_seed": ("-1", "reseed the policy's sampling noise at every episode start (-1 = no)"),
    "cameras": ("auto", "comma-separated cameras, or auto = those the policy's observation spec needs"),
    "depth": ("auto", "true | false | auto (= the policy needs depth)"),
    "image_size": ("84", "square image size the sim renders, pixels"),
    "episodes": ("0", "sim: episodes before the sim node exits (0 = until stopped)"),
    "seed": ("0", "sim: seed of the first episode"),
    "max_steps": ("200", "sim: steps per episode"),
    "rate_hz": ("20.0", "control rate, Hz (sim step rate and policy rate)"),
    "video_path": ("", "sim: MP4 of the agentview camera (empty = none)"),
    "results_file": ("", "sim: JSON lines, one per episode (empty = none)"),
    "timing": ("real_time", "sim: real_time (step by the clock, like a robot) | lockstep (wait for each answer)"),
    "obs_delay_s": ("0.0", "sim: injected observation latency, s"),
    "action_delay_s": ("0.0", "sim: injected action latency, s"),
    "delay_jitter": ("0.0", "sim: each injected delay scaled by U[1 - j, 1 + j]"),
    "blend_steps": ("0", "sim: actions over which a new chunk is blended in at a hand-over (0 = switch at once)"),
    "use_sim_time": ("false", "true: every node follows the sim node's /clock (simulated time) instead of the wall clock"),
    "arm": ("servo", "sim:=false: the arm_adapter backend (the arm's controller): servo | jtc | pose"),
    "camera_serials": ("", "sim:=false: comma-separated RealSense serials, one per camera in `cameras` order "
                           "(empty = the first device found, for one camera)"),
    "fake_arm": ("false", "sim:=false: true = the sim node stands in for the arm behind the `arm` controller "
                          "interface (policy-stack up --real --arm fake-...)"),
    "camera_recording": ("", "sim:=false: realsense_node plays this librealsense recording (.db3/.bag) instead of "
                             "a device; empty with fake_arm = the sim node renders the cameras"),
    "real_profile": ("", "sim node: a sim-to-real \"real side\" profile (sim/real_profiles.py name, JSON object or "
                         "file); empty = the training sim"),
    "calibration_gain": ("", "sim:=false: the arm adapter's calibration_gain, 6 comma-separated numbers (x y z roll "
                             "pitch yaw) from a session's calibrate step; empty = the adapter's default (ones)"),
}
ARM_BACKENDS = ("servo", "jtc", "pose")
# The robosuite arm stands on a pedestal: its table top lies 0.112 m BELOW the base frame's origin, under
# the adapter's default box (made for a Panda on its table, z >= 0.02), which would keep the gripper off
# every object. The fake arm's box: the table's reach, a little above its top.
FAKE_ARM_WORKSPACE = {"workspace_min": [0.25, -0.35, -0.12], "workspace_max": [0.85, 0.35, 0.45]}


@dataclass(frozen=True)
class NodeSpec:
    name: str                              # ROS node name
    executable: str                        # `ros2 run <package> <executable>`
    module: str | None                     # python -m module (our nodes); None for external packages
    parameters: dict = field(default_factory=dict)   # overrides of the values in config/<node>.yaml
    remappings: tuple = ()                 # ((from, to), ...)
    package: str = PACKAGE
    namespace: str = ""

    @property
    def external(self) -> bool:
        return self.module is None

    @property
    def params_file(self) -> str | None:
        """The node's standard ROS 2 parameter file, passed before the overrides. None for an external node,
        and for a node renamed from its executable (one realsense_node per camera): a parameter file
        applies by node name, so describe() puts the standard values into such a node's overrides."""
        return None if self.external or self.name != self.executable else str(params_file(self.executable))


@dataclass(frozen=True)
class Graph:
    nodes: tuple
    environment: dict                      # variables every process of the graph needs
    lifetime_node: str | None = None       # the graph stops when this node exits (the sim: its episodes are done)

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)


def normalize_args(args: dict | None = None) -> dict[str, str]:
    """Defaults filled in, values as strings; unknown names are an error (typos must not pass silently)."""
    args = dict(args or {})
    unknown = sorted(set(args) - set(LAUNCH_ARGUMENTS))
    if unknown:
        raise ValueError(f"unknown graph arguments {unknown}; known: {list(LAUNCH_ARGUMENTS)}")
    out = {k: d for k, (d, _) in LAUNCH_ARGUMENTS.items()}
    out.update({k: ("" if v is None else str(v)) for k, v in args.items()})
    return out


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ValueError(f"graph argument {name}={value!r}: expected true or false")


def _typed(node: str, params: dict) -> dict:
    """Convert string argument values to the types config/<node>.yaml declares, validated."""
    defs = load_definitions(node)
    out = {}
    for name, raw in params.items():
        d = defs[name]
        value = raw
        if isinstance(raw, str) and d.type != "string":
            value = {"bool": lambda s: _bool(name, s), "int": int, "double": float}[d.type](raw)
        out[name] = d.check(value)
    return out


def resolve_inputs(a: dict[str, str]) -> tuple[list[str], bool]:
    """cameras and depth, with 'auto' replaced by what the policy needs."""
    cameras = [c.strip() for c in a["cameras"].split(",") if c.strip()]
    depth = a["depth"]
    if a["cameras"].strip() == "auto" or depth.strip() == "auto":
        from ros_nodes.policy_io import cameras_and_depth, obs_spec_of
        need_cams, need_depth = cameras_and_depth(obs_spec_of(a["policy"]))
        if a["cameras"].strip() == "auto":
            cameras = need_cams
        if depth.strip() == "auto":
            depth = str(need_depth)
    return cameras, _bool("depth", depth)


def describe(args: dict | None = None) -> Graph:
    a = normalize_args(args)
    cameras, depth = resolve_inputs(a)
    rate = float(a["rate_hz"])
    sim_time = {"use_sim_time": _bool("use_sim_time", a["use_sim_time"])}   # rclpy's own parameter, every node
    inference = NodeSpec(
        name="inference_node", executable="inference_node", module="ros_nodes.inference_node",
        parameters={**sim_time, **_typed("inference_node", {
            "policy": a["policy"], "device": a["device"], "backend": a["backend"], "rate_hz": a["rate_hz"],
            "sampler": a["sampler"], "steps": a["steps"], "policy_seed": a["policy_seed"],
            # Chunk time step = the control period the sim steps at.
            "action_dt_s": repr(1.0 / rate)})})
    nodes = [inference]
    sim = _bool("sim", a["sim"])
    fake_arm = not sim and _bool("fake_arm", a["fake_arm"])
    if sim:
        nodes.insert(0, _sim_node(a, cameras, depth, sim_time, {}))
    else:
        # Real robot: one realsense_node per camera, the arm adapter turning chunks into the arm
        # controller's commands, and, here without an arm, the sim node behind that controller interface.
        arm = a["arm"].strip()
        if arm not in ARM_BACKENDS:
            raise ValueError(f"graph argument arm={arm!r}: expected one of {list(ARM_BACKENDS)}")
        recording = a["camera_recording"].strip()
        real_cameras = [] if fake_arm and not recording else cameras
        nodes += _camera_nodes(real_cameras, a["camera_serials"], recording, depth, sim_time, fake_arm)
        adapter = {"backend": arm,
                   # /ee_pose: the fake arm publishes it from physics; for a real arm the adapter computes
                   # it by forward kinematics from /joint_states.
                   "publish_ee_pose": not fake_arm,
                   # Hold when a camera the policy sees goes stale (the adapter's camera watchdog).
                   "camera_topics": ",".join(f"/{cam}/color/image_raw" for cam in cameras)}
        if fake_arm:
            adapter.update(FAKE_ARM_WORKSPACE)
        if a["calibration_gain"].strip():
            adapter["calibration_gain"] = _gain(a["calibration_gain"])
        nodes.append(NodeSpec(name="arm_adapter", executable="arm_adapter", module="ros_nodes.arm_adapter",
                              parameters={**sim_time, **_typed_if_defined("arm_adapter", adapter)}))
        if fake_arm:
            # Cameras: rendered by the sim (as in the sim graph) unless a recording plays them.
            nodes.insert(0, _sim_node(a, [] if recording else cameras, depth, sim_time, {"arm_interface": arm}))
    # The sim graph (and the fake arm) lives on one machine: keep its traffic there. A real robot spans
    # machines: the user's own ROS_AUTOMATIC_DISCOVERY_RANGE (default SUBNET) applies. Every participant of
    # a graph must agree: LOCALHOST and SUBNET peers did not match under LARGE_DATA in our measurements.
    local = sim or fake_arm
    environment = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"} if local else {}
    if cameras and local:
        # 640x480 frames need large shared-memory buffers (best effort drops ~98% otherwise). Under
        # LOCALHOST, LARGE_DATA still lost about half of them; a profile with a 16 MiB SHM segment
        # delivered all (ros_nodes/transport.py). Every process of the graph loads it.
        environment["FASTDDS_DEFAULT_PROFILES_FILE"] = shm_profile_file()
    elif cameras:
        # Real robot (discovery range SUBNET): Fast DDS's large-data transport.
        environment["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    return Graph(tuple(nodes), environment, lifetime_node="sim_node" if local else None)


def _sim_node(a: dict, cameras: list[str], depth: bool, sim_time: dict, extra: dict) -> NodeSpec:
    return NodeSpec(
        name="sim_node", executable="sim_node", module="ros_nodes.sim_node",
        parameters={**sim_time, **_typed("sim_node", {
            "env": a["env"], "cameras": ",".join(cameras), "depth": str(depth),
            "image_size": a["image_size"], "episodes": a["episodes"], "seed": a["seed"],
            "max_steps": a["max_steps"], "rate_hz": a["rate_hz"], "video_path": a["video_path"],
            "results_file": a["results_file"], "timing": a["timing"], "obs_delay_s": a["obs_delay_s"],
            "action_delay_s": a["action_delay_s"], "delay_jitter": a["delay_jitter"],
            "blend_steps": a["blend_steps"], "real_profile": a["real_profile"], **extra})})


def _gain(text: str) -> list[float]:
    """calibration_gain "g1,...,g6" -> 6 positive floats (a clear error otherwise)."""
    try:
        gain = [float(x) for x in text.replace(" ", ",").split(",") if x]
    except ValueError as exc:
        raise ValueError(f"graph argument calibration_gain={text!r}: {exc}") from exc
    if len(gain) != 6 or not all(g > 0 and g < float("inf") for g in gain):
        raise ValueError(f"graph argument calibration_gain={text!r}: expected 6 positive numbers (x y z roll pitch yaw)")
    return gain


def _camera_nodes(cameras: list[str], serials_arg: str, recording: str, depth: bool, sim_time: dict,
                  fake_arm: bool) -> list[NodeSpec]:
    """One realsense_node per camera, the i-th serial for the i-th camera (or every camera plays the same
    recording). Its `camera` parameter prefixes its topics (/<camera>/color/image_raw, ...), so the nodes
    share the root namespace and are told apart by name: realsense_<camera>."""
    serials = [s.strip() for s in serials_arg.split(",") if s.strip()]
    if not serials:
        if len(cameras) > 1 and not recording:
            raise ValueError(f"cameras {cameras}: give camera_serials (one RealSense serial per camera)")
        serials = [""] * len(cameras)
    if len(serials) != len(cameras):
        raise ValueError(f"camera_serials {serials} do not match cameras {cameras} (one serial per camera)")
    nodes = []
    for cam, serial in zip(cameras, serials):
        params = {"serial": serial, "camera": cam, "align": depth, "recording": recording}
        if fake_arm:
            params["stamp_source"] = "now"     # playback stamps lie in the past; the fake arm's are now
        nodes.append(NodeSpec(name=f"realsense_{cam}", executable="realsense_node", module="ros_nodes.realsense_node",
                              parameters={**_standard_values("realsense_node"), **sim_time,
                                          **_typed_if_defined("realsense_node", params)}))
    return nodes


def _standard_values(node: str) -> dict:
    """config/<node>.yaml's values (for a node whose name differs from its executable; see NodeSpec)."""
    from ros_nodes.params import load_params_file, params_file
    return load_params_file(node) if params_file(node).is_file() else {}


def _typed_if_defined(node: str, params: dict) -> dict:
    """_typed when config/<node>_parameters.yaml exists; the raw strings otherwise (a node another branch
    delivers; test/ros/test_graph.py checks the overrides against its definitions once they are there)."""
    from ros_nodes.params import definitions_file
    return _typed(node, params) if definitions_file(node).is_file() else dict(params)


def process_command(spec: NodeSpec, python: str, overrides_file: str) -> list[str]:
    """argv that starts one of our nodes as `launch_ros.actions.Node` would (name, params, remaps): the
    standard parameter file config/<node>.yaml first, then the graph's overrides (later files win)."""
    if spec.external:
        raise ValueError(f"node {spec.name}: package {spec.package} is external; start it with ros2 launch")
    cmd = [python, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}"]
    if spec.params_file:        # None for a renamed node: the standard values are in its overrides
        cmd += ["--params-file", spec.params_file]
    cmd += ["--params-file", overrides_file]
    if spec.namespace:
        cmd += ["-r", f"__ns:={spec.namespace}"]
    for src, dst in spec.remappings:
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


def params_document(spec: NodeSpec) -> dict:
    """The overrides --params-file content for one node."""
    return {spec.name: {"ros__parameters": dict(spec.parameters)}}
