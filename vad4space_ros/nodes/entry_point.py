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

"""The ``main()`` of every node executable: init, create, spin, clean up, exit code."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

NodeT = TypeVar('NodeT', bound=Node)


def run_node(create: Callable[[], NodeT], args: list[str] | None, *,
             startup_errors: tuple[type[Exception], ...], startup_exit_code: int = 1,
             spin: Callable[[NodeT], None] = rclpy.spin,
             before_destroy: Callable[[NodeT], None] | None = None,
             exit_code: Callable[[NodeT], int] = lambda node: 0) -> int:
    """Run one node in this process and return the executable's exit code.

    ``create`` raising one of ``startup_errors`` returns ``startup_exit_code`` (the node has
    logged why). Otherwise ``spin`` runs until it returns, Ctrl-C or an external shutdown;
    then ``before_destroy`` runs, the node is destroyed, rclpy shut down, and ``exit_code``
    of the node is returned.
    """
    rclpy.init(args=args)
    try:
        node = create()
    except startup_errors:
        rclpy.try_shutdown()
        return startup_exit_code
    try:
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if before_destroy is not None:
            before_destroy(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return exit_code(node)
