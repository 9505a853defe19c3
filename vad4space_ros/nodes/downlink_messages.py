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

"""Messages of the downlink node: product descriptions and images, the ranked queue."""
from __future__ import annotations

from collections import Counter
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from vad4space_ros.downlink.downlink_queue import RankedItem
from vad4space_ros.downlink.schema import RECORD_ONLY
from vad4space_ros.downlink.stored_rows import Release, StoredPart
from vad4space_ros.nodes.ros_conversions import frame_header

DOWNLINK_NAME = 'vad4space/downlink'
QUEUE_NAME = 'vad4space/queue'
QUEUE_ITEM_NAME = 'vad4space/queue_item'


def status_values(pairs: list[tuple[str, Any]]) -> list[KeyValue]:
    """Return (key, value) pairs as KeyValue messages (values as strings)."""
    return [KeyValue(key=key, value=str(value)) for key, value in pairs]


def product_msgs(release: Release, parts: list[StoredPart]
                 ) -> list[tuple[DiagnosticArray, CompressedImage | None]]:
    """Build the ``~/downlink`` description (and image) messages of one release's parts."""
    header = frame_header(release.frame_id, release.stamp_ns)
    common = [('item_id', release.item_id), ('pass_id', release.pass_id),
              ('position', release.position), ('product', release.product),
              ('bytes', release.size), ('priority', repr(release.priority)),
              ('score', repr(release.score)), ('is_anomaly', str(release.is_anomaly).lower()),
              ('model_id', release.model_id), ('method', release.method),
              ('missing', release.missing), ('attempt', release.attempts),
              ('record', release.record_json)]
    messages = []
    for index, part in enumerate(parts or [None]):
        if part is None:  # a full product whose image never arrived: the record alone
            described = [('kind', RECORD_ONLY), ('format', 'json'), ('sha256', ''),
                         ('part_bytes', 0), ('box', ''), ('region_score', '')]
            image = None
        else:
            described = [('kind', part.kind), ('format', part.image_format),
                         ('sha256', part.sha256),
                         ('part_bytes', len(part.data)), ('box', ','.join(map(str, part.box))),
                         ('region_score', '' if part.region_score is None
                          else repr(part.region_score))]
            image = CompressedImage(header=header, format=part.image_format)
            image.data = part.data
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if release.is_anomaly else DiagnosticStatus.OK,
            name=DOWNLINK_NAME, hardware_id=release.model_id, message=described[0][1],
            values=status_values([('release_id', release.release_id), ('part', index),
                                  ('parts', max(1, len(parts))), *described, *common]))
        messages.append((DiagnosticArray(header=header, status=[status]), image))
    return messages


def queue_item_status(entry: RankedItem) -> DiagnosticStatus:
    """Describe one ranked item as a ``~/queue`` status."""
    item = entry.item
    return DiagnosticStatus(
        level=DiagnosticStatus.WARN if item.is_anomaly else DiagnosticStatus.OK,
        name=QUEUE_ITEM_NAME, hardware_id=item.frame_id, message=entry.reason,
        values=status_values([
            ('rank', entry.rank), ('item_id', item.item_id), ('frame_id', item.frame_id),
            ('stamp_ns', item.stamp_ns), ('score', repr(item.score)),
            ('priority', repr(entry.priority)), ('redundancy', f'{entry.redundancy:.4f}'),
            ('similar_to', '' if entry.similar_to is None else entry.similar_to),
            ('bytes', item.product_bytes), ('thumbnail_bytes', item.thumbnail_bytes),
            ('thumbnail_sent', str(item.thumbnail_sent).lower()),
            ('is_anomaly', str(item.is_anomaly).lower())]))


def queue_msg(stamp: Time, node_name: str, summary: dict[str, int], session: Counter[str],
              ranked: list[RankedItem]) -> DiagnosticArray:
    """Build a ``~/queue`` message: the summary and the session counters, then the ranked items."""
    session_values = [(f'session_{name}', count) for name, count in sorted(session.items())]
    status = DiagnosticStatus(
        level=DiagnosticStatus.OK, name=QUEUE_NAME, hardware_id=node_name,
        message=f'{summary["queued"]} queued, {summary["outbox"]} awaiting acknowledgement',
        values=status_values([*summary.items(), *session_values]))
    return DiagnosticArray(header=Header(stamp=stamp),
                           status=[status, *(queue_item_status(entry) for entry in ranked)])
