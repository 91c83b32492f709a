"""Intel RealSense RGB-D capture and playback on pyrealsense2, without ROS.

- `source.RealSenseSource`: a live camera (chosen by serial) or a librealsense recording (.db3, or a
  legacy .bag) played back, delivering color (rgb8) and depth aligned to color (uint16 millimetres)
  with the color intrinsics, optionally through librealsense's depth filters.
- `synth.synthesize`: writes a recording with known intrinsics, a plane at a known depth and a colour
  pattern (tests, the camera benchmark, `policy-stack camera synth`).

ros_nodes/realsense_node.py is the thin ROS 2 node on top of this.
"""
from hardware.realsense.errors import CameraError

__all__ = ["CameraError"]
