"""Static checks: launch/manipulation.launch.py and `policy-stack up` describe the same node graph, every
executable they name exists, and every node parameter is documented in config/*.yaml.

ROS 2's `launch`/`launch_ros` are not installable here, so the launch file is executed against small
stand-ins for the five classes it uses; they record the actions, which are then compared with the
processes `up` would start for the same arguments.
"""
import argparse
import ast
import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import yaml

from ros_nodes import graph as G
from ros_nodes.launcher import GraphProcesses
from ros_nodes.params import load_definitions
from ros_nodes.transport import SHM_PROFILE_XML

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "manipulation.launch.py"

STANDIN_RGBD = f"pyfile:{REPO / 'test' / 'ros' / 'standin_policy.py'}:make_rgbd"
os.environ["POLICY_STACK_ALLOW_PYFILE_POLICY"] = "1"   # cameras=auto below builds the stand-in to read its obs_spec
CASES = [
    {"cameras": "", "depth": "false"},
    {"policy": STANDIN_RGBD},        # cameras/depth auto -> agentview + depth, from the policy's obs_spec
    {"cameras": "agentview,robot0_eye_in_hand", "depth": "true", "episodes": "3", "device": "cpu", "seed": "7"},
    {"sim": "false", "cameras": "agentview", "depth": "true", "policy": "/ckpt", "device": "cuda", "backend": "onnx"},
    # The real-robot graph: two cameras by serial, the jtc adapter; and with the sim node as a fake arm.
    {"sim": "false", "arm": "jtc", "camera_serials": "111,222", "cameras": "agentview,robot0_eye_in_hand",
     "depth": "true", "policy": "/ckpt"},
    {"sim": "false", "fake_arm": "true", "arm": "servo", "cameras": "", "depth": "false"},
    {"sim": "false", "fake_arm": "true", "arm": "jtc", "cameras": "agentview", "depth": "false",
     "camera_recording": "/data/lift.db3"},
]


