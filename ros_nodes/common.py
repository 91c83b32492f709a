"""rclpy plumbing shared by the nodes: parameter declaration from config/*.yaml, QoS, process main."""
from __future__ import annotations

import os
import signal
import sys
import threading
import traceback

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions

from ros_nodes.params import load_definitions
from ros_nodes.transport import freeze_startup_objects, node_process_settings

# Sensor streams: best effort, keep last 5. A best-effort subscriber matches reliable and best-effort
# publishers alike, so the inference node accepts any driver. 640x480 images need large shared-memory
# buffers or best effort drops them: the graph's environment sets them up (ros_nodes/transport.py).
SENSOR_QOS = qos_profile_sensor_data
# Image subscriptions: the same, but keep only the newest frame. The node uses the newest complete
# observation; a deeper queue only lets a node that fell behind convert frames it will never use.
# History depth is local to the subscriber, so this matches every publisher SENSOR_QOS matches.
IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                       durability=DurabilityPolicy.VOLATILE)
# Commands and status: reliable; only the newest chunk matters, so a short queue.
CHUNK_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# A value that holds until replaced (the operator's instruction): the publisher keeps the last one for
# subscribers that join later (a restarted inference node, a monitoring tool), as a latched ROS 1 topic.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
# The standard aggregate topic (diagnostic_aggregator, rqt_robot_monitor read it); fixed by convention.
DIAGNOSTICS_TOPIC = "/diagnostics"

_PTYPE = {"bool": ParameterType.PARAMETER_BOOL, "int": ParameterType.PARAMETER_INTEGER,
          "double": ParameterType.PARAMETER_DOUBLE, "string": ParameterType.PARAMETER_STRING,
          "string_array": ParameterType.PARAMETER_STRING_ARRAY, "double_array": ParameterType.PARAMETER_DOUBLE_ARRAY}


class WorkerThreadMixin:
    """For a managed node whose work runs in one thread (`self._thread`, stop flag `self._stop`): the thread
    is stopped on cleanup, on shutdown and by close(), before the ROS context goes (main_for), so it never
    publishes into a dead context. `_wake_worker()` wakes the thread from whatever it waits on."""

    _thread = None
    _worker_join_s = 10.0

    def _wake_worker(self) -> None:
        raise NotImplementedError

    def _stop_thread(self) -> None:
        self._stop.set()
        self._wake_worker()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=self._worker_join_s)
        self._thread = None

    def on_shutdown(self, state):
        from rclpy.lifecycle import TransitionCallbackReturn
        self._stop_thread()
        return TransitionCallbackReturn.SUCCESS


def declare_parameters(node, definitions: str) -> dict:
    """Declare every parameter of config/<definitions>.yaml on node; return the validated values."""
    values = {}
    for p in load_definitions(definitions).values():
        desc = ParameterDescriptor(name=p.name, type=_PTYPE[p.type], description=p.description,
                                   read_only=p.read_only)
        if p.bounds is not None and p.type == "double":
            desc.floating_point_range = [FloatingPointRange(from_value=float(p.bounds[0]), to_value=float(p.bounds[1]))]
        elif p.bounds is not None and p.type == "int":
            desc.integer_range = [IntegerRange(from_value=int(p.bounds[0]), to_value=int(p.bounds[1]))]
        if p.choices is not None:
            desc.additional_constraints = f"one of {list(p.choices)}"
        node.declare_parameter(p.name, p.default, desc)
        values[p.name] = p.check(node.get_parameter(p.name).value)
    return values


def expand(pattern: str, **names) -> str:
    """'/{camera}/color/image_raw' -> '/agentview/color/image_raw'."""
    return pattern.format(**names)


def spin_in_background(executor, context, name: str = "spin") -> threading.Thread:
    """Spin `executor` on a daemon thread until `context` shuts down; returns the started thread.
    An exception raised while the context is going away (a callback racing the shutdown) ends the
    thread quietly; any other is re-raised."""
    def loop():
        while context.ok():
            try:
                executor.spin_once(timeout_sec=0.05)
            except Exception:
                if not context.ok():
                    return
                raise
    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def make_executor(kind: str | None = None, context=None):
    """The executor for our nodes' callbacks (conversion, services: all short).

    events (default): rclpy's C++ EventsExecutor, single-threaded; measured ~30k msg/s against ~5k for
    the Python executors (docs/background.md) and the lowest loop latency. The nodes' heavy work (inference,
    sim stepping) runs in their own threads, so one callback thread cannot be starved by it.
    multi: MultiThreadedExecutor (callback groups then also separate sensors from services).
    Override with POLICY_STACK_EXECUTOR=events|multi."""
    kind = kind or os.environ.get("POLICY_STACK_EXECUTOR", "events")
    if kind == "events":
        from rclpy.experimental import EventsExecutor
        return EventsExecutor(context=context)
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=4, context=context)
    raise ValueError(f"POLICY_STACK_EXECUTOR={kind!r}: expected events or multi")


def main_for(node_factory, args=None) -> int:
    """Process main: init, build the node, start it (lifecycle autostart), spin until SIGINT / SIGTERM
    or the node says it is finished (`node.finished`), then shut down cleanly. Start-up errors (bad
    parameters, a checkpoint that cannot be loaded at autostart) print one line and exit 2, like the CLI.

    rclpy's own signal handler would shut the context down at once, while the node's worker thread
    (inference, sim stepping) may be publishing: "publisher's context is invalid" tracebacks. Here a
    signal only ends the spin loop; the node's close() stops its threads; then the context goes."""
    node_process_settings()   # GIL switch interval 0.5 ms, glibc buffer reuse for camera frames
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    node = None
    code = 0
    try:
        node = node_factory()
        executor = make_executor()
        executor.add_node(node)
        start = getattr(node, "autostart", None)
        if start is not None:
            start()
        freeze_startup_objects()
        while not stop.is_set() and rclpy.ok() and not getattr(node, "finished", False):
            executor.spin_once(timeout_sec=0.1)
        code = int(getattr(node, "exit_code", 0))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, FileNotFoundError, ParameterException, NameValidationException, RecursionError) as exc:
        # Bad parameters (type, bounds, NaN), an invalid topic name, a checkpoint that cannot be loaded:
        # what the user must fix, in one line (rclpy's own messages can span several).
        text = " ".join(str(exc).split())
        print(f"[{getattr(node_factory, '__name__', 'node')}] error: {text[:500]}", file=sys.stderr, flush=True)
        if "--debug" in sys.argv:
            traceback.print_exc()
        code = 2
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
