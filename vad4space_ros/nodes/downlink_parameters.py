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

"""Parameters of the downlink node: names, defaults, descriptions and ranges (all read-only).

Kept apart from the node so configuration files can be checked without starting anything
(:func:`check_node_settings` rejects values outside the allowed choices). The policy knobs come
from :class:`~vad4space_ros.downlink.policy.DownlinkPolicy`.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from vad4space_ros.downlink.policy import DownlinkPolicy
from vad4space_ros.downlink.products import IMAGE_FORMATS
from vad4space_ros.downlink.schema import SYNCHRONOUS_MODES
from vad4space_ros.nodes.parameters import ParameterTable, read_only_descriptor

NODE_PARAMETERS: ParameterTable = {
    'autostart': (True, read_only_descriptor(
        'Configure and activate at start like a plain node; false: stay unconfigured until '
        'a lifecycle manager calls configure (lifecycle_msgs/ChangeState).')),
    'database': ('~/.ros/vad4space_downlink.db', read_only_descriptor(
        'SQLite file of the persistent queue (created if missing; its directory must exist). '
        'The node refuses to start if it is corrupt, truncated, foreign, read-only, an empty '
        'file it did not create, or used by another process; the file is left unchanged.')),
    'synchronous': ('FULL', read_only_descriptor(
        'SQLite synchronous mode: FULL (fsync at every commit, survives power loss) or NORMAL '
        '(survives a killed process, not a power loss).')),
    'image_format': ('png', read_only_descriptor(
        'Encoding of the frame or region crops: png (lossless) or jpeg.')),
    'thumbnail_format': ('jpeg', read_only_descriptor('Thumbnail encoding: jpeg or png.')),
    'thumbnail_source': ('heatmap', read_only_descriptor(
        'Thumbnail made from the heatmap or the image topic.')),
    'thumbnail_max_side': (128, read_only_descriptor(
        'Longer side of a thumbnail in pixels.', integer=(1, 4096))),
    'jpeg_quality': (90, read_only_descriptor('JPEG quality.', integer=(1, 100))),
    'image_cache_frames': (32, read_only_descriptor(
        'Frames (and heatmaps) kept until their detection arrives, and detections kept waiting '
        'for a late image.', integer=(1, 10000))),
    'image_qos': ('sensor_data', read_only_descriptor(
        'Reliability of the image/heatmap subscriptions: sensor_data (best effort; matches any '
        'camera) or reliable (only reliable publishers; no frame lost on a loaded link).')),
    'detection_queue_depth': (1000, read_only_descriptor(
        'Depth of the reliable detection subscription: records that wait while the node is busy '
        '(20 s at 50 Hz) instead of being overwritten.', integer=(1, 100000))),
    'image_queue_depth': (10, read_only_descriptor(
        'Depth of the image/heatmap subscriptions (frames waiting while the node is busy).',
        integer=(1, 10000))),
    'intake_buffer': (1000, read_only_descriptor(
        'Detections (and late images) buffered for the intake thread; when full, new ones are '
        'dropped, counted (intake_overflow) and logged.', integer=(1, 1000000))),
    'commit_group': (32, read_only_descriptor(
        'Most detections committed in one transaction (one fsync) by the intake thread.',
        integer=(1, 10000))),
    'queue_publish_period_s': (1.0, read_only_descriptor(
        'Seconds between ~/queue updates (only when changed).', floating=(0.01, 3600.0))),
    'queue_publish_limit': (50, read_only_descriptor(
        'Items listed in each ~/queue message.', integer=(1, 100000))),
    'maintenance_period_s': (10.0, read_only_descriptor(
        'Seconds between TTL sweeps.', floating=(0.01, 86400.0))),
    'publish_batch': (50, read_only_descriptor(
        'Releases published before waiting (without blocking) for acknowledgement.',
        integer=(1, 100000))),
    'ack_timeout_s': (5.0, read_only_descriptor(
        'Seconds to wait for the consumer to acknowledge a batch; unacknowledged products '
        'stay in the outbox and are retried.', floating=(0.01, 3600.0))),
    'outbox_retry_period_s': (2.0, read_only_descriptor(
        'Seconds between attempts to publish a non-empty outbox.', floating=(0.01, 3600.0))),
}
_POLICY_DESCRIPTIONS = DownlinkPolicy.descriptions()
PARAMETERS: ParameterTable = {
    **{item.name: (item.default, read_only_descriptor(_POLICY_DESCRIPTIONS[item.name]))
       for item in fields(DownlinkPolicy)},
    **NODE_PARAMETERS}


def check_node_settings(settings: dict[str, Any]) -> None:
    """Reject node-level parameter values that cannot work (ValueError)."""
    choices = [('synchronous', SYNCHRONOUS_MODES), ('image_format', IMAGE_FORMATS),
               ('thumbnail_format', IMAGE_FORMATS),
               ('thumbnail_source', ('heatmap', 'image')),
               ('image_qos', ('sensor_data', 'reliable'))]
    for name, allowed in choices:
        if settings[name] not in allowed:
            raise ValueError(f'parameter {name} must be one of {allowed}, '
                             f'got {settings[name]!r}')
