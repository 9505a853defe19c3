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

"""Push-broom strips: the ROS-free assembler, stamp pairing, and the strip node over DDS."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vad4space_ros.data.synthetic_frames import ChipMosaic
from vad4space_ros.deploy.regions import tile_regions
from vad4space_ros.deploy.strip_images import StripImages, StripPlacement
from vad4space_ros.deploy.strips import score_tiled, StripError
from vad4space_ros.deploy.tiling import frame_calibration, TileOptions

WIDTH, HEIGHT, STRIP_ROWS = 500, 760, 300   # 3 tile columns x 4 tile rows of 227 px
THRESHOLD = 0.0                              # every tile above typical is a region


@pytest.fixture(scope='module')
def model(padim_model: Path):
    """Return the 128-px PaDiM model fitted on 227-px lunar chips (tiles at 227 px)."""
    from vad4space_ros.deploy.loading import load_model
    return load_model(padim_model)


@pytest.fixture(scope='module')
def orbiter_image() -> np.ndarray:
    """Return a 500x760 grey image of generated lunar chips."""
    return ChipMosaic(WIDTH, HEIGHT, seed=4).rows(0, HEIGHT)


def whole_image_result(model, image: np.ndarray) -> tuple[np.ndarray, float, list]:
    """Score the image whole in 227-px tiles: (map, calibrated score, regions)."""
    anomaly_map, tiles = score_tiled(model, image, 227, 227)
    calibration = frame_calibration(model.calibration, tiles.count)
    return (anomaly_map, float(calibration.normalise(tiles.frame_raw_score)),
            tile_regions(tiles, calibration, THRESHOLD, 5))


def strips_of(image: np.ndarray, rows: int = STRIP_ROWS):
    """Yield (row offset, strip) top to bottom."""
    for offset in range(0, image.shape[0], rows):
        yield offset, image[offset:offset + rows]


def test_strip_images_match_the_whole_image_and_refuse_misplaced_strips(
        model, orbiter_image: np.ndarray) -> None:
    expected_map, expected_score, expected_regions = whole_image_result(model, orbiter_image)
    images = StripImages(model, TileOptions(), max_regions=5)
    assert (images.tile, images.stride) == (227, 227)
    stitched = np.full(orbiter_image.shape, np.nan, np.float32)
    finished = []
    for offset, strip in strips_of(orbiter_image):
        update = images.add('nac', 42, strip, StripPlacement(offset, HEIGHT, WIDTH), THRESHOLD)
        for block in update.map_rows:
            assert (block.key, block.stamp_ns) == ('nac', 42)
            stitched[block.first_row:block.first_row + len(block.rows)] = block.rows
        finished += update.finished
    assert images.in_progress == 0 and len(finished) == 1
    result = finished[0]
    assert (result.height, result.width, result.complete) == (HEIGHT, WIDTH, True)
    np.testing.assert_allclose(stitched, expected_map, rtol=1e-5, atol=1e-6)
    assert result.score == pytest.approx(expected_score, rel=1e-5)
    assert [(r.x, r.y, r.width, r.height) for r in result.regions] == \
        [(r.x, r.y, r.width, r.height) for r in expected_regions]
    # a gap drops the image in progress; its later strips are refused until the next row 0
    images.add('nac', 43, orbiter_image[:300], StripPlacement(0, HEIGHT, WIDTH))
    with pytest.raises(StripError, match='expected 300'):
        images.add('nac', 43, orbiter_image[600:], StripPlacement(600, HEIGHT, WIDTH))
    assert images.in_progress == 0
    with pytest.raises(StripError, match='no image in progress'):
        images.add('nac', 43, orbiter_image[300:600], StripPlacement(300, HEIGHT, WIDTH))
    with pytest.raises(StripError, match='wide'):
        images.add('nac', 44, orbiter_image[:300], StripPlacement(0, HEIGHT, WIDTH + 1))
    # unknown height: a new row 0 ends the image (incomplete flag only for a known height)
    images.add('wac', 1, orbiter_image[:300], StripPlacement(0))
    update = images.add('wac', 2, orbiter_image[:300], StripPlacement(0))
    assert [(f.stamp_ns, f.height, f.complete) for f in update.finished] == [(1, 300, True)]
    assert images.expire(timeout=0.0).finished[0].stamp_ns == 2


def test_stamp_pairs_match_in_either_order_and_stay_bounded() -> None:
    from vad4space_ros.nodes.stamp_pairs import StampPairs

    pairs: StampPairs[str, str] = StampPairs(capacity=2)
    assert pairs.add_image(('cam', 1), 'image 1') is None
    assert pairs.add_info(('cam', 1), 'info 1') == ('image 1', 'info 1')
    assert pairs.add_info(('cam', 2), 'info 2') is None
    assert pairs.add_image(('cam', 2), 'image 2') == ('image 2', 'info 2')
    for stamp in (3, 4, 5):
        assert pairs.add_image(('cam', stamp), f'image {stamp}') is None
    assert pairs.dropped == 1 and pairs.add_info(('cam', 3), 'info 3') is None
    assert pairs.add_info(('other', 5), 'info') is None and pairs.dropped == 1
    assert pairs.add_info(('other', 6), 'info') is None and pairs.dropped == 2
    assert pairs.add_image(('cam', 3), 'image 3') is None   # its info was the one dropped ...
    assert pairs.dropped == 3                                # ... and image 4 makes room
    assert pairs.add_image(('cam', 3), 'image 3 again') is None and pairs.dropped == 4


def test_strip_node_scores_strips_over_dds_like_the_whole_image(
        model, padim_model: Path, orbiter_image: np.ndarray) -> None:
    """Strips + camera infos in; map rows, score, record and regions equal the whole image's."""
    import ros_harness
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header
    from test_detector_node import image_msg
    from visualization_msgs.msg import ImageMarker

    from vad4space_ros.deploy.image_encoding import image_to_array
    from vad4space_ros.nodes.ros_conversions import image_msg_to_raw, msg_to_record, strip_info
    from vad4space_ros.nodes.strip_detector_node import STRIP_QOS

    node = '/vad4space_strip_detector'
    expected_map, expected_score, expected_regions = whole_image_result(model, orbiter_image)
    command = ros_harness.node_command('vad4space_strip_detector',
                                       'vad4space_ros.nodes.strip_detector_node')
    with ros_harness.run_node(command, {'model_path': str(padim_model), 'threshold': THRESHOLD,
                                        'strip_timeout': 1.0},
                              env={'OMP_NUM_THREADS': '1'}) as process, \
            ros_harness.RosTestNode() as ros:
        strips = ros.node.create_publisher(Image, 'image', STRIP_QOS)
        infos = ros.node.create_publisher(CameraInfo, 'camera_info', STRIP_QOS)
        detections = ros.collect(DiagnosticArray, f'{node}/detection')
        maps = ros.collect(Image, f'{node}/anomaly_map', STRIP_QOS)
        map_infos = ros.collect(CameraInfo, f'{node}/camera_info', STRIP_QOS)
        markers = ros.collect(ImageMarker, f'{node}/regions')

        def send(frame_id: str, stamp_s: int, offset: int, strip: np.ndarray,
                 height: int) -> None:
            header = Header(frame_id=frame_id)   # each strip its own stamp: image + row offset
            header.stamp.sec, header.stamp.nanosec = stamp_s, offset
            strips.publish(image_msg(strip, 'mono8', header))
            infos.publish(strip_info(header, offset, *strip.shape[:2], height))

        ros.wait_for_subscribers(strips, process=process)
        ros.wait_for_subscribers(infos, process=process)
        hello = orbiter_image[:227, :227]
        for _ in range(240):   # handshake: one-strip images until a detection comes back
            send('hello', 1, 0, hello, 227)
            ros.spin_for(0.5)
            if detections.messages:
                break
        detections.wait_for(1, 1.0, process)
        for collector in (detections, maps, map_infos, markers):
            collector.wait_for_publishers(process=process)
            ros.spin_for(0.5)
            collector.clear()
        for offset, strip in strips_of(orbiter_image):
            send('nac', 100, offset, strip, HEIGHT)
        send('nac', 101, 0, orbiter_image[:100], HEIGHT)       # image 2 starts ...
        send('nac', 101, 300, orbiter_image[300:400], HEIGHT)  # ... and loses rows 100-299
        send('wac', 102, 0, orbiter_image[:227], 0)            # unknown height: ends by timeout
        ros.spin_until(lambda: {'nac', 'wac'} <= {msg_to_record(m).frame_id
                                                  for m in detections.messages},
                       120.0, process, what='the nac and wac detections')
        records = {msg_to_record(m).frame_id: (m, msg_to_record(m)) for m in detections.messages}
        message, record = records['nac']
        assert (message.header.stamp.sec, message.header.stamp.nanosec) == (100, 0)
        assert record.score == pytest.approx(expected_score, rel=1e-4)
        assert [(r.x, r.y, r.width, r.height) for r in record.regions] == \
            [(r.x, r.y, r.width, r.height) for r in expected_regions]
        assert records['wac'][0].header.stamp.sec == 102
        stitched = np.full(orbiter_image.shape, np.nan, np.float32)
        ros.spin_until(lambda: len(map_infos.messages) >= len(maps.messages) > 0, 10.0, process)
        for block, info in zip(maps.messages, map_infos.messages):
            if block.header.frame_id == 'nac' and block.header.stamp.sec == 100:
                rows = image_to_array(image_msg_to_raw(block))
                stitched[info.roi.y_offset:info.roi.y_offset + rows.shape[0]] = rows
        np.testing.assert_allclose(stitched, expected_map, rtol=1e-4, atol=1e-5)
        nac_markers = [m for m in markers.messages if m.header.stamp.sec == 100]
        assert len(nac_markers) == len(expected_regions)
        assert process.log().count('rejected strip') == 1, process.log()
        process.assert_alive()
