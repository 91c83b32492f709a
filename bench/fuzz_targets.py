"""More fuzz targets for bench/bench_fuzz.py: damaged checkpoints against the CLI, and malformed
observation messages against a running inference node.

checkpoint: a copy of the shipped default checkpoint, 1-3 mutations (truncate / flip bytes of any file,
  hostile values in config.json or normalization.json fields, delete a file, deep JSON nesting), then
  `policy-stack checkpoint info` (every check the loader makes). Survives: exit 0 or 2, no traceback,
  one line of error.
node: ONE inference node process (test stand-in RGB-D policy: every input kind subscribed) for the whole
  run; each case publishes one observation at 20 Hz, clean or with 1-3 parts damaged (NaN/Inf, wrong
  encoding or size, oversized, wrong or long frame_id, future or past stamps, duplicate or missing joint
  names, bad quaternion, megabyte strings). Checked per case: the node is alive; no chunk carries the
  stamp of a damaged observation (no command from invalid data); every chunk is finite and within the
  action bounds. Clean observations keep it working (it must answer them again).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bench.bench_fuzz import FuzzTarget, damage_file, register, run_cli

REPO = Path(__file__).resolve().parents[1]
HOSTILE = (-1, 0, 1, 3, 10**9, 10**12, -10**12, 0.5, float("nan"), float("inf"), -float("inf"), True, None, "",
           "x" * 100_000, [], [1, 2], {}, {"a": 1}, [float("nan")] * 7, [1.0] * 7, [-1.0] * 7)


@register
class CheckpointTarget(FuzzTarget):
    name = "checkpoint"
    COMMANDS = ("checkpoint info",)

    def prepare(self, workdir: Path) -> None:
        from policy_stack.checkpoint import DEFAULT_CHECKPOINT
        self.template = workdir / "template"
        shutil.copytree(DEFAULT_CHECKPOINT, self.template)

    def _mutate(self, rng, root: Path) -> str:
        files = sorted(p for p in root.iterdir() if p.is_file())
        if not files:
            return "no files left"
        kind = ("truncate", "flip_bytes", "edit_json", "edit_json", "edit_json", "delete", "deep")[rng.integers(7)]
        jsons = [p for p in files if p.suffix == ".json"]
        if kind in ("edit_json", "deep") and jsons:
            path = jsons[rng.integers(len(jsons))]
            try:
                obj = json.loads(path.read_text())
            except (ValueError, RecursionError):
                return f"{kind} {path.name}: not JSON any more"
            if kind == "deep":
                path.write_text('{"a": ' * 50_000 + "1" + "}" * 50_000)
                return f"deep nesting in {path.name}"
            keys, node = [], obj
            while isinstance(node, dict) and node and (not keys or rng.random() < 0.6):
                key = sorted(node)[rng.integers(len(node))]
                keys.append(key)
                node = node[key]
            if not keys:
                return f"edit_json {path.name}: nothing to edit"
            parent = obj
            for k in keys[:-1]:
                parent = parent[k]
            if rng.random() < 0.1:
                del parent[keys[-1]]
                desc = f"edit_json {path.name}: delete {'/'.join(keys)}"
            elif isinstance(parent[keys[-1]], list) and parent[keys[-1]] and rng.random() < 0.5:
                lst = parent[keys[-1]]
                i = int(rng.integers(len(lst)))
                lst[i] = HOSTILE[rng.integers(len(HOSTILE))]
                desc = f"edit_json {path.name}: {'/'.join(keys)}[{i}] = {json.dumps(lst[i])[:40]}"
            else:
                parent[keys[-1]] = HOSTILE[rng.integers(len(HOSTILE))]
                desc = f"edit_json {path.name}: {'/'.join(keys)} = {json.dumps(parent[keys[-1]])[:40]}"
            path.write_text(json.dumps(obj))
            return desc
        path = files[rng.integers(len(files))]
        return damage_file(rng, path, kind, path.name)

    def run_case(self, rng, case_dir: Path, timeout_s: float) -> dict:
        root = case_dir / "ckpt"
        shutil.copytree(self.template, root)
        mutations = [self._mutate(rng, root) for _ in range(int(rng.integers(1, 4)))]
        commands = [run_cli(["checkpoint", "info", str(root)], timeout_s)]
        return {"mutations": mutations, "commands": commands, "survived": all(c["ok"] for c in commands), "lost": []}


@register
class NodeTarget(FuzzTarget):
    """Malformed observations at 20 Hz against one inference node process (see module doc)."""
    name = "node"
    COMMANDS = ()
    PERIOD_S = 0.05
    FAULTS = ("nan_joint", "inf_pose", "wrong_encoding", "wrong_size", "huge", "wrong_frame", "long_frame",
              "future_stamp", "past_stamp", "duplicate_joint", "missing_joint", "bad_quaternion", "long_encoding",
              "nan_depth_info", "negative_size")

    def prepare(self, workdir: Path) -> None:
        sys.path.insert(0, str(REPO / "test" / "ros"))
        os.environ["POLICY_STACK_ALLOW_PYFILE_POLICY"] = "1"
        os.environ.setdefault("ROS_DOMAIN_ID", str(200 + os.getpid() % 30))
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        from ros_testlib import ObservationPublisher, RosClient, image_transport_env, node_env, standin, start_graph
        from trajectory_msgs.msg import JointTrajectory
        os.environ.update(image_transport_env())
        self.procs = start_graph({"policy": standin("make_rgbd"), "cameras": "agentview", "depth": "true"},
                                 node_env(dict(os.environ), large_data=True), workdir / "node", only={"inference_node"},
                                 overrides={"inference_node": {"max_message_bytes": 2_000_000}})
        self.client = RosClient("fuzz_client")
        self.client.record(JointTrajectory, "/policy/action_chunk")
        self.pub = ObservationPublisher(self.client)
        self.bad: set[tuple[int, int]] = set()
        self.next_t = time.monotonic()
        self.seen = 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not self._chunks():
            self.pub.publish()
            time.sleep(self.PERIOD_S)
        if not self._chunks():
            raise RuntimeError("the inference node never answered a clean observation")

    def _chunks(self):
        return [m for m in self.client.received("/policy/action_chunk") if m.points]

    def _publish(self, rng, faults: list[str]) -> tuple[int, int]:
        from builtin_interfaces.msg import Time
        from ros_nodes import convert as C
        now = time.time()
        if "future_stamp" in faults:
            now += float(rng.choice([0.5, 5.0, 3600.0, 10**6]))
        if "past_stamp" in faults:
            now -= float(rng.choice([0.5, 5.0, 3600.0]))
        sec, nsec = divmod(int(now * 1e9), 1_000_000_000)
        stamp = Time(sec=sec, nanosec=nsec)
        p = self.pub
        s = p.size
        names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
        pos = np.r_[np.zeros(7), 0.02, 0.02]
        if "nan_joint" in faults:
            pos[int(rng.integers(9))] = float(rng.choice([np.nan, np.inf, -np.inf]))
        if "duplicate_joint" in faults:
            names, pos = names + [names[int(rng.integers(9))]], np.r_[pos, 0.5]
        if "missing_joint" in faults:
            k = int(rng.integers(7, 9))
            names, pos = names[:k] + names[k + 1:], np.delete(pos, k)
        p.joint.publish(C.joint_state_msg(names, pos, stamp))
        frame = {"wrong_frame": "world", "long_frame": "f" * 1_000_000}.get(
            next((f for f in faults if f in ("wrong_frame", "long_frame")), ""), "panda_link0")
        ee = C.pose_msg([0.56, 0.0, 0.09], [1.0, 0.0, 0.0, 0.0], stamp, frame)
        if "inf_pose" in faults:
            ee.pose.position.x = float(rng.choice([np.nan, np.inf]))
        if "bad_quaternion" in faults:
            ee.pose.orientation.w, ee.pose.orientation.x = 0.0, float(rng.choice([0.0, 7.0, np.nan]))
        p.ee.publish(ee)
        p.cube.publish(C.pose_msg([0.61, 0.0, -0.09], [1.0, 0.0, 0.0, 0.0], stamp, "panda_link0"))
        info = C.camera_info_msg({"K": [[50, 0, 41.5], [0, 50, 41.5], [0, 0, 1]], "width": s, "height": s}, stamp, "cam")
        if "nan_depth_info" in faults:
            info.k[0] = float("nan")
        p.info.publish(info)
        p.depth.publish(C.depth_to_image(np.ones((s, s), np.float32), stamp, "cam"))
        rgb = np.zeros((s, s, 3), np.uint8)
        if "wrong_size" in faults:
            rgb = np.zeros((s - 20, s, 3), np.uint8)
        if "huge" in faults:
            rgb = np.zeros((1024, 1024, 3), np.uint8)
        img = C.rgb_to_image(rgb, stamp, "cam")
        if "wrong_encoding" in faults:
            img.encoding = str(rng.choice(["bgr8", "mono8", "16UC1", ""]))
        if "long_encoding" in faults:
            img.encoding = "x" * 1_000_000
        if "negative_size" in faults:
            img.height = 2**32 - 1
        p.rgb.publish(img)
        return stamp.sec, stamp.nanosec

    def run_case(self, rng, case_dir: Path, timeout_s: float) -> dict:
        faults = [] if rng.random() < 0.4 else sorted({self.FAULTS[i] for i in rng.integers(0, len(self.FAULTS),
                                                                                             int(rng.integers(1, 4)))})
        delay = self.next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.next_t = max(self.next_t + self.PERIOD_S, time.monotonic())
        stamp = self._publish(rng, faults)
        if faults:
            self.bad.add(stamp)
        alive = self.procs.poll()["inference_node"] is None
        chunks = self._chunks()
        new, self.seen = chunks[self.seen:], len(chunks)
        from_bad = [m for m in new if (m.header.stamp.sec, m.header.stamp.nanosec) in self.bad]
        wild = [m for m in new if not all(np.isfinite(pt.positions).all() and np.all(np.abs(pt.positions) <= 1.0 + 1e-6)
                                          for pt in m.points)]
        why = None if alive else "node died"
        why = why or (f"{len(from_bad)} chunk(s) answering a damaged observation" if from_bad else None)
        why = why or (f"{len(wild)} chunk(s) non-finite or out of bounds" if wild else None)
        return {"mutations": faults or ["clean"], "commands": [{"argv": ["node"], "rc": 0, "ok": why is None,
                                                                 "why": why}], "survived": why is None, "lost": []}

    def finish(self) -> dict:
        """After the last case: give chunks in flight time to land, check once more, stop the node."""
        time.sleep(1.0)
        chunks = self._chunks()
        from_bad = [m for m in chunks if (m.header.stamp.sec, m.header.stamp.nanosec) in self.bad]
        answered = len(chunks)
        self.client.close()
        codes = self.procs.stop()
        return {"node_exit_code": codes.get("inference_node"), "chunks": answered,
                "chunks_answering_damaged_observations": len(from_bad), "damaged_observations": len(self.bad)}
