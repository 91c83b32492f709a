"""Teleop recordings: one MCAP file of raw ROS 2 messages per episode (episode_files.py), and their
conversion to a LeRobot v3 dataset through a topic-to-feature mapping (mapping.py, align.py,
convert_bag.py). Pure Python: rosbags decodes the CDR bytes; nothing here imports rclpy."""