def _stub_launch_modules():
    """Minimal launch / launch_ros stand-ins with the constructor signatures the launch file uses."""
    class Action:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration(Action):
        def perform(self, context):
            return context[self.args[0]]

    launch = types.ModuleType("launch")
    launch.LaunchDescription = type("LaunchDescription", (Action,), {})
    actions = types.ModuleType("launch.actions")
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable", "RegisterEventHandler",
                 "EmitEvent"):
        setattr(actions, name, type(name, (Action,), {}))
    handlers = types.ModuleType("launch.event_handlers")
    handlers.OnProcessExit = type("OnProcessExit", (Action,), {})
    events = types.ModuleType("launch.events")
    events.Shutdown = type("Shutdown", (Action,), {})
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = LaunchConfiguration
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = type("Node", (Action,), {})
    return {"launch": launch, "launch.actions": actions, "launch.event_handlers": handlers, "launch.events": events,
            "launch.substitutions": subs, "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


def _run_launch_file(monkeypatch, overrides: dict, with_actions: bool = False):
    """Load the launch file, then evaluate it as `ros2 launch ... k:=v` would. Returns (args, nodes, env)
    (and the raw actions with with_actions)."""
    for name, module in _stub_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("manipulation_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    context = {**declared, **overrides}
    opaque = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    assert len(opaque) == 1
    actions = opaque[0].kwargs["function"](context)
    nodes = [a.kwargs for a in actions if type(a).__name__ == "Node"]
    env = {a.args[0]: a.args[1] for a in actions if type(a).__name__ == "SetEnvironmentVariable"}
    if with_actions:
        return declared, nodes, env, actions
    return declared, nodes, env


def test_launch_folder_has_no_init_py():
    # launch/__init__.py would shadow ROS 2's `launch` package for anything run from the repo root.
    assert not (REPO / "launch" / "__init__.py").exists()


def test_launch_file_uses_the_shared_graph_module():
    tree = ast.parse(LAUNCH_FILE.read_text())
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert {"describe", "LAUNCH_ARGUMENTS"} <= names
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert {"Node", "DeclareLaunchArgument", "LaunchConfiguration"} <= imported
    # No node or parameter is spelled out in the launch file itself.
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not literals & {"inference_node", "sim_node", "ros_nodes.inference_node", "ros_nodes.sim_node"}


@pytest.mark.parametrize("overrides", CASES)
def test_launch_file_and_graph_module_agree(monkeypatch, overrides):
    declared, nodes, env = _run_launch_file(monkeypatch, overrides)
    assert declared == {k: d for k, (d, _) in G.LAUNCH_ARGUMENTS.items()}
    graph = G.describe(overrides)
    assert env == graph.environment
    if overrides.get("policy") == STANDIN_RGBD:
        assert graph.node("sim_node").parameters["cameras"] == "agentview"
        assert graph.node("sim_node").parameters["depth"] is True
    want = [dict(package=n.package, executable=n.executable, name=n.name, namespace=n.namespace,
                 parameters=([n.params_file] if n.params_file else []) + [dict(n.parameters)],
                 remappings=list(n.remappings)) for n in graph.nodes]
    got = [{k: v for k, v in n.items() if k not in ("output", "emulate_tty")} for n in nodes]
    assert got == want


def test_up_starts_the_launch_file_graph(monkeypatch, tmp_path):
    """`up` flags -> graph args -> processes: same executables, names and parameters as the launch file."""
    from policy_stack.cli import up
    parser = argparse.ArgumentParser()
    up.add_arguments(parser)
    args = parser.parse_args(["--env", "stack", "--episodes", "2", "--cameras", "agentview", "--depth", "true",
                              "--device", "cpu", "--seed", "3"])
    gargs = up.graph_args(args)
    _, launch_nodes, launch_env = _run_launch_file(monkeypatch, gargs)

    started = []
    monkeypatch.setattr("subprocess.Popen", lambda cmd, **kw: started.append((cmd, kw)) or _FakeProc())
    procs = GraphProcesses(G.describe(gargs), tmp_path, env={}).start()
    assert len(started) == len(launch_nodes) == 2
    for (cmd, kw), node in zip(started, launch_nodes):
        module = cmd[cmd.index("-m") + 1]
        assert module == f"ros_nodes.{node['executable']}"
        assert f"__node:={node['name']}" in cmd
        files = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--params-file"]
        # The standard file first, then the overrides: the same list the launch file gives launch_ros.
        assert files[0] == node["parameters"][0] == str(REPO / "config" / f"{node['executable']}.yaml")
        params = yaml.safe_load(Path(files[1]).read_text())
        assert params == {node["name"]: {"ros__parameters": node["parameters"][1]}}
        for k, v in launch_env.items():
            assert kw["env"][k] == v
    # Sim graph with cameras: LOCALHOST discovery + the large shared-memory profile (LARGE_DATA lost
    # about half of the 640x480 frames under LOCALHOST, ros_nodes/transport.py).
    env = procs.graph.environment
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]).read_text() == SHM_PROFILE_XML
    assert "FASTDDS_BUILTIN_TRANSPORTS" not in env


def test_real_robot_graph_starts_cameras_adapter_and_inference():
    """sim:=false arm:=jtc camera_serials:=S1,S2: one realsense_node per serial (the i-th serial for the
    i-th camera), the adapter with that backend, the inference node; nothing ends the graph but the operator."""
    g = G.describe(CASES[4])
    assert sorted(n.name for n in g.nodes) == ["arm_adapter", "inference_node", "realsense_agentview",
                                                "realsense_robot0_eye_in_hand"]
    cams = {n.parameters["camera"]: n for n in g.nodes if n.executable == "realsense_node"}
    assert cams["agentview"].parameters["serial"] == "111" and cams["robot0_eye_in_hand"].parameters["serial"] == "222"
    assert all(n.parameters["align"] is True and n.parameters["recording"] == "" for n in cams.values())
    # Renamed nodes get their standard file's values inline (a parameter file applies by node name).
    assert cams["agentview"].params_file is None and "fps" in cams["agentview"].parameters
    adapter = g.node("arm_adapter")
    assert adapter.parameters["backend"] == "jtc" and adapter.parameters["publish_ee_pose"] is True
    assert adapter.parameters["camera_topics"] == "/agentview/color/image_raw,/robot0_eye_in_hand/color/image_raw"
    assert "workspace_min" not in adapter.parameters      # a real arm: the deployment's own box
    assert g.lifetime_node is None and "ROS_AUTOMATIC_DISCOVERY_RANGE" not in g.environment


