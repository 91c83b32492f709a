"""Recorded bags -> a LeRobot v3 dataset (policy_stack.data.DatasetWriter), one episode per bag.

Inputs: a recordings folder (episode_NNNNNN.mcap with their JSON), single .mcap files, or rosbag2
folders (metadata.yaml with .mcap or .db3 storage); rosbags' AnyReader reads all of them. Per episode:
collect the mapped topics' raw messages with their stamps (header.stamp read straight from the CDR
bytes; the log time for messages without a header), lay frames out with align.py (anchor topic or a
fixed clock, latest message at or before each frame, within max_age_s), decode only the messages that
end up in a frame, and append the episode. Task and success come from the episode's JSON when present.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from policy_stack.recording import align
from policy_stack.recording.episode_files import EPISODE_RE, has_header, header_stamp_ns
from policy_stack.recording.mapping import Mapping, extract


def list_episodes(inputs) -> list[Path]:
    """Episode bags in input order; a recordings folder contributes its committed episodes in order."""
    out = []
    for p in map(Path, inputs):
        if p.is_file():
            out.append(p)
        elif (p / "metadata.yaml").is_file():
            out.append(p)                                            # a rosbag2 folder
        elif p.is_dir():
            committed = sorted(int(m.group(1)) for q in p.iterdir() if (m := EPISODE_RE.match(q.name)))
            found = [p / f"episode_{i:06d}.mcap" for i in committed if (p / f"episode_{i:06d}.mcap").is_file()]
            found += sorted(q for q in p.iterdir() if q.is_dir() and (q / "metadata.yaml").is_file())
            if not found:
                found = sorted(p.glob("*.mcap"))
            if not found:
                raise FileNotFoundError(f"{p}: no episode_*.mcap (with its JSON), .mcap files or rosbag2 folders in it")
            out += found
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


def read_streams(path: Path, topics) -> dict[str, dict]:
    """{topic: {"stamps": int64 ns (sorted), "raw": [bytes], "msgtype"}} for the topics present."""
    from rosbags.highlevel import AnyReader
    from policy_stack.recording.episode_files import typestore
    streams: dict[str, dict] = {}
    with AnyReader([path], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if c.topic in set(topics)]
        for conn, log_ns, raw in reader.messages(connections=conns):
            s = streams.setdefault(conn.topic, {"stamps": [], "raw": [], "msgtype": conn.msgtype})
            stamp = header_stamp_ns(raw) if has_header(conn.msgtype) else None
            s["stamps"].append(stamp if stamp is not None and stamp > 0 else log_ns)
            s["raw"].append(bytes(raw))
        for s in streams.values():
            order = np.argsort(np.asarray(s["stamps"], np.int64), kind="stable")
            s["stamps"] = np.asarray(s["stamps"], np.int64)[order]
            s["raw"] = [s["raw"][i] for i in order]
    return streams


def episode_frames(path: Path, mapping: Mapping) -> tuple[dict, dict]:
    """(frames {env key: stacked array}, report {frames, gaps, dropped, frame_stamps_ns})."""
    from policy_stack.recording.episode_files import typestore
    ts = typestore()
    streams = read_streams(path, mapping.topics)
    # A `prefer` source may be silent for a whole episode (an operator who never took over).
    optional = {f.prefer.topic for f in mapping.features if f.prefer} - {f.topic for f in mapping.features}
    missing = [t for t in mapping.topics if t not in streams and t not in optional]
    if missing:
        raise ValueError(f"{path}: no messages on {missing} (topics there: {sorted(streams)})")
    max_age = int(mapping.max_age_s * 1e9)
    gaps = repeats = 0
    if mapping.anchor:
        picks, gaps, repeats = align.anchor_frames(streams[mapping.anchor]["stamps"], mapping.fps, max_age)
        frame_ns = streams[mapping.anchor]["stamps"][picks]
    else:
        first = max(int(s["stamps"][0]) for s in streams.values())
        last = max(int(s["stamps"][-1]) for s in streams.values())
        frame_ns = align.clock_frames(first, last, mapping.fps)
    decoded: dict[tuple, object] = {}

    def message(topic, i):
        if (topic, i) not in decoded:
            s = streams[topic]
            decoded[(topic, i)] = ts.deserialize_cdr(s["raw"][i], s["msgtype"])
        return decoded[(topic, i)]

    def value_at(f, t: int):
        """The feature's value at frame time t, or None (no message within its max age)."""
        if f.prefer is not None and f.prefer.topic in streams:
            v = value_at(f.prefer, t)
            if v is not None:
                return v
        s = streams[f.topic]
        age = max_age if f.max_age_s is None else int(f.max_age_s * 1e9)
        i = align.latest_at_or_before(s["stamps"], t, age)
        if i is None:
            return None
        msg = message(f.topic, i)
        if f.chunk_time:     # the point planned for time t: stamp + time_from_start <= t, the latest
            k = align.chunk_point_at(s["stamps"][i], [p.time_from_start.sec * 1_000_000_000 + p.time_from_start.nanosec
                                                      for p in msg.points], t)
            if k is None:
                return None
            f = replace(f, field=re.sub(r"^points\[\d+\]", f"points[{k}]", f.field))
        return extract(msg, f)

    rows, kept_ns, dropped = [], [], {}
    for t in frame_ns:
        row = {}
        for f in mapping.features:
            v = value_at(f, int(t))
            if v is None and f.default is not None and int(t) < streams[f.topic]["stamps"][0]:
                row[f.key] = np.asarray(f.default, bool if isinstance(f.default, bool) else np.float32)
                continue
            if v is None:
                dropped[f.key] = dropped.get(f.key, 0) + 1
                row = None
                break
            row[f.key] = v
        if row is not None:
            rows.append(row)
            kept_ns.append(int(t))
        if len(decoded) > 64:           # keep memory flat: frames move forward in time
            decoded.clear()
    if not rows:
        raise ValueError(f"{path}: no complete frame (missing within max_age_s {mapping.max_age_s:g} s: {dropped})")
    frames = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    report = {"frames": len(rows), "grid_gaps": gaps, "repeated": repeats, "dropped": dropped,
              "first_ns": kept_ns[0], "last_ns": kept_ns[-1], "frame_stamps_ns": kept_ns}
    return frames, report


