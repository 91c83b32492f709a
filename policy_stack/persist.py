"""The one way this stack writes state to disk: crash-safe files and folders. Standard library only.

Every write follows the dataset writer's commit protocol, which gives the same guarantee after a
SIGKILL and after a power loss: a reader finds either the previous complete version or the new one,
never a mix and never a torn file.

  file:   write `<name>.<pid>-<hex>.tmp` -> fsync the file -> os.replace onto `<name>` -> fsync the folder
          (the rename is only durable once the folder holding it is synced)
  folder: fill a hidden temp sibling -> fsync every file and folder inside it -> move the old folder
          aside (if any) -> rename the temp folder into place -> fsync the parent -> delete the old one
  new folders created on the way are fsynced into their parents too (`make_dirs`).

A kill between the two renames of a folder replacement leaves only the moved-aside copy;
`resolve_dir` returns it, so readers always find a complete folder.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from pathlib import Path
from typing import Callable

TMP_SUFFIX = ".tmp"   # temp names end so: never matched by the `*.parquet` / `*.json` globs readers use
_OLD_TAG = ".old-"


def fsync_dir(path: Path) -> None:
    """Make renames and new entries in `path` durable. Best effort where the OS cannot open folders."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_dirs(path: Path) -> Path:
    """mkdir -p, fsyncing each newly created folder's parent so the new entries survive a power loss."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent)
    return path


def temp_name(final: Path) -> Path:
    """A temp file name beside `final`, unique per writer, so concurrent writers never share one."""
    final = Path(final)
    return final.with_name(f"{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def commit_file(tmp: Path, final: Path) -> None:
    """Publish a finished temp file: fsync it, rename it onto `final`, fsync the folder."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(Path(final).parent)


def write_file_atomic(path: Path, fill: Callable[[Path], None]) -> None:
    """fill(tmp) writes the whole file at a temp path beside `path` (any writer: parquet, mp4, ...);
    it is then committed. On any exception the temp file is removed and `path` is untouched."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = temp_name(path)
    try:
        fill(tmp)
        commit_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_file_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj, indent: int | None = 4) -> None:
    """JSON + newline. indent=4 and ensure_ascii=False are what LeRobot writes for its metadata."""
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def copy_atomic(src: Path, dst: Path) -> None:
    write_file_atomic(dst, lambda tmp: shutil.copyfile(src, tmp))


def _fsync_tree(folder: Path) -> None:
    """Every file, then every folder (deepest first), then `folder` itself."""
    dirs = []
    for root, subdirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        dirs.extend(os.path.join(root, d) for d in subdirs)
    for d in sorted(dirs, key=len, reverse=True):
        fsync_dir(Path(d))
    fsync_dir(folder)


def _old_copies(final: Path) -> list[Path]:
    return sorted(final.parent.glob(f".{final.name}{_OLD_TAG}*"))


def write_dir_atomic(final: Path, writer: Callable[[Path], None]) -> Path:
    """writer(tmp) fills an empty temp folder; the folder then replaces `final` atomically.

    The temp folder is a hidden, uniquely named sibling (`.<name>.tmp-<pid>-<hex>`), so two writers
    never share one and `<root>/*` globs never see it. On any exception it is removed and `final` is
    untouched."""
    final = Path(final)
    make_dirs(final.parent)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = final.parent / f".{final.name}{TMP_SUFFIX}-{tag}"
    tmp.mkdir()
    try:
        writer(tmp)
        _fsync_tree(tmp)
        if final.exists():
            old = final.parent / f".{final.name}{_OLD_TAG}{tag}"
            os.replace(final, old)         # rename(2) cannot replace a non-empty folder
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)
                raise
            fsync_dir(final.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
            fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for stale in _old_copies(final):      # a previous writer killed after its second rename
        shutil.rmtree(stale, ignore_errors=True)
    return final


def resolve_dir(final: Path) -> Path:
    """The complete copy of a folder written by write_dir_atomic: `final`, or the moved-aside old copy
    when a kill hit between the two renames."""
    final = Path(final)
    if final.is_dir():
        return final
    old = _old_copies(final)
    if old:
        return old[-1]
    raise FileNotFoundError(f"no folder at {final}")


def remove_leftovers(root: Path) -> None:
    """Delete the temp folders of writers killed mid-write directly under `root`."""
    for p in Path(root).glob(f".*{TMP_SUFFIX}-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ snapshot folders
# One layout for every resumable run (training and RL sessions):
#     <root>/<name>/    one complete snapshot per save, written with write_dir_atomic; names sort by age
#     <root>/latest     text: the newest complete snapshot's name, replaced only after it is complete
LATEST = "latest"


# Fault injection for crash tests: KILL_AT_ENV="<point>:<n>" SIGKILLs this process the n-th time it
# reaches <point>, so a test kills a run at a known state instead of racing it with a timer.
# Points: "snapshot-written" (the folder is complete, `latest` not yet moved), "snapshot-published".
KILL_AT_ENV = "POLICY_STACK_KILL_AT"
_points_reached: dict[str, int] = {}


def fault_point(point: str) -> None:
    spec = os.environ.get(KILL_AT_ENV, "")
    name, _, count = spec.partition(":")
    if name != point:
        return
    _points_reached[point] = _points_reached.get(point, 0) + 1
    if _points_reached[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def publish_snapshot(root: Path, name: str, keep: int = 2) -> Path:
    """Point `<root>/latest` at the finished snapshot `<root>/<name>`, then keep only the newest `keep`
    snapshots (0 = keep all) and delete the temp folders of writers killed mid-save."""
    root = Path(root)
    fault_point("snapshot-written")
    write_text_atomic(root / LATEST, name + "\n")
    fault_point("snapshot-published")
    snaps = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in snaps[:-keep] if keep > 0 else []:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    remove_leftovers(root)
    return root / name


def latest_snapshot_dir(root: Path) -> Path | None:
    """The snapshot `<root>/latest` names (see resolve_dir), or None when nothing was published yet."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    try:
        return resolve_dir(pointer.parent / name)
    except FileNotFoundError:
        return pointer.parent / name        # callers name what is missing
