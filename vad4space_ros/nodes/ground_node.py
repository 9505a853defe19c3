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

"""``vad4space_ground``: the ground receiver; writes every downlinked product into a folder once.

Subscriptions (reliable, keep-all; relative names, remap them or use ``vad4space ground
receive --topic``):

- ``downlink`` ``diagnostic_msgs/DiagnosticArray``: product descriptions from the downlink
  node's ``~/downlink``;
- ``downlink/image`` ``sensor_msgs/CompressedImage``: the product bytes (``~/downlink/image``).

Each product part is written as ``<release_id>-<part>-<kind>.<png|jpg>`` plus a JSON sidecar,
atomically (:class:`vad4space_ros.downlink.ground.GroundFolder`); repeats of a ``release_id.part``
are ignored, also after a restart on the same folder. Bytes whose SHA-256 differs from the
description never match it and are not written. ``vad4space ground report DIR`` draws the
contact sheet of what arrived.
"""
from __future__ import annotations

from collections import Counter
import sys
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage

from vad4space_ros.downlink.ground import Arrival, GroundFolder
from vad4space_ros.nodes.downlink_messages import DOWNLINK_NAME
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.parameters import (
    declare_parameters, ParameterTable, read_only_descriptor)
from vad4space_ros.nodes.ros_conversions import stamp_to_ns

NODE_NAME = 'vad4space_ground'
PARAMETERS: ParameterTable = {
    'output': ('vad4space_ground', read_only_descriptor(
        'Folder the products and their JSON sidecars are written to (created if missing).')),
}


class GroundNode(Node):
    """Receive downlinked products into a :class:`GroundFolder`."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare parameters, open the folder and subscribe."""
        super().__init__(node_name, **kwargs)
        self.settings = declare_parameters(self, PARAMETERS)
        self.folder = GroundFolder(self.settings['output'])
        self.counters: Counter[str] = Counter()
        keep_all = QoSProfile(depth=1, history=HistoryPolicy.KEEP_ALL,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(DiagnosticArray, 'downlink', self._on_description, keep_all)
        self.create_subscription(CompressedImage, 'downlink/image', self._on_image, keep_all)
        self.get_logger().info(f'receiving into {self.folder.folder} '
                               f'({len(self.folder.received)} product(s) already there)')

    def _on_description(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name != DOWNLINK_NAME:
                continue
            description = {pair.key: pair.value for pair in status.values}
            description.update(frame_id=msg.header.frame_id, stamp_ns=stamp_to_ns(msg.header))
            try:
                arrival = self.folder.receive_description(description)
            except (KeyError, ValueError) as error:
                self.counters['malformed'] += 1
                self.get_logger().warning(f'ignored a malformed product description: {error}')
                continue
            self._count(arrival)

    def _on_image(self, msg: CompressedImage) -> None:
        self._count(self.folder.receive_image(msg.header.frame_id, stamp_to_ns(msg.header),
                                              bytes(msg.data)))

    def _count(self, arrival: Arrival) -> None:
        if arrival.repeat:
            self.counters['repeats'] += 1
        if arrival.written:
            self.counters['products'] += 1
            self.get_logger().info(f'wrote {", ".join(p.name for p in arrival.written)} '
                                   f'({self.counters["products"]} product(s) this session, '
                                   f'{self.counters["repeats"]} repeat(s) ignored)')


def main(args: list[str] | None = None) -> int:
    """Run the ground receiver until shutdown."""
    return run_node(GroundNode, args, startup_errors=(OSError, ValueError))


if __name__ == '__main__':
    sys.exit(main())
