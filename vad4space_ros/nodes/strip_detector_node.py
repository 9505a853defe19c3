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

"""``vad4space_strip_detector``: push-broom strips in, whole-image scores and regions out.

A managed (lifecycle) node like ``vad4space_detector`` (same ``autostart`` behaviour), for an
orbiter camera that delivers one long image as consecutive blocks of rows (docs/full_frames.md):

- **Input**: relative ``image`` (``sensor_msgs/Image``, one strip per message) and
  ``camera_info`` (``sensor_msgs/CameraInfo``) with the same header per strip, both reliable
  with KEEP_ALL history (a lost strip would shift every row after it). Strips of one image
  share ``header.frame_id`` and arrive in order. The camera info places the strip:
  ``roi.y_offset`` = its first row in the whole image, ``height``/``width`` = the whole
  image's size (``height`` 0 when not known in advance).
- **Scoring**: :class:`~vad4space_ros.deploy.strip_images.StripImages` scores each strip as
  it comes, in tiles at native resolution, and never holds the whole image.
- **Output while strips come**: ``~/anomaly_map`` (32FC1 raw map rows, each block as soon as no
  later tile can change it) and ``~/camera_info`` describing the block the same way (header =
  the image's frame_id and first-strip stamp, ``roi.y_offset`` = first row); reliable, keeping
  the last ``MAP_DEPTH`` blocks for a slow consumer.
- **Output per image** (when its last row arrives, the next image starts at row 0, or after
  ``strip_timeout`` seconds without a strip): ``~/score``, ``~/detection`` (the detection record
  with its regions in whole-image pixels) and ``~/regions`` (ImageMarker boxes), with the
  header of the image's first strip.

A strip that does not continue its image, or a frame too big or badly encoded, is rejected with
a throttled warning; the node goes on.
"""
from __future__ import annotations

import sys
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from vad4space_ros.deploy.image_encoding import (
    array_to_image, ImageEncodingError, ScaleOptions, to_rgb8)
from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.deploy.strip_images import StripImages, StripPlacement, StripUpdate
from vad4space_ros.deploy.strips import StripError
from vad4space_ros.deploy.tiling import derived_threshold_warning, TileOptions
from vad4space_ros.nodes.detector_node import DetectorNode
from vad4space_ros.nodes.detector_parameters import PARAMETERS as DETECTOR_PARAMETERS
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.managed_node import ManagedNode, spin_until_finalized, StartupError
from vad4space_ros.nodes.parameters import declare_parameters, parameter_descriptor
from vad4space_ros.nodes.region_markers import region_markers
from vad4space_ros.nodes.ros_conversions import (
    frame_header, image_msg_pixels, raw_to_image_msg, record_to_msg, score_msg, strip_info)
from vad4space_ros.nodes.stamp_pairs import header_key, StampPairs
from visualization_msgs.msg import ImageMarker

NODE_NAME = 'vad4space_strip_detector'
WARN_THROTTLE_SEC = 5.0
SHARED = ('model_path', 'autostart', 'threshold', 'sixteen_bit_max', 'float_max', 'tile_size',
          'tile_stride', 'tile_batch_size', 'max_frame_pixels', 'max_regions')
PARAMETERS = {name: DETECTOR_PARAMETERS[name] for name in SHARED}
PARAMETERS.update({
    'strip_timeout': (10.0, parameter_descriptor(
        'Seconds without a strip after which an image of unknown height (camera_info height '
        '0) is finished and scored.', read_only=True, floating=(0.1, 3600.0))),
    'pairing_capacity': (64, parameter_descriptor(
        'Strips (and camera infos) kept while waiting for their partner message; older ones '
        'are dropped and counted.', read_only=True, integer=(1, 10000))),
})
STRIP_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
# Map rows are large (a 1,024-row block of a 5,064-px image is 20 MB): reliable, but a consumer
# that falls more than MAP_DEPTH blocks behind loses the oldest instead of growing the node.
MAP_DEPTH = 8
MAP_QOS = QoSProfile(depth=MAP_DEPTH, reliability=ReliabilityPolicy.RELIABLE)


