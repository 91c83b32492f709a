"""One writer per dataset: an exclusive flock on `<root>/meta/.writer.lock`, held for the writer's life.

Why a lock: `dataset repair` (which is a writer reopening the folder) treats whatever lies past the
commit point as debris of a killed writer and deletes it. While another process is still writing,
that debris is its in-progress episode, so a second writer must be refused, not allowed to "clean up".

flock(2) belongs to the open file and dies with the process: a SIGKILLed writer never leaves a stale
lock behind, and no pid-file guessing is needed. The lock file itself stays (empty or naming the last
holder's pid); its presence means nothing. The pid is written only to make the refusal message useful.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_PATH = "meta/.writer.lock"


class DatasetLockedError(ValueError):
    """Another process holds the dataset's writer lock."""


class DatasetLock:
    """Exclusive, non-blocking writer lock on a dataset folder (created if needed)."""

    def __init__(self, root):
        self._fd: int | None = None
        self.path = Path(root) / LOCK_PATH
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            who = "another DatasetWriter in this process (close() it first)" if holder == str(os.getpid()) \
                else f"another process (pid {holder})"
            raise DatasetLockedError(
                f"{Path(root)}: {who} is writing this dataset; wait for it to finish "
                f"(collect, convert and repair each need it alone)") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)           # closing the last descriptor drops the flock

    def __del__(self):
        self.release()