def test_fake_arm_graph_puts_the_sim_node_behind_the_controller_interface():
    g = G.describe(CASES[5])
    assert sorted(n.name for n in g.nodes) == ["arm_adapter", "inference_node", "sim_node"]
    assert g.node("sim_node").parameters["arm_interface"] == "servo" == g.node("arm_adapter").parameters["backend"]
    adapter = g.node("arm_adapter").parameters
    assert adapter["publish_ee_pose"] is False     # the sim publishes /ee_pose
    # The sim's table top is below the base frame's origin: the box must reach it (the cube rests there).
    assert adapter["workspace_min"][2] < -0.09 < adapter["workspace_max"][2]
    assert g.lifetime_node == "sim_node" and g.environment["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    # With a recording, realsense_node plays it and the sim renders no camera.
    g = G.describe(CASES[6])
    assert g.node("sim_node").parameters["cameras"] == "" and g.node("sim_node").parameters["arm_interface"] == "jtc"
    cam = g.node("realsense_agentview")
    assert cam.parameters["recording"] == "/data/lift.db3" and cam.parameters["stamp_source"] == "now"


@pytest.mark.parametrize("bad,match", [({"arm": "moveit"}, "arm='moveit'"),
                                       ({"camera_serials": "1,2", "cameras": "agentview"}, "do not match"),
                                       ({"cameras": "agentview,robot0_eye_in_hand"}, "give camera_serials")])
def test_real_robot_graph_rejects_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        G.describe({"sim": "false", "depth": "false", "cameras": "", **bad})


def test_up_real_runs_the_fake_arm_graph(monkeypatch):
    from policy_stack.cli import up
    parser = argparse.ArgumentParser()
    up.add_arguments(parser)
    args = parser.parse_args(["--real", "--arm", "fake-jtc", "--cameras", "", "--depth", "false"])
    gargs = up.graph_args(args)
    assert (gargs["sim"], gargs["fake_arm"], gargs["arm"]) == ("false", "true", "jtc")
    _, launch_nodes, _ = _run_launch_file(monkeypatch, gargs)
    assert sorted(n["name"] for n in launch_nodes) == ["arm_adapter", "inference_node", "sim_node"]
    g = G.describe(gargs)
    assert g.node("sim_node").parameters["arm_interface"] == "jtc" == g.node("arm_adapter").parameters["backend"]


def test_up_starts_renamed_camera_nodes_with_their_standard_values_inline(monkeypatch, tmp_path):
    started = []
    monkeypatch.setattr("subprocess.Popen", lambda cmd, **kw: started.append(cmd) or _FakeProc())
    GraphProcesses(G.describe(CASES[6]), tmp_path, env={}).start()
    cam = next(cmd for cmd in started if "__node:=realsense_agentview" in cmd)
    files = [cam[i + 1] for i, a in enumerate(cam) if a == "--params-file"]
    assert len(files) == 1            # no standard file: it would not apply to this node name
    params = yaml.safe_load(Path(files[0]).read_text())["realsense_agentview"]["ros__parameters"]
    assert params["recording"] == "/data/lift.db3" and "fps" in params


def test_real_robot_graph_with_cameras_uses_large_data():
    env = G.describe({"sim": "false", "cameras": "agentview", "depth": "true"}).environment
    assert env == {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}   # discovery range: the user's own


class _FakeProc:
    stdout = iter(())

    def poll(self):
        return 0


def _console_scripts():
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == "console_scripts":
                    return dict(s.value.replace(" ", "").split("=", 1) for s in v.elts)
    return {}


@pytest.mark.parametrize("overrides", CASES)
def test_every_executable_exists(overrides):
    scripts = _console_scripts()
    setup_text = (REPO / "setup.py").read_text()
    for node in G.describe(overrides).nodes:
        if node.external:
            # Another package's executable (realsense2_camera): installed with that package on the robot.
            assert node.package != G.PACKAGE
            continue
        assert importlib.util.find_spec(node.module) is not None, node.module
        assert callable(getattr(importlib.import_module(node.module), "main"))
        assert scripts.get(node.executable) == f"{node.module}:main", f"console script {node.executable}"
        wrapper = REPO / "ros_nodes" / "bin" / node.executable       # `ros2 run policy_stack <exe>`
        assert wrapper.is_file() and os.access(wrapper, os.X_OK)
        assert f"from {node.module} import main" in wrapper.read_text()
        assert f"ros_nodes/bin/{node.executable}" in setup_text


def test_every_parameter_is_documented():
    for node in ("inference_node", "sim_node"):
        text = (REPO / "config" / f"{node}_parameters.yaml").read_text()
        raw = yaml.safe_load(text)[node]
        for name, d in load_definitions(node).items():
            assert {"type", "default_value", "description"} <= set(raw[name]), name
            assert len(d.description) > 15, f"{node}.{name}: describe meaning and units"
            if d.type in ("int", "double") and name not in ():
                assert d.bounds is not None, f"{node}.{name}: numeric parameter without bounds"
    # Overrides the graph passes are declared parameters of the node (typos would be silently ignored).
    for overrides in CASES:
        for n in G.describe(overrides).nodes:
            if not n.external:
                assert set(n.parameters) - {"use_sim_time"} <= set(load_definitions(n.executable)), n.name


def test_unknown_graph_argument_is_an_error():
    with pytest.raises(ValueError, match="unknown graph arguments"):
        G.describe({"camera": "agentview"})




def test_launch_shuts_the_graph_down_when_the_sim_node_exits(monkeypatch):
    """ros2 launch would otherwise keep the inference node running after the sim's last episode."""
    _, nodes, _, actions = _run_launch_file(monkeypatch, {}, with_actions=True)
    node_actions = [a for a in actions if type(a).__name__ == "Node"]
    sim = next(a for a in node_actions if a.kwargs["name"] == "sim_node")
    handlers = [a.args[0] for a in actions if type(a).__name__ == "RegisterEventHandler"]
    assert len(handlers) == 1
    on_exit = handlers[0]
    assert type(on_exit).__name__ == "OnProcessExit" and on_exit.kwargs["target_action"] is sim
    # What the handler emits when the sim exits with code 3: a Shutdown whose reason carries the code.
    event = types.SimpleNamespace(action=types.SimpleNamespace(name="sim_node"), returncode=3)
    emitted = on_exit.kwargs["on_exit"](event, None)
    assert [type(a).__name__ for a in emitted] == ["EmitEvent"]
    shutdown = emitted[0].kwargs["event"]
    assert type(shutdown).__name__ == "Shutdown" and "code 3" in shutdown.kwargs["reason"]
    # A real-robot graph has no sim node: nothing ends it but the operator.
    _, _, _, actions = _run_launch_file(monkeypatch, {"sim": "false", "cameras": ""}, with_actions=True)
    assert not [a for a in actions if type(a).__name__ == "RegisterEventHandler"]


def test_standard_parameter_files_match_the_definitions(tmp_path):
    """config/<node>.yaml is a plain ROS 2 parameter file whose every value its definition accepts."""
    from ros_nodes.params import load_params_file, params_file
    for node in ("inference_node", "sim_node"):
        raw = yaml.safe_load(params_file(node).read_text())
        assert list(raw) == [node] and list(raw[node]) == ["ros__parameters"]
        values = load_params_file(node)
        assert set(values) - {"use_sim_time"} == set(load_definitions(node)), node
    bad = tmp_path / "bad_params.yaml"
    bad.write_text(yaml.safe_dump({"sim_node": {"ros__parameters": {"rate_hzz": 20.0}}}))
    with pytest.raises(ValueError, match="not defined"):
        load_params_file("sim_node", bad)
    bad.write_text(yaml.safe_dump({"sim_node": {"ros__parameters": {"rate_hz": 0.0}}}))
    with pytest.raises(ValueError, match="outside"):
        load_params_file("sim_node", bad)
