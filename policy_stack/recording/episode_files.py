"""One MCAP file per recorded episode, crash-safely, from raw serialized (CDR) messages.

Layout of a recordings folder:
  episode_000000.mcap   raw messages as they came off the wire (profile ros2, schemas ros2msg, cdr)
  episode_000000.json   task, success, operator notes, seed, message and drop counts
An episode is written under a temp name (`*.tmp`) and renamed at its end (fsync, atomic rename, folder
fsync), then its JSON is written the same way: the JSON is the commit marker. A recording killed
mid-episode leaves only a temp file, which the next recorder start removes; every finished episode
survives. Nothing is re-encoded: the bytes written are the bytes received.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from policy_stack import persist

EPISODE_RE = re.compile(r"^episode_(\d{6})\.json$")
COMPRESSIONS = ("none", "lz4", "zstd")


@functools.lru_cache(maxsize=1)
def typestore():
    """ROS 2 Kilted message definitions (rosbags' bundled typestore)."""
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_KILTED)


@functools.lru_cache(maxsize=None)
def msgdef(msgtype: str) -> str:
    """'sensor_msgs/msg/Image' -> the concatenated .msg text rosbag2 stores as the MCAP schema."""
    from rosbags.typesys import TypesysError
    try:
        return typestore().generate_msgdef(msgtype, ros_version=2)[0]
    except (KeyError, TypesysError):
        raise ValueError(f"unknown message type {msgtype!r} (not in the ROS 2 Kilted typestore)") from None


def has_header(msgtype: str) -> bool:
    return msgdef(msgtype).startswith("std_msgs/Header header")


def header_stamp_ns(cdr: bytes) -> int | None:
    """header.stamp of a CDR message whose first field is a std_msgs/Header (bytes 4..12 after the
    4-byte encapsulation header: int32 sec, uint32 nanosec), without deserializing it."""
    if len(cdr) < 12:
        return None
    little = cdr[1] == 1
    order = "little" if little else "big"
    sec = int.from_bytes(cdr[4:8], order, signed=True)
    nsec = int.from_bytes(cdr[8:12], order)
    return sec * 1_000_000_000 + nsec


def episode_path(folder: Path, index: int, suffix: str) -> Path:
    return Path(folder) / f"episode_{index:06d}{suffix}"


def finished_episodes(folder) -> list[int]:
    """Indices of committed episodes (their JSON exists), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := EPISODE_RE.match(p.name)))


def remove_leftovers(folder) -> list[str]:
    """Temp files of episodes a killed recorder never finished; returns their names."""
    folder = Path(folder)
    gone = []
    for p in folder.glob(f"episode_*{persist.TMP_SUFFIX}"):
        p.unlink(missing_ok=True)
        gone.append(p.name)
    return gone


def read_episode_json(folder, index: int) -> dict:
    return json.loads(episode_path(folder, index, ".json").read_text())


class EpisodeMcapWriter:
    """Writes one episode: open() at its start, add() per message, commit() or discard() at its end."""

    def __init__(self, folder, topics: dict[str, str], compression: str = "none"):
        """topics: {topic name: message type 'pkg/msg/Type'}."""
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression {compression!r}: choose from {list(COMPRESSIONS)}")
        self.folder = persist.make_dirs(Path(folder))
        self.topics = dict(topics)
        for t in self.topics.values():
            msgdef(t)                      # unknown types fail now, not mid-episode
        self.compression = compression
        self._file = self._writer = self._tmp = None
        self.index = None
        self.counts: dict[str, int] = {}
        self.bytes = 0

    @property
    def open_episode(self) -> bool:
        return self._writer is not None

    def next_index(self) -> int:
        done = finished_episodes(self.folder)
        return done[-1] + 1 if done else 0

    def open(self) -> int:
        from mcap.writer import CompressionType, Writer
        if self._writer is not None:
            raise ValueError("an episode is already open")
        self.index = self.next_index()
        final = episode_path(self.folder, self.index, ".mcap")
        self._tmp = persist.temp_name(final)
        self._file = open(self._tmp, "wb")
        self._writer = Writer(self._file, compression=getattr(CompressionType, self.compression.upper()))
        self._writer.start(profile="ros2", library="policy_stack recorder")
        self._channels = {}
        schemas = {}
        for topic, msgtype in self.topics.items():
            if msgtype not in schemas:
                schemas[msgtype] = self._writer.register_schema(name=msgtype, encoding="ros2msg",
                                                                data=msgdef(msgtype).encode())
            self._channels[topic] = self._writer.register_channel(topic=topic, message_encoding="cdr",
                                                                  schema_id=schemas[msgtype])
        self.counts = {t: 0 for t in self.topics}
        self.bytes = 0
        return self.index

    def add(self, topic: str, cdr: bytes, log_time_ns: int) -> None:
        stamp = header_stamp_ns(cdr) if has_header(self.topics[topic]) else None
        n = self.counts[topic]
        self._writer.add_message(self._channels[topic], log_time=log_time_ns, data=bytes(cdr),
                                 publish_time=stamp if stamp is not None and stamp >= 0 else log_time_ns,
                                 sequence=n)
        self.counts[topic] = n + 1
        self.bytes += len(cdr)

    def commit(self, info: dict) -> Path:
        """Finish the file, rename it into place, then write the episode's JSON (the commit point)."""
        self._writer.finish()
        self._file.close()
        final = episode_path(self.folder, self.index, ".mcap")
        persist.commit_file(self._tmp, final)
        doc = {"episode_index": self.index, "file": final.name, "messages": dict(self.counts),
               "payload_bytes": self.bytes, **info}
        persist.write_json_atomic(episode_path(self.folder, self.index, ".json"), doc)
        self._writer = self._file = self._tmp = None
        return final

    def discard(self) -> None:
        """Drop the open episode (re-record, or a stop without a finished episode)."""
        if self._writer is None:
            return
        try:
            self._file.close()
        finally:
            Path(self._tmp).unlink(missing_ok=True)
            self._writer = self._file = self._tmp = None
