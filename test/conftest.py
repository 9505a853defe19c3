"""Shared pytest fixtures; importing ros_harness isolates this session on the ROS graph."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import ros_harness


@pytest.fixture
def ros() -> Iterator[ros_harness.RosTestNode]:
    """Yield an rclpy node in the test process, on this session's private domain."""
    with ros_harness.RosTestNode() as test_node:
        yield test_node
