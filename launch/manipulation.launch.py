"""ROS 2 launch file of the manipulation stack: `ros2 launch policy_stack manipulation.launch.py`.

    ros2 launch policy_stack manipulation.launch.py                      # sim + shipped policy
    ros2 launch policy_stack manipulation.launch.py sim:=false arm:=jtc camera_serials:=S1,S2 \
        cameras:=agentview,robot0_eye_in_hand policy:=/path/ckpt device:=cuda       # real arm + RealSenses
    ros2 launch policy_stack manipulation.launch.py sim:=false fake_arm:=true arm:=servo  # sim arm behind Servo

The node graph itself (which nodes, their parameters and remappings as a function of the arguments)
lives in ros_nodes/graph.py, which `policy-stack up` also runs (as plain processes, on machines
without ROS 2's launch). This file only declares the graph's arguments and turns each NodeSpec into a
launch_ros Node action, so the two front ends cannot describe different graphs
(test/ros/test_graph.py checks it). Each node gets its standard parameter file config/<node>.yaml, then
the graph's overrides. When the sim node exits (its episodes are done, or it failed), the whole launch
shuts down, as `policy-stack up` does; the sim node's exit code is in the shutdown reason (also with
fake_arm:=true, where the sim node stands in for the arm).
"""
import os
import sys

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler, SetEnvironmentVariable
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _graph():
    try:
        from ros_nodes import graph
    except ImportError:  # running from a source checkout: the package root is next to launch/
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
        from ros_nodes import graph
    return graph


def _launch_nodes(context, *args, **kwargs):
    graph = _graph()
    values = {name: LaunchConfiguration(name).perform(context) for name in graph.LAUNCH_ARGUMENTS}
    described = graph.describe(values)
    actions = [SetEnvironmentVariable(name, value) for name, value in described.environment.items()]
    for spec in described.nodes:
        node = Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace,
            parameters=([spec.params_file] if spec.params_file else []) + [dict(spec.parameters)],
            remappings=[tuple(r) for r in spec.remappings],
            output="screen",
            emulate_tty=True,
        )
        actions.append(node)
        if spec.name == described.lifetime_node:
            # The run ends with this node (the sim's episodes): stop the rest of the graph with it.
            actions.append(RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_shutdown)))
    return actions


def _shutdown(event, context):
    return [EmitEvent(event=Shutdown(reason=f"{event.action.name} exited with code {event.returncode}"))]


def generate_launch_description():
    graph = _graph()
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in graph.LAUNCH_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_launch_nodes)])
