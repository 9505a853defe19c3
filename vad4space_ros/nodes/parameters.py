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

"""ROS parameter declarations shared by the nodes: descriptors with ranges, declaring a table.

Light on purpose (no torch, no node code), so configuration files can be checked against the
parameter tables without starting anything.
"""
from __future__ import annotations

from typing import Any, TYPE_CHECKING

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

if TYPE_CHECKING:
    from rclpy.node import Node

# name -> (default, descriptor)
ParameterTable = dict[str, tuple[Any, ParameterDescriptor]]


def parameter_descriptor(description: str, *, read_only: bool = False,
                         floating: tuple[float, float] | None = None,
                         integer: tuple[int, int] | None = None) -> ParameterDescriptor:
    """Describe a parameter, optionally with an inclusive float or integer range."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if floating is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=floating[0], to_value=floating[1], step=0.0)]
    if integer is not None:
        descriptor.integer_range = [
            IntegerRange(from_value=integer[0], to_value=integer[1], step=1)]
    return descriptor


def read_only_descriptor(description: str, *, floating: tuple[float, float] | None = None,
                         integer: tuple[int, int] | None = None) -> ParameterDescriptor:
    """Describe a parameter that takes effect at start only."""
    return parameter_descriptor(description, read_only=True, floating=floating,
                                integer=integer)


def declare_parameters(node: Node, table: ParameterTable) -> dict[str, Any]:
    """Declare every parameter of ``table`` on ``node``; return their values (name -> value)."""
    for name, (default, descriptor) in table.items():
        node.declare_parameter(name, default, descriptor)
    return {name: node.get_parameter(name).value for name in table}
