"""policy_stack core: torch + numpy only (never imports rclpy, robosuite or pyrealsense2)."""
__version__ = "0.1.0"