def _episode_json(path: Path) -> dict:
    import json
    side = path.with_suffix(".json")
    if path.is_file() and side.is_file():
        try:
            return json.loads(side.read_text())
        except ValueError:
            return {}
    return {}


def convert(inputs, mapping: Mapping, out, task: str | None = None, robot_type: str = "panda",
            progress=None) -> dict:
    """Append every episode of `inputs` to the dataset at `out` (created if needed). Returns a summary."""
    from policy_stack.data.writer import DatasetWriter
    episodes = list_episodes(inputs)
    writer = None
    reports = []
    try:
        for path in episodes:
            frames, report = episode_frames(path, mapping)
            meta = _episode_json(path)
            n = report["frames"]
            done = np.zeros(n, bool)
            done[-1] = True
            frames["done"] = done
            if "success" not in frames:
                success = np.zeros(n, bool)
                success[-1] = bool(meta.get("success", False))
                frames["success"] = success
            else:
                frames["success"] = frames["success"].astype(bool).reshape(n)
            ep_task = meta.get("task") or task or mapping.task or "teleop"
            if writer is None:
                features = {k: tuple(v.shape[1:]) for k, v in frames.items()}
                writer = DatasetWriter(out, fps=mapping.fps, features=features, robot_type=robot_type)
            index = writer.add_episode(frames, task=ep_task)
            reports.append({"episode": index, "source": str(path), "task": ep_task,
                            "success": meta.get("success"), "seed": meta.get("seed"),
                            **{k: v for k, v in report.items() if k != "frame_stamps_ns"},
                            "duration_s": round((report["last_ns"] - report["first_ns"]) * 1e-9, 4)})
            if progress is not None:
                progress(reports[-1])
    finally:
        if writer is not None:
            writer.close()
    return {"out": str(out), "episodes": len(reports), "frames": sum(r["frames"] for r in reports),
            "fps": mapping.fps, "reports": reports}
