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

"""Product bytes over DDS: downlink node -> ground receiver node, with regions and QoS."""
from __future__ import annotations

import json
from pathlib import Path
import sqlite3

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.qos import qos_profile_sensor_data
import ros_harness
from sensor_msgs.msg import Image
from std_msgs.msg import UInt64
from test_downlink_core import basis, record
from test_downlink_node import detection_msg, header_of, NODE, parameters, RELIABLE

from vad4space_ros.deploy.records import Region

DOWNLINK = ros_harness.node_command('vad4space_downlink', 'vad4space_ros.nodes.downlink_node')
GROUND = ros_harness.node_command('vad4space_ground', 'vad4space_ros.nodes.ground_node')
GROUND_TOPICS = {'downlink': f'{NODE}/downlink', 'downlink/image': f'{NODE}/downlink/image'}


def rgb_msg(rec, seed: int, height: int = 48, width: int = 64) -> Image:
    """Return a random rgb8 frame carrying the record's header."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image(header=header_of(rec), height=height, width=width, encoding='rgb8',
                 step=3 * width, data=pixels.tobytes())


def stored_parts(database: Path) -> dict[tuple[str, str, int], bytes]:
    """{(frame_id, kind, part): bytes} of every stored product part."""
    with sqlite3.connect(f'file:{database}?mode=ro', uri=True) as connection:
        rows = connection.execute('SELECT i.frame_id, p.kind, p.part, p.data FROM products p '
                                  'JOIN items i ON i.id = p.item_id').fetchall()
    return {(frame, kind, part): bytes(data) for frame, kind, part, data in rows}


def item_sizes(database: Path) -> dict[str, int]:
    """{frame_id: stored bytes of its full product}."""
    with sqlite3.connect(f'file:{database}?mode=ro', uri=True) as connection:
        return dict(connection.execute('SELECT frame_id, product_bytes FROM items'))


def ground_parts(folder: Path) -> dict[tuple[str, str, int], bytes]:
    """{(frame_id, kind, part index within its kind): bytes} of the image files received."""
    received = {}
    for sidecar in folder.glob('*.json'):
        description = json.loads(sidecar.read_text())
        if description.get('file'):
            box = description['box']
            received[(description['frame_id'], description['kind'], box)] = (
                folder / description['file']).read_bytes()
    return received


def test_products_reach_the_ground_byte_identical_with_regions_and_best_effort_images(
        tmp_path: Path) -> None:
    database, folder = tmp_path / 'queue.db', tmp_path / 'ground'
    whole = record(1, 0.9, basis(1))
    with_regions = record(2, 0.8, basis(2))
    with_regions.regions = [Region(4, 6, 20, 10, 0.95), Region(40, 30, 24, 18, 0.7)]
    blind = record(3, 0.7, basis(3))  # its image never arrives
    with ros_harness.run_node(DOWNLINK, parameters(database, send_thumbnails=True),
                              remappings={'detection': '/detection', 'image': '/image',
                                          'heatmap': '/heatmap'}) as node, \
            ros_harness.run_node(GROUND, {'output': str(folder)},
                                 remappings=GROUND_TOPICS) as ground, \
            ros_harness.RosTestNode() as ros:
        # A camera with sensor-data (best-effort) QoS connects to the image subscriptions.
        images = ros.node.create_publisher(Image, '/image', qos_profile_sensor_data)
        heatmaps = ros.node.create_publisher(Image, '/heatmap', qos_profile_sensor_data)
        detections = ros.node.create_publisher(DiagnosticArray, '/detection', RELIABLE)
        passes = ros.node.create_publisher(UInt64, f'{NODE}/pass', RELIABLE)
        for publisher in (images, heatmaps, detections, passes):
            ros.wait_for_subscribers(publisher, process=node)
        ros.spin_for(1.0)  # best effort: let the reader match back before the frames go
        for index, rec in enumerate((whole, with_regions)):
            images.publish(rgb_msg(rec, index))
            heatmaps.publish(rgb_msg(rec, 10 + index, 24, 32))
        ros.spin_for(0.5)
        for rec in (whole, with_regions, blind):
            detections.publish(detection_msg(rec))
        ros.spin_until(lambda: len(stored_parts(database)) == 5 and len(item_sizes(database)) == 3,
                       20.0, node, what='3 items, 5 captured parts (frame, 2 crops, 2 heatmaps)')
        ros.spin_until(lambda: ground.log().count('receiving into') == 1, 20.0, ground,
                       what='ground receiver ready')
        sizes = item_sizes(database)
        # Room for cam/1 and cam/3 (+ the knapsack's byte rounding), not for the crops too.
        passes.publish(UInt64(data=sizes['cam/1'] + sizes['cam/3'] + 16))
        ros.spin_until(lambda: len(list(folder.glob('*.json'))) >= 2, 30.0, ground,
                       what='first pass on the ground')
        passes.publish(UInt64(data=10 ** 6))
        ros.spin_until(lambda: len(list(folder.glob('*.json'))) >= 4, 30.0, ground,
                       what='second pass on the ground')
        ros.spin_for(1.0)
        node.assert_alive()
    stored = stored_parts(database)
    received = ground_parts(folder)
    # Pass 1: cam/1's frame and cam/3's record; pass 2: the
    # two crops of cam/2. Nothing was left for thumbnails, so no heatmap went home.
    assert sorted(received.values()) == sorted(
        data for (frame, kind, part), data in stored.items() if kind != 'heatmap')
    crops = {box: data for (frame, kind, box), data in received.items() if kind == 'region'}
    assert set(crops) == {'4,6,20,10', '40,30,24,18'}
    sidecars = [json.loads(p.read_text()) for p in sorted(folder.glob('*.json'))]
    assert len(sidecars) == 4
    assert {s['frame_id'] for s in sidecars if s['pass_id'] == '1'} == {'cam/1', 'cam/3'}
    blind_sidecar = next(s for s in sidecars if s['frame_id'] == 'cam/3')
    assert blind_sidecar['kind'] == 'record' and blind_sidecar['missing'] == 'frame,heatmap'
    assert json.loads(blind_sidecar['record'])['score'] == repr(0.7)
