"""Keypoint-conditioned skills: camera geometry (pixel <-> 3-D) and parameterized motion primitives.

Pure numpy (the core never imports a simulator): sim/experts.py and the KITE policy use the same code.
  geometry         project / deproject points with pinhole intrinsics K and a camera pose T_base_cam
  keypoint_skills  keypoint + depth -> Pick / Place (object heading and height from the depth around it)
  primitives       pick / place as small state machines producing OSC_POSE-delta actions
"""
