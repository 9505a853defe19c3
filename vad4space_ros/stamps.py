# Copyright 2026 The vad4space_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Header stamps as integer nanoseconds: the package's one conversion.

Works on rclpy messages and on ``rosbags`` message classes alike (both carry
``header.stamp.sec`` and ``header.stamp.nanosec``), so nodes, bags and tests share it without
importing ROS here.
"""
from __future__ import annotations

from typing import Any

NANOSECONDS_PER_SECOND = 1_000_000_000


def stamp_to_ns(header: Any) -> int:
    """Return the stamp of a ``std_msgs/Header`` (rclpy or rosbags) in nanoseconds."""
    return int(header.stamp.sec) * NANOSECONDS_PER_SECOND + int(header.stamp.nanosec)


def ns_to_sec_nanosec(stamp_ns: int) -> tuple[int, int]:
    """Split nanoseconds into the ``(sec, nanosec)`` fields of ``builtin_interfaces/Time``."""
    if stamp_ns < 0:
        raise ValueError(f'a header stamp cannot be negative, got {stamp_ns} ns')
    sec, nanosec = divmod(int(stamp_ns), NANOSECONDS_PER_SECOND)
    return sec, nanosec
