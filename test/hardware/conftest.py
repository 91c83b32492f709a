"""pyrealsense2 carries its own (older) Fast DDS. A process that loads pyrealsense2 BEFORE rclpy and then
uses rclpy dies with SIGSEGV at exit (measured with pyrealsense2 2.59.1 and the Kilted rclpy wheels;
rclpy first is fine). pytest runs these tests in the same process as the ROS tests, so rclpy is
imported here, at collection, before any test loads pyrealsense2 (hardware/realsense imports it lazily)."""
import rclpy  # noqa: F401
