"""Run a `graph.Graph` as child processes: what `ros2 launch` does, for machines without ROS 2 launch.

Each node is `python -m <module> --ros-args -r __node:=<name> --params-file config/<node>.yaml
--params-file <overrides>` in its own session (so a terminal Ctrl-C reaches only the supervisor, which
then stops the nodes in order), with the graph's environment. Output lines are streamed with a
`[node] ` prefix. stop(): SIGINT (the node stops its worker thread, then rclpy shuts down cleanly and
removes its Fast DDS shared-memory files), then SIGKILL after a grace period.
No rclpy here.
"""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from ros_nodes.graph import Graph, params_document, process_command


class GraphProcesses:
    def __init__(self, graph: Graph, run_dir: str | Path, env: dict | None = None, out=None,
                 python: str = sys.executable):
        self.graph, self.run_dir = graph, Path(run_dir)
        self.env = dict(os.environ if env is None else env)
        self.env.update(graph.environment)
        # Children must flush line by line or the streamed logs arrive in bursts at exit.
        self.env.update(PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="1", RCUTILS_COLORIZED_OUTPUT="0")
        self.out = out or sys.stdout
        self.python = python
        self.procs: dict[str, subprocess.Popen] = {}
        self.tails: dict[str, collections.deque] = {}
        self._threads: list[threading.Thread] = []
        self._out_lock = threading.Lock()

    def start(self, only=None) -> "GraphProcesses":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.graph.nodes:
            if spec.external or (only is not None and spec.name not in only):
                continue
            params = self.run_dir / f"{spec.name}.params.yaml"
            params.write_text(yaml.safe_dump(params_document(spec), sort_keys=False))
            cmd = process_command(spec, self.python, str(params))
            proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, text=True, bufsize=1)
            self.procs[spec.name] = proc
            self.tails[spec.name] = collections.deque(maxlen=50)
            t = threading.Thread(target=self._pump, args=(spec.name, proc), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            line = line.rstrip("\n")
            self.tails[name].append(line)
            with self._out_lock:
                print(f"[{name}] {line}", file=self.out, flush=True)

    def poll(self) -> dict[str, int | None]:
        return {name: p.poll() for name, p in self.procs.items()}

    def wait(self, name: str, timeout: float | None = None) -> int | None:
        try:
            return self.procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(sig)

    def stop(self, grace_s: float = 8.0) -> dict[str, int | None]:
        """SIGINT every live node, SIGKILL what is still alive after grace_s. Returns exit codes."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for p in self.procs.values():
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for t in self._threads:
            t.join(timeout=2.0)
        return self.poll()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
