"""Fast DDS transport settings for graphs that carry camera images, and the nodes' process settings
(GIL switch interval, glibc buffer reuse).
No rclpy here (the graph module and the launch file import it).

Why a profile file and not FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA for the sim graph: the sim graph keeps
its traffic on this machine with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, and under LOCALHOST (where
rmw_fastrtps sets the discovery locators itself) LARGE_DATA lost large best-effort samples here: a
640x480 frame arrived 11 times in 100 (one stream) and about half the time (2 cameras x RGB + depth at
20 Hz), with or without LARGE_DATA's max_msg_size/sockets_size options. The same streams with this
profile (shared memory with a 16 MiB segment, plus UDPv4 for discovery) arrived 400 of 400 under
LOCALHOST. What decides delivery is the *publisher's* participant: every process of the graph (and any
test client or bench that publishes images into it) must load it, which FASTDDS_DEFAULT_PROFILES_FILE
in the graph's environment does. A real robot graph (discovery range SUBNET, realsense-ros publishers)
keeps LARGE_DATA. Numbers and method: docs/ros2.md, "Large data".
"""
from __future__ import annotations

import atexit
import gc
import hashlib
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from policy_stack.persist import write_text_atomic


SHM_SEGMENT_BYTES = 16 * 2**20   # holds > 4 frames of 2 x (640x480 rgb8 + 16UC1) in flight

SHM_PROFILE_XML = f"""<?xml version="1.0" encoding="UTF-8" ?>
<!-- policy_stack sim graph: large camera frames over shared memory (ros_nodes/transport.py). -->
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>policy_stack_shm</transport_id>
        <type>SHM</type>
        <segment_size>{SHM_SEGMENT_BYTES}</segment_size>
        <maxMessageSize>{SHM_SEGMENT_BYTES}</maxMessageSize>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>policy_stack_udp</transport_id>
        <type>UDPv4</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="policy_stack_shm_large" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>policy_stack_shm</transport_id>
          <transport_id>policy_stack_udp</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


_private_profile_dir: Path | None = None    # this process's fallback folder (see _private_dir)


def _write_profile(folder: Path, name: str) -> Path:
    """SHM_PROFILE_XML at folder/name, reused if already whole, else written atomically (persist: a
    concurrent writer or reader sees one whole file)."""
    path = folder / name
    if not (path.is_file() and path.read_text() == SHM_PROFILE_XML):
        write_text_atomic(path, SHM_PROFILE_XML)
    return path


def _owned_private(folder: Path) -> bool:
    st = os.lstat(folder)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def _private_dir() -> Path:
    """A folder only this user can write, for when the cache folder is not writable: a policy_stack
    folder in $XDG_RUNTIME_DIR (per-user, mode 0700 by spec) if that exists and checks out, else a
    fresh mkdtemp folder (mode 0700, unpredictable name) removed when this process exits. Never a fixed
    /tmp name: another user could create that first and swap the file between our check and its use."""
    global _private_profile_dir
    if _private_profile_dir is not None and _private_profile_dir.is_dir():
        return _private_profile_dir
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        folder = Path(runtime) / "policy_stack"
        try:
            if _owned_private(Path(runtime)):
                folder.mkdir(mode=0o700, exist_ok=True)
                if _owned_private(folder):
                    _private_profile_dir = folder
                    return folder
        except OSError:
            pass
    folder = Path(tempfile.mkdtemp(prefix="policy_stack-dds-"))
    atexit.register(shutil.rmtree, folder, True)
    _private_profile_dir = folder
    return folder


def shm_profile_file() -> str:
    """Path of SHM_PROFILE_XML on disk (FASTDDS_DEFAULT_PROFILES_FILE needs a file): written once per
    content version into the user's cache folder, or, if that is not writable, into a private folder
    (see _private_dir)."""
    name = f"fastdds_shm_large-{hashlib.sha256(SHM_PROFILE_XML.encode()).hexdigest()[:10]}.xml"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "policy_stack"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        return str(_write_profile(cache, name))
    except OSError:
        pass
    return str(_write_profile(_private_dir(), name))


def node_process_settings() -> bool:
    """The process settings every node's main applies (ros_nodes.common.main_for), and the ROS bench's
    robot side too, so both sides of its comparison run alike. Returns whether tune_malloc applied.

    Python hands the GIL over every 5 ms by default: a thread woken by a message (the inference thread,
    the sim loop) could wait that long while another thread computes; 0.5 ms keeps the loop latency low
    at negligible overhead. tune_malloc: camera frames reuse freed buffers instead of page-faulting new
    ones per message."""
    sys.setswitchinterval(0.0005)
    return tune_malloc()


def freeze_startup_objects() -> None:
    """Move everything built at start-up (the model, torch, message types) out of the garbage
    collector's view. Measured in the inference node: full (generation 2) collections took 25-87 ms
    while these objects were tracked, which mid-run would be a missed control tick; with them frozen a
    full collection only walks what the loop itself allocated. Call once the node is built."""
    gc.collect()
    gc.freeze()


def tune_malloc() -> bool:
    """Keep freed large buffers in the process instead of handing them back to the kernel (glibc).

    A 640x480 frame passes through several ~1 MB buffers per message (DDS history, deserialization,
    Python array); by default glibc returns such blocks to the OS on free, so every message page-faults
    its buffers in again. Measured here for 2 cameras x RGB + depth at 20 Hz: the subscriber took
    230,000 minor page faults and 0.8 s of kernel time per 400 frames, and the 4th frame of a tick
    reached its callback 6.1-6.4 ms (p50) after publish; with these settings 18,000 faults, 0.13-0.2 s and
    0.8 ms. Large tensors in torch benefit the same way: in-process act() of the 640x480 RGB-D bench
    checkpoint took 45-50 ms (3,500-4,000 faults, 10-12.5 ms kernel time per call) and 27-29 ms with
    these settings (94 faults). Cost: freed memory stays resident (it is reused for the next frame). Also used by the
    bench's robot side and in-process timing, so both sides of a comparison run with the same allocator.
    Returns whether it applied (glibc only)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) & bool(libc.mallopt(m_trim_threshold, 256 * 2**20))
    except (OSError, AttributeError):
        return False
