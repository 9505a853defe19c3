"""Visual anomaly detection for planetary imagery on ROS 2."""