class StripDetectorNode(ManagedNode):
    """Push-broom strip detector lifecycle node (``StripDetectorNode(**node_kwargs)``)."""

    released = 'unconfigured: model released'

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare parameters; with ``autostart`` configure and activate (raise StartupError)."""
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS)
        self._images: StripImages | None = None
        self._pairs: StampPairs[Image, CameraInfo] | None = None
        self._inputs: list[Any] = []
        self._timer = None
        self._marker_counts: dict[str, int] = {}
        self.autostart(bool(self._value('autostart')))

    def _value(self, name: str) -> Any:
        return self.get_parameter(name).value

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and create the publishers; stay unconfigured if that fails."""
        try:
            model = DetectorNode.load_model(self._value('model_path'))
            self._images = StripImages(
                model, TileOptions(int(self._value('tile_size')), int(self._value('tile_stride')),
                                   int(self._value('tile_batch_size'))),
                int(self._value('max_regions')))
        except (StartupError, ValueError) as error:
            return self.refuse_configure(error)
        self._scale = ScaleOptions(sixteen_bit_max=int(self._value('sixteen_bit_max')),
                                   float_max=float(self._value('float_max')))
        self._threshold = float(self._value('threshold'))
        self._max_frame_pixels = int(self._value('max_frame_pixels'))
        self._pairs = StampPairs(int(self._value('pairing_capacity')))
        self._dropped_reported = 0
        self._map_pub = self.create_lifecycle_publisher(Image, '~/anomaly_map', MAP_QOS)
        self._info_pub = self.create_lifecycle_publisher(CameraInfo, '~/camera_info', MAP_QOS)
        self._score_pub = self.create_lifecycle_publisher(PointStamped, '~/score', 10)
        self._detection_pub = self.create_lifecycle_publisher(DiagnosticArray, '~/detection', 10)
        self._regions_pub = self.create_lifecycle_publisher(ImageMarker, '~/regions', 10)
        self.get_logger().info(
            f'configured: model {model.model_id} ({model.method}), strips scored in '
            f'{self._images.tile}-px tiles every {self._images.stride} px')
        warning = derived_threshold_warning(model.metadata, self._images.tile)
        if warning:
            self.get_logger().warning(warning)
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers and subscribe to strips and their camera infos."""
        result = super().on_activate(state)
        self._inputs = [
            self.create_subscription(Image, 'image', self._on_image, STRIP_QOS),
            self.create_subscription(CameraInfo, 'camera_info', self._on_info, STRIP_QOS)]
        self._timer = self.create_timer(1.0, self._expire)
        self.get_logger().info(f'active: strips on {self._inputs[0].topic_name} with '
                               f'{self._inputs[1].topic_name}')
        return result

    def _stop_input(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _release(self) -> None:
        self._images = None
        self._pairs = None
        self.destroy_publishers()

    # ----------------------------------------------------------------- strips
    def _on_image(self, message: Image) -> None:
        if self._pairs is not None:
            self._score_pair(self._pairs.add_image(header_key(message.header), message))

    def _on_info(self, message: CameraInfo) -> None:
        if self._pairs is not None:
            self._score_pair(self._pairs.add_info(header_key(message.header), message))

    def _score_pair(self, pair: tuple[Image, CameraInfo] | None) -> None:
        images = self._images
        if pair is None or images is None:
            return
        if self._pairs.dropped > self._dropped_reported:
            self._dropped_reported = self._pairs.dropped
            self.get_logger().warning(f'{self._pairs.dropped} strip(s) or camera info(s) never '
                                      'found their partner (same frame_id and stamp) and were '
                                      'dropped', throttle_duration_sec=WARN_THROTTLE_SEC)
        strip, info = pair
        try:
            pixels = to_rgb8(*image_msg_pixels(strip, self._max_frame_pixels), self._scale)
            place = StripPlacement(int(info.roi.y_offset), int(info.height), int(info.width))
            update = images.add(strip.header.frame_id, header_key(strip.header)[1], pixels,
                                place, self._threshold)
        except (ImageEncodingError, StripError) as error:
            self.get_logger().warning(f'rejected strip: {error}',
                                      throttle_duration_sec=WARN_THROTTLE_SEC)
            return
        self._publish(update)

    def _expire(self) -> None:
        if self._images is not None:
            self._publish(self._images.expire(float(self._value('strip_timeout')),
                                              self._threshold))

    def _publish(self, update: StripUpdate) -> None:
        """Publish finished map rows, then the results of finished images."""
        for block in update.map_rows:
            header = frame_header(block.key, block.stamp_ns)
            rows, width = block.rows.shape
            self._map_pub.publish(raw_to_image_msg(array_to_image(block.rows, '32FC1'), header))
            self._info_pub.publish(strip_info(header, block.first_row, rows, width))
        for image in update.finished:
            header = frame_header(image.key, image.stamp_ns)
            if not image.complete:
                self.get_logger().warning(f'{image.key}: image ended at row {image.height} '
                                          'before its announced height (strips lost?)')
            self._score_pub.publish(score_msg(header, image.score, image.raw_score,
                                              self._threshold))
            record = DetectionRecord(
                stamp_ns=image.stamp_ns, frame_id=image.key, score=image.score,
                raw_score=image.raw_score, threshold=self._threshold,
                is_anomaly=image.is_anomaly, method=self._images.model.method,
                model_id=self._images.model.model_id, latency_ms=image.scoring_ms,
                embedding=image.embedding, regions=image.regions)
            self._detection_pub.publish(record_to_msg(record, header))
            for marker in region_markers(image.regions, header,
                                         self._marker_counts.get(image.key, 0)):
                self._regions_pub.publish(marker)
            self._marker_counts[image.key] = len(image.regions)
            self.get_logger().info(
                f'{image.key}: {image.width}x{image.height} image scored ({image.tile_count} '
                f'tiles): score {image.score:.2f}, {len(image.regions)} region(s)')


def main(args: list[str] | None = None) -> int:
    """Run the strip detector node until shutdown; return 1 if autostart cannot configure."""
    return run_node(StripDetectorNode, args, startup_errors=(StartupError,),
                    spin=spin_until_finalized)


if __name__ == '__main__':
    sys.exit(main())
