"""Intel RealSense RGB-D capture and playback on pyrealsense2, without ROS.

- `source.RealSenseSource`: a live camera (chosen by serial) or a librealsense recording (.db3, or a
  legacy .bag) played back, delivering color (rgb8) and depth aligned to color (uint16 millimetres)
  with the color intrinsics, optionally through librealsense's depth filters.
- `synth.synthesize`: writes a recording with known intrinsics, a plane at a known depth and a colour
  pattern (tests, the camera benchmark, `policy-stack camera synth`).

ros_nodes/realsense_node.py is the thin ROS 2 node on top of this.

pyrealsense2 is imported lazily (only when a camera or recording is opened). It bundles its own, older
Fast DDS: a process that imports pyrealsense2 BEFORE rclpy and then uses rclpy crashes (SIGSEGV) when it
exits, while rclpy first is fine (pyrealsense2 2.59.1, Kilted wheels). A process that needs both
(the node, a test, a benchmark) imports rclpy first.
"""
from hardware.realsense.errors import CameraError

__all__ = ["CameraError"]
