"""ROS 2 recorder node: raw serialized messages -> one MCAP file per episode (policy_stack.recording).

Subscriptions are `raw=True`: the callback gets the CDR bytes as they came off the wire and only
queues them with their receive time; a writer thread appends them to the open episode's MCAP file, so
a slow disk never blocks the executor, and a full queue drops (and counts) instead of stalling. QoS
adapts per topic like rosbag2: best effort when any publisher is best effort, else reliable.
Episodes follow the teleop node's events on episode_event_topic: start opens one, success / failure
commit it (file renamed into place, then its JSON), rerecord discards it, quit ends the node. A killed
recorder loses only the episode in progress (its temp file is removed at the next start).

Pre-roll: between episodes the last preroll_s of messages are kept; at start, those stamped at or after
the event's stamp_ns join the episode. The teleop node stamps a start that answers an observation with
that observation's stamp, and the observation was published (and may arrive) before the event: it is the
episode's first frame, the reset scene, so it must not depend on arrival order.
"""
from __future__ import annotations

import importlib
import json
import queue
import threading
import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from policy_stack.recording.episode_files import EpisodeMcapWriter, has_header, header_stamp_ns, remove_leftovers
from ros_nodes import convert as C
from ros_nodes.common import DIAGNOSTICS_TOPIC, STATE_QOS, WorkerThreadMixin, declare_parameters, main_for
from ros_nodes.teleop_node import EVENT_QOS

STATUS_NAME = "policy_stack/recorder_node"
RECORD_DEPTH = 100


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    try:
        pkg, kind, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ValueError, ImportError, AttributeError):
        raise ValueError(f"message type {msgtype!r}: not installed here (expected pkg/msg/Type of an installed "
                         "message package)") from None


