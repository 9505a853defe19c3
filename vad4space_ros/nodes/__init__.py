"""ROS 2 nodes that wire the core to topics."""
