"""ROS 2 RealSense RGB-D camera node: a drop-in for realsense-ros's topics, on hardware/realsense/.

Publishes per frame pair, with ONE stamp and the frame id <camera>_color_optical_frame on all four:
  <camera>/aligned_depth_to_color/image_raw     16UC1 millimetres
  <camera>/color/camera_info, <camera>/aligned_depth_to_color/camera_info   color intrinsics + distortion
  <camera>/color/image_raw                      rgb8 (last: it is the inference node's default anchor,
                                                so the rest of the frame is there when it lands)
(align false: <camera>/depth/image_rect_raw and depth/camera_info, frame <camera>_depth_optical_frame.)
Topic names are relative, so a node namespace prefixes them as realsense-ros's camera_namespace does.

Managed (lifecycle) node: configure opens the camera or recording (a CameraError there is the one-line
start-up error: no device, serial not found, recording missing, unsupported profile) and starts the
capture thread; activate publishes; deactivate keeps capturing (the camera's queue stays drained) but
publishes nothing; cleanup stops the stream. `~/enable` (std_srvs/SetBool) switches publishing on and
off while active, like realsense-ros's. /diagnostics: fps, drops, skipped pairs, stalls and publish
latency (librealsense hand-over -> the last of the four messages published) over the last period.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import SetBool

from ros_nodes import convert as C
from ros_nodes.common import DIAGNOSTICS_TOPIC, SENSOR_QOS, STATE_QOS, WorkerThreadMixin, declare_parameters, main_for

STATUS_NAME = "policy_stack/realsense_node"


def stamp_from_device_ms(ms: float) -> Time:
    return C.ns_to_stamp(int(round(ms * 1e6)))


class RealSenseNode(WorkerThreadMixin, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("realsense_node", **kwargs)
        from hardware.realsense.filters import parse_filters
        from hardware.realsense.source import CameraSettings

        p = self.p = declare_parameters(self, "realsense_node")
        self.use_sim_time = bool(self.get_parameter("use_sim_time").value)
        camera = p["camera"].strip("/")
        if not camera:
            raise ValueError("parameter 'camera': empty camera name")
        self.settings = CameraSettings(serial=p["serial"], width=p["width"], height=p["height"], fps=p["fps"],
                                       align=p["align"], recording=p["recording"], real_time=p["real_time"],
                                       playback_rate=p["playback_rate"], filters=parse_filters(p["filters"]))
        name = camera.split("/")[-1]
        self.color_frame = f"{name}_color_optical_frame"
        depth_kind = "aligned_depth_to_color" if p["align"] else "depth"
        self.depth_frame = self.color_frame if p["align"] else f"{name}_depth_optical_frame"
        self.topics = {"color": f"{camera}/color/image_raw", "color_info": f"{camera}/color/camera_info",
                       "depth": f"{camera}/{depth_kind}/" + ("image_raw" if p["align"] else "image_rect_raw"),
                       "depth_info": f"{camera}/{depth_kind}/camera_info"}
        # Images best effort (the stack's sensor QoS: a slow subscriber never stalls the camera); camera
        # info reliable, which best-effort and reliable subscribers (realsense-ros's default) both match.
        self.color_pub = self.create_publisher(Image, self.topics["color"], SENSOR_QOS)
        self.depth_pub = self.create_publisher(Image, self.topics["depth"], SENSOR_QOS)
        self.color_info_pub = self.create_publisher(CameraInfo, self.topics["color_info"], STATE_QOS)
        self.depth_info_pub = self.create_publisher(CameraInfo, self.topics["depth_info"], STATE_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STATE_QOS)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)

        self.source = None
        self._stop = threading.Event()
        self._active = threading.Event()      # lifecycle active
        self._enabled = threading.Event()     # ~/enable
        if p["start_enabled"]:
            self._enabled.set()
        self._config_error = ""
        self._stamp_source = ""               # device | now, decided at the first frame (auto)
        self._lock = threading.Lock()         # the counters below, shared with the diagnostics timer
        self._published = 0
        self._stalls = 0
        self._latencies_ms: list[float] = []  # this diagnostics period's
        self._window = (time.monotonic(), 0)  # (start, published count at start)
        self._last_frame_mono = time.monotonic()

    # ------------------------------------------------------------------------------ lifecycle
    def autostart(self) -> None:
        """Without a lifecycle manager: configure and activate now; a camera that cannot be opened is a
        start-up error (ValueError: one line, exit 2)."""
        if not self.p["autostart"]:
            self.get_logger().info("autostart false: waiting for the lifecycle configure transition")
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ValueError(self._config_error or "configure failed")
        self.trigger_activate()

    def on_configure(self, state) -> TransitionCallbackReturn:
        from hardware.realsense.errors import CameraError
        from hardware.realsense.source import RealSenseSource

        self._config_error = ""
        try:
            self.source = RealSenseSource(self.settings).start()
        except CameraError as exc:
            self._config_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            self.source = None
            return TransitionCallbackReturn.FAILURE
        for w in self.source.warnings:
            self.get_logger().warning(w)
        self.get_logger().info(f"streaming {self.source.description}; publishing {self.topics['color']} and "
                               f"{self.topics['depth']} (+ camera_info), frame {self.color_frame}")
        self._color_info = self.source.color_intrinsics.as_dict()
        self._stop.clear()
        self._last_frame_mono = time.monotonic()
        self._worker_join_s = self.p["frame_timeout_s"] + 5.0   # the thread notices _stop after a read
        self._thread = threading.Thread(target=self._loop, name="realsense", daemon=True)
        self._thread.start()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self._active.set()
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._active.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._stop_thread()
        return super().on_cleanup(state)

    def _wake_worker(self) -> None:
        pass                                  # the capture thread waits at most frame_timeout_s

    def _stop_thread(self) -> None:
        super()._stop_thread()
        self._active.clear()
        if self.source is not None:
            self.source.stop()
            self.source = None

    def close(self) -> None:
        self._stop_thread()

    # ------------------------------------------------------------------------------ capture thread
    def _loop(self) -> None:
        source, timeout = self.source, self.p["frame_timeout_s"]
        while not self._stop.is_set():
            try:
                frame = source.read(timeout)
            except RuntimeError as exc:        # librealsense: device unplugged, USB error
                if self._stop.is_set():
                    return
                self.get_logger().error(f"camera read failed: {exc}", throttle_duration_sec=1.0)
                time.sleep(0.1)
                continue
            now = time.monotonic()
            if frame is None:
                if now - self._last_frame_mono > timeout:
                    with self._lock:
                        self._stalls += 1
                    self.get_logger().warning(f"no frame for {now - self._last_frame_mono:.1f} s "
                                              f"({source.description})", throttle_duration_sec=2.0)
                continue
            self._last_frame_mono = now
            if self._active.is_set() and self._enabled.is_set() and not self._stop.is_set():
                self._publish(frame)

    def _stamp(self, frame) -> Time:
        if not self._stamp_source:
            wanted = self.p["stamp_source"]
            if wanted == "auto":
                wanted = "device" if (not self.settings.recording and frame.domain == "global_time") else "now"
            elif wanted == "device" and frame.domain != "global_time":
                self.get_logger().warning(f"stamp_source device: the camera's clock is {frame.domain}, not the "
                                          "host's (enable global time), so stamps will not compare with ROS time")
            self._stamp_source = wanted
            self.get_logger().info(f"stamps: {wanted} (camera clock {frame.domain})")
        if self._stamp_source == "device":
            return stamp_from_device_ms(frame.device_ms)
        if self.use_sim_time:
            return self.get_clock().now().to_msg()
        return C.ns_to_stamp(frame.arrival_ns)

    def _publish(self, frame) -> None:
        stamp = self._stamp(frame)
        depth_info = self._color_info if self.settings.align else self.source.depth_intrinsics.as_dict()
        self.depth_pub.publish(C.depth_mm_to_image(frame.depth_mm, stamp, self.depth_frame))
        self.depth_info_pub.publish(C.camera_info_msg(depth_info, stamp, self.depth_frame))
        self.color_info_pub.publish(C.camera_info_msg(self._color_info, stamp, self.color_frame))
        self.color_pub.publish(C.rgb_to_image(frame.color, stamp, self.color_frame))
        latency_ms = (time.monotonic_ns() - frame.arrival_mono_ns) * 1e-6
        with self._lock:
            self._published += 1
            self._latencies_ms.append(latency_ms)

    # ------------------------------------------------------------------------------ services, status
    def _on_enable(self, request, response):
        if request.data:
            self._enabled.set()
        else:
            self._enabled.clear()
        lifecycle = self._state_machine.current_state[1]
        self.get_logger().info(f"enable -> {bool(request.data)} (lifecycle {lifecycle})")
        response.success = True
        response.message = f"enabled={bool(request.data)}" + ("" if lifecycle == "active" else
                                                              f"; publishes once active (now {lifecycle})")
        return response

    def _publish_diagnostics(self) -> None:
        lifecycle = self._state_machine.current_state[1]
        now = time.monotonic()
        with self._lock:
            start, count0 = self._window
            published, lat, stalls = self._published, self._latencies_ms, self._stalls
            self._latencies_ms, self._window = [], (now, published)
        fps = (published - count0) / max(now - start, 1e-6)
        src = self.source
        values = {"lifecycle": lifecycle, "enabled": self._enabled.is_set(), "fps": fps,
                  "frames_published": published, "drops": src.drops if src else 0,
                  "unpaired_skipped": src.unpaired if src else 0, "recording_loops": src.loops if src else 0,
                  "stalls": stalls, "stamp_source": self._stamp_source or self.p["stamp_source"],
                  "latency_ms.p50": float(np.percentile(lat, 50)) if lat else float("nan"),
                  "latency_ms.p95": float(np.percentile(lat, 95)) if lat else float("nan"),
                  "latency_ms.max": float(max(lat)) if lat else float("nan"),
                  "latency_frames": len(lat), "source": src.description if src else ""}
        stalled = src is not None and now - self._last_frame_mono > self.p["frame_timeout_s"]
        if self._config_error:
            level, message = C.ERROR, f"{lifecycle}: {self._config_error}"
        elif stalled:
            level, message = C.WARN, f"{lifecycle}: no frame for {now - self._last_frame_mono:.1f} s"
        else:
            level, message = (C.OK if lifecycle == "active" else C.WARN), lifecycle
        self.diagnostics_pub.publish(C.diagnostic_array(STATUS_NAME, level, message, values,
                                                        self.get_clock().now().to_msg(),
                                                        hardware_id=src.serial if src else ""))


def main(args=None) -> int:
    return main_for(RealSenseNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