class RecorderNode(WorkerThreadMixin, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("recorder_node", **kwargs)
        self.p = declare_parameters(self, "recorder_node")
        self.finished, self.exit_code = False, 0
        self._queue: queue.Queue = queue.Queue(maxsize=self.p["queue_size"])
        self._stop = threading.Event()
        self._recording = False
        self._lock = threading.Lock()
        self._subs = []
        self.writer: EpisodeMcapWriter | None = None
        self.dropped: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.committed = 0
        self._episode_info: dict = {}
        self._preroll: deque = deque()      # (topic, cdr, receive ns) while no episode is open
        self._stamped: dict[str, bool] = {}   # topic -> its type has a header (a stamp in the bytes)
        self.create_subscription(String, self.p["episode_event_topic"], self._on_event, EVENT_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STATE_QOS)
        self.create_timer(self.p["diagnostics_period_s"], self._publish_diagnostics)

    # ------------------------------------------------------------------------------ lifecycle
    def autostart(self) -> None:
        if not self.p["autostart"]:
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ValueError(self._config_error or "configure failed")
        self.trigger_activate()

    def on_configure(self, state) -> TransitionCallbackReturn:
        self._config_error = ""
        try:
            topics = self._resolve_topics()
            self.writer = EpisodeMcapWriter(self.p["out_dir"], topics, self.p["compression"])
        except (ValueError, OSError) as exc:
            self._config_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        gone = remove_leftovers(self.p["out_dir"])
        if gone:
            self.get_logger().warning(f"removed {len(gone)} unfinished episode(s) of a killed recording: {gone[:3]}")
        for topic, msgtype in topics.items():
            self._subs.append(self.create_subscription(message_class(msgtype), topic,
                                                       lambda data, t=topic: self._on_message(t, data),
                                                       self._qos_for(topic), raw=True))
        self._stamped = {t: has_header(ty) for t, ty in topics.items()}
        self.dropped = {t: 0 for t in topics}
        self.received = {t: 0 for t in topics}
        self._stop.clear()
        self._thread = threading.Thread(target=self._write_loop, name="recorder", daemon=True)
        self._thread.start()
        self.get_logger().info(f"recording {len(topics)} topics to {self.p['out_dir']}: {sorted(topics)}")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._stop_thread()
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        return TransitionCallbackReturn.SUCCESS

    def _resolve_topics(self) -> dict[str, str]:
        """'name=pkg/msg/Type' as given; bare names: the type their publishers announce (discovery)."""
        topics, unknown = {}, []
        for entry in self.p["topics"]:
            name, _, msgtype = entry.partition("=")
            name = name.strip()
            if msgtype.strip():
                topics[name] = msgtype.strip()
            else:
                unknown.append(name)
        deadline = time.monotonic() + self.p["discovery_timeout_s"]
        while unknown:
            found = dict(self.get_topic_names_and_types())
            for name in list(unknown):
                if found.get(name):
                    topics[name] = found[name][0]
                    unknown.remove(name)
            if not unknown or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if unknown:
            raise ValueError(f"no publisher announced a type for {unknown} within "
                             f"{self.p['discovery_timeout_s']:g} s; give it as name=pkg/msg/Type")
        for name, msgtype in topics.items():
            message_class(msgtype)          # ImportError -> clear error below
        return topics

    def _qos_for(self, topic: str) -> QoSProfile:
        infos = self.get_publishers_info_by_topic(topic)
        best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
        # No publisher yet: best effort matches both kinds of publisher.
        reliability = ReliabilityPolicy.BEST_EFFORT if (best_effort or not infos) else ReliabilityPolicy.RELIABLE
        return QoSProfile(depth=RECORD_DEPTH, reliability=reliability, history=HistoryPolicy.KEEP_LAST,
                          durability=DurabilityPolicy.VOLATILE)

    # ------------------------------------------------------------------------------ callbacks
    def _on_message(self, topic: str, data: bytes) -> None:
        now_ns = time.time_ns()
        if not self._recording:
            if self.p["preroll_s"] > 0:
                with self._lock:
                    self._preroll.append((topic, data, now_ns))
                    self._trim_preroll(now_ns)
            return
        self._enqueue(topic, data, now_ns)

    def _enqueue(self, topic: str, data: bytes, recv_ns: int) -> None:
        self.received[topic] += 1
        try:
            self._queue.put_nowait(("msg", topic, data, recv_ns))
        except queue.Full:
            self.dropped[topic] += 1

    def _trim_preroll(self, now_ns: int) -> None:
        horizon = now_ns - int(self.p["preroll_s"] * 1e9)
        while self._preroll and self._preroll[0][2] < horizon:
            self._preroll.popleft()

    def _flush_preroll(self, start_ns) -> None:
        """At start: the kept messages stamped at or after the start event's stamp join the episode."""
        kept, self._preroll = list(self._preroll), deque()
        if not isinstance(start_ns, int):
            return
        for topic, data, recv_ns in kept:
            stamp = header_stamp_ns(data) if self._stamped.get(topic) else None
            if (stamp if stamp is not None else recv_ns) >= start_ns:
                self._enqueue(topic, data, recv_ns)

    def _on_event(self, msg) -> None:
        try:
            ev = json.loads(msg.data)
            event = ev["event"]
        except (ValueError, KeyError, TypeError):
            self.get_logger().warning(f"ignored episode event {C.clip_text(msg.data)!r}")
            return
        with self._lock:
            if event == "start":
                if self._recording:        # start while recording: the open episode is dropped
                    self._queue.put(("discard",))
                self._recording = True
                self._queue.put(("start", ev))
                self._flush_preroll(ev.get("stamp_ns"))
            elif event in ("success", "failure"):
                if self._recording:
                    self._recording = False
                    self._queue.put(("stop", event == "success", ev))
            elif event == "rerecord":
                if self._recording:
                    self._recording = False
                    self._queue.put(("discard",))
            elif event == "quit":
                self._recording = False
                self._queue.put(("discard",))
                self._queue.put(("quit",))

    # ------------------------------------------------------------------------------ writer thread
    def _write_loop(self) -> None:
        start_info: dict = {}
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            kind = item[0]
            try:
                if kind == "msg" and self.writer.open_episode:
                    self.writer.add(item[1], item[2], item[3])
                elif kind == "start":
                    start_info = item[1]
                    self._drops_at_start = dict(self.dropped)
                    index = self.writer.open()
                    self.get_logger().info(f"episode {index}: recording")
                elif kind == "stop" and self.writer.open_episode:
                    self._commit(item[1], start_info, item[2])
                elif kind == "discard" and self.writer.open_episode:
                    self.get_logger().info(f"episode {self.writer.index}: discarded (re-record)")
                    self.writer.discard()
                elif kind == "quit" and self.p["exit_on_quit"]:
                    self.finished = True
            except OSError as exc:          # disk full, folder gone: say so, keep what is committed
                self.get_logger().error(f"recording failed: {exc}; episode dropped")
                self.writer.discard()
                self.exit_code = 1

    def _commit(self, success: bool, start: dict, stop: dict) -> None:
        p = self.p
        sim_episode = start.get("sim_episode")
        drops = {t: self.dropped[t] - self._drops_at_start.get(t, 0) for t in self.dropped}
        info = {"task": p["task"], "success": bool(success), "notes": p["notes"], "device": p["device"],
                "seed": (p["seed"] + sim_episode) if (p["seed"] >= 0 and sim_episode is not None) else None,
                "sim_episode": sim_episode, "start_ns": start.get("stamp_ns"), "stop_ns": stop.get("stamp_ns"),
                "dropped": drops}
        if info["start_ns"] and info["stop_ns"]:
            info["duration_s"] = round((info["stop_ns"] - info["start_ns"]) * 1e-9, 4)
        path = self.writer.commit(info)
        self.committed += 1
        self.get_logger().info(f"episode {self.writer.index}: {'success' if success else 'failure'}, "
                               f"{sum(self.writer.counts.values())} messages, {sum(drops.values())} dropped -> {path.name}")

    def _wake_worker(self) -> None:
        pass                                 # the writer polls its queue every 0.1 s

    def _publish_diagnostics(self) -> None:
        lifecycle = self._state_machine.current_state[1]
        values = {"lifecycle": lifecycle, "recording": self._recording, "committed": self.committed,
                  "queued": self._queue.qsize(), **{f"dropped.{t}": n for t, n in self.dropped.items()}}
        level = C.OK if not any(self.dropped.values()) else C.WARN
        self.diagnostics_pub.publish(C.diagnostic_array(STATUS_NAME, level, lifecycle, values,
                                                        C.ns_to_stamp(time.time_ns())))

    def close(self) -> None:
        """Stop: the episode in progress is dropped (its temp file removed); committed ones stay."""
        self._recording = False
        self._stop_thread()
        if self.writer is not None and self.writer.open_episode:
            self.writer.discard()


def main(args=None) -> int:
    return main_for(RecorderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
