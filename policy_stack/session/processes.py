"""Child processes of a session: the `policy-stack` verbs and the ROS probe, run with the repository's python.

Each child gets SIGINT when the session process dies, however it dies (Linux PR_SET_PDEATHSIG), and its
SIGINT handling is restored to Python's default (a shell starting the session in the background hands it
down ignored). `policy-stack up` and `record` stop their node graphs cleanly on SIGINT, so a SIGKILLed
session leaves no orphaned nodes behind; the resumed session then starts its own.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)      # python then installs its KeyboardInterrupt handler
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:       # the session died before prctl ran
        os.kill(os.getpid(), signal.SIGINT)


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]


def cli_cmd(*args) -> list[str]:
    return python_cmd("-m", "policy_stack.cli", *[str(a) for a in args])


def start(cmd: list[str], stdout_path: Path, log_path: Path, env: dict | None = None) -> subprocess.Popen:
    """Start `cmd` in the repository root; stdout (the verb's --json summary) to stdout_path, stderr appended
    to log_path with a header line naming the command."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"\n[session {time.strftime('%H:%M:%S')}] $ {' '.join(cmd)}\n")
    out = open(stdout_path, "w")
    err = open(log_path, "a")
    parent = os.getpid()
    try:
        return subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=dict(os.environ if env is None else env),
                                preexec_fn=lambda: _child_setup(parent))
    finally:
        out.close()
        err.close()


def run(cmd: list[str], stdout_path: Path, log_path: Path, env: dict | None = None, poll=None,
        poll_s: float = 0.5) -> int:
    """Run to the end; `poll()` is called every poll_s meanwhile (and once after the end)."""
    proc = start(cmd, stdout_path, log_path, env)
    try:
        while proc.poll() is None:
            if poll is not None:
                poll()
            time.sleep(poll_s)
    except BaseException:
        proc.send_signal(signal.SIGINT)      # Ctrl-C or an error here: stop the graph cleanly, then go
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if poll is not None:
        poll()
    return proc.returncode


def json_tail(path: Path) -> dict | None:
    """The last JSON object line of a verb's stdout (its --json summary), or None."""
    import json
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def tail(path: Path, n: int = 2000) -> str:
    try:
        return Path(path).read_text()[-n:]
    except OSError:
        return ""
