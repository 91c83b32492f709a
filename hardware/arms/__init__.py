"""Arm adapters: turn the policy's OSC_POSE delta actions into what real arm controllers accept.

No rclpy here (ros_nodes/arm_adapter.py is the thin ROS node). One module per job:
- scaling.py     OSC_POSE delta scales, read from robosuite's shipped controller config
- kinematics.py  Panda forward kinematics and differential IK (pinocchio, urdf/panda.urdf)
- limits.py      commanded-motion limits: workspace box, speed, acceleration, input validation
- watchdog.py    staleness watchdogs (joint states, cameras) and the latched e-stop
- backends.py    servo (twist), jtc (joint trajectory), pose (interpolated Cartesian targets), gripper
- adapter.py     the per-tick loop body shared by all backends (chunk -> safe command)
"""
