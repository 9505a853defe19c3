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

"""``vad4space_detector``: camera images in, anomaly scores, maps and heatmaps out.

A managed (lifecycle) node; ``docs/detector_node.md`` documents topics, parameters and states.
With ``autostart`` (default) it configures and activates itself at start like a plain node,
and a model that cannot be loaded is fatal (exit code 1). Otherwise it waits for the standard
``lifecycle_msgs`` services: configure loads ``model_path`` (a failure leaves the node
unconfigured and alive), activate subscribes and enables the publishers, deactivate
unsubscribes (nothing is published), cleanup releases the model, shutdown ends the executable.

Input, per ``transport``: the relative topic ``image`` (``sensor_msgs/Image``) or ``<resolved
image topic>/compressed``, sensor-data QoS; the latest ``camera_info`` is republished on
``~/camera_info`` with the header of each map/heatmap. Callbacks only put frames into a bounded
queue that keeps the newest ``queue_size`` frames; one worker thread converts, runs the model
and publishes ``~/anomaly_map`` (32FC1), ``~/heatmap`` (rgb8), ``~/score`` (PointStamped: x =
calibrated score, y = raw score, z = threshold) and ``~/detection`` (the detection record as a
DiagnosticArray), each with the input frame's header, plus ``/diagnostics`` periodically. Bad
frames are counted as rejected with a throttled warning; the node keeps going.
``~/regions`` (``visualization_msgs/ImageMarker``, one box outline per anomalous region, best
first) carries the regions that are also in the record and drawn on ``~/heatmap``. Frames are
scored in tiles at native resolution (``tile_size``, ``tile_stride``; docs/full_frames.md);
frames above ``max_frame_pixels`` are rejected before decoding.

``model_path`` may name a plain model, an exported ``.onnx`` file or a fused model
(:class:`~vad4space_ros.deploy.frame_scoring.FrameScorer` feeds each what it needs). At run
time it may only change to a file under ``model_dir``
(:mod:`vad4space_ros.nodes.model_access`).
"""
from __future__ import annotations

import copy
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from vad4space_ros.deploy import heatmap
from vad4space_ros.deploy.artifact import ArtifactError
from vad4space_ros.deploy.frame_scoring import FrameScorer, Model
from vad4space_ros.deploy.image_encoding import (
    array_to_image, decode_compressed, ImageEncodingError, ScaleOptions)
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.deploy.regions import draw_regions
from vad4space_ros.deploy.tiling import TileOptions
from vad4space_ros.nodes.detector_parameters import checked_bands, checked_transport, PARAMETERS
from vad4space_ros.nodes.detector_status import detector_status
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.frame_queue import Counters, Frame, NewestFrameQueue
from vad4space_ros.nodes.managed_node import ManagedNode, spin_until_finalized, StartupError
from vad4space_ros.nodes.model_access import allowed_model_path
from vad4space_ros.nodes.parameters import declare_parameters
from vad4space_ros.nodes.region_markers import region_markers
from vad4space_ros.nodes.ros_conversions import (
    image_msg_pixels, raw_to_image_msg, record_to_msg, score_msg, stamp_to_ns)
from visualization_msgs.msg import ImageMarker

NODE_NAME = 'vad4space_detector'
WARN_THROTTLE_SEC = 5.0


class DetectorNode(ManagedNode):
    """Anomaly detector lifecycle node; usable as a component (``DetectorNode(**node_kwargs)``)."""

    released = 'unconfigured: model released'

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare parameters; with ``autostart`` configure and activate (raise StartupError)."""
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS)
        self.counters = Counters()
        self._scorer: FrameScorer | None = None
        self._camera_info: CameraInfo | None = None
        self._inputs: list[Any] = []
        self._queue: NewestFrameQueue | None = None
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._diagnostics_timer = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.autostart(bool(self.get_parameter('autostart').value))

    # ----------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and create the publishers; stay unconfigured if that fails."""
        model_path = self.get_parameter('model_path').value
        try:
            checked_transport(self.get_parameter('transport').value)
            self._scorer = FrameScorer(
                self.load_model(model_path), bool(self.get_parameter('spectral_fusion').value),
                ScaleOptions(
                    sixteen_bit_max=int(self.get_parameter('sixteen_bit_max').value),
                    float_max=float(self.get_parameter('float_max').value),
                    rgb_bands=checked_bands(
                        self.get_parameter('multispectral_rgb_bands').value)),
                TileOptions(int(self.get_parameter('tile_size').value),
                            int(self.get_parameter('tile_stride').value),
                            int(self.get_parameter('tile_batch_size').value)),
                int(self.get_parameter('max_regions').value))
        except (StartupError, ValueError) as error:
            return self.refuse_configure(error)
        self._threshold = float(self.get_parameter('threshold').value)
        self._publish_heatmap = bool(self.get_parameter('publish_heatmap').value)
        self._publish_map = bool(self.get_parameter('publish_map').value)
        self._alpha = float(self.get_parameter('heatmap_alpha').value)
        self._max_frame_pixels = int(self.get_parameter('max_frame_pixels').value)
        self._marker_count = 0
        qos_overrides = QoSOverridingOptions.with_default_policies()
        self._map_pub = self.create_lifecycle_publisher(
            Image, '~/anomaly_map', 10, qos_overriding_options=qos_overrides)
        self._heatmap_pub = self.create_lifecycle_publisher(
            Image, '~/heatmap', 10, qos_overriding_options=qos_overrides)
        self._camera_info_pub = self.create_lifecycle_publisher(
            CameraInfo, '~/camera_info', 10, qos_overriding_options=qos_overrides)
        self._score_pub = self.create_lifecycle_publisher(PointStamped, '~/score', 10)
        self._detection_pub = self.create_lifecycle_publisher(DiagnosticArray, '~/detection', 10)
        self._regions_pub = self.create_lifecycle_publisher(ImageMarker, '~/regions', 10)
        self._diagnostics_pub = self.create_lifecycle_publisher(
            DiagnosticArray, '/diagnostics', 10)
        self.get_logger().info(f'configured: {self._scorer.describe()} loaded from '
                               f'{model_path}')
        self._warn_derived_threshold()
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers, start the worker and subscribe."""
        result = super().on_activate(state)
        self._queue = NewestFrameQueue(int(self.get_parameter('queue_size').value))
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, args=(self._queue, self._stopping),
                                        name='vad4space_inference', daemon=True)
        self._worker.start()
        qos_overrides = QoSOverridingOptions.with_default_policies()
        if self.get_parameter('transport').value == 'compressed':
            topic, msg_type = self.resolve_topic_name('image') + '/compressed', CompressedImage
        else:
            topic, msg_type = 'image', Image
        self._inputs = [
            self.create_subscription(msg_type, topic, self._enqueue, qos_profile_sensor_data,
                                     qos_overriding_options=qos_overrides),
            self.create_subscription(CameraInfo, 'camera_info', self._store_camera_info,
                                     qos_profile_sensor_data,
                                     qos_overriding_options=qos_overrides)]
        self._diagnostics_timer = self.create_timer(
            float(self.get_parameter('diagnostics_period').value), self._publish_diagnostics)
        self.get_logger().info(f'active: listening on {self._inputs[0].topic_name} '
                               f'(camera info: {self._inputs[1].topic_name})')
        return result

    def _stop_input(self) -> None:
        """Destroy the subscriptions and the diagnostics timer; stop the worker thread."""
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        self._stopping.set()
        if self._queue is not None:
            self._queue.close()
            self._queue = None
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    def _release(self) -> None:
        """Drop the model, the last camera info and every lifecycle publisher."""
        self._scorer = None
        self._camera_info = None
        self.destroy_publishers()

    def _warn_derived_threshold(self) -> None:
        warning = self._scorer.frame_threshold_warning()
        if warning:
            self.get_logger().warning(warning)

    # ----------------------------------------------------------------- parameters
    @staticmethod
    def load_model(model_path: str) -> Model:
        """Load ``model_path``; raise StartupError with the reason when it cannot be used."""
        if not model_path:
            raise StartupError('parameter model_path is empty: give the model file written '
                               'by `vad4space fit` (-p model_path:=/path/model.safetensors)')
        try:
            return load_model(model_path)
        except (ArtifactError, OSError, ValueError) as error:
            raise StartupError(f'cannot load model {model_path!r}: {error}') from error

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate the changes of one request; apply all of them or none.

        A new ``model_path`` must be a file under ``model_dir``. Unconfigured, values are only
        checked (configure reads them); otherwise the new model is loaded before it is accepted.
        """
        changes = {p.name: p.value for p in parameters if p.name in PARAMETERS}
        current = self._scorer
        if not changes:  # e.g. QoS override parameters declared by a new subscription
            return SetParametersResult(successful=True)
        try:
            bands = (checked_bands(changes['multispectral_rgb_bands'])
                     if 'multispectral_rgb_bands' in changes else None)
            model_file = (allowed_model_path(self.get_parameter('model_dir').value,
                                             changes['model_path'])
                          if 'model_path' in changes else None)
            if current is None:
                return SetParametersResult(successful=True)
            model = (self.load_model(str(model_file)) if model_file is not None
                     else current.model)
        except (ValueError, StartupError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        bands = bands or current.scale.rgb_bands
        scorer = FrameScorer(
            model, bool(changes.get('spectral_fusion', current.spectral_fusion)), ScaleOptions(
                sixteen_bit_max=int(changes.get('sixteen_bit_max',
                                                current.scale.sixteen_bit_max)),
                float_max=float(changes.get('float_max', current.scale.float_max)),
                rgb_bands=bands), current.tiling, current.max_regions)
        if scorer.detector is not current.detector:
            self.get_logger().info(
                f'now scoring with {scorer.describe()}'
                + (f' loaded from {changes["model_path"]}' if 'model_path' in changes else ''))
        self._scorer = scorer
        if 'model_path' in changes:
            self._warn_derived_threshold()
        self._threshold = float(changes.get('threshold', self._threshold))
        self._publish_heatmap = bool(changes.get('publish_heatmap', self._publish_heatmap))
        self._publish_map = bool(changes.get('publish_map', self._publish_map))
        self._alpha = float(changes.get('heatmap_alpha', self._alpha))
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- frames
    def _enqueue(self, message: Image | CompressedImage) -> None:
        """Subscription callback: queue the frame (no conversion here)."""
        queue = self._queue
        if queue is None:
            return
        self.counters.add('received')
        dropped = queue.put(Frame(message, time.monotonic()))
        if dropped:
            self.counters.add('dropped', dropped)

    def _store_camera_info(self, message: CameraInfo) -> None:
        """Keep the newest camera info; it goes out with each map and heatmap."""
        self._camera_info = message

    def _work(self, queue: NewestFrameQueue, stopping: threading.Event) -> None:
        """Worker thread: process queued frames until deactivated or shut down."""
        while self.context.ok() and not stopping.is_set():
            frame = queue.get(timeout=0.2)
            if frame is None:
                continue
            try:
                self._process(frame)
            except ImageEncodingError as error:
                self.counters.add('rejected')
                self.get_logger().warning(f'rejected frame: {error}',
                                          throttle_duration_sec=WARN_THROTTLE_SEC)
            except Exception as error:  # noqa: B902 - one bad frame must not stop the node
                self.counters.add('failed')
                self.get_logger().error(f'inference failed on a frame: {error!r}',
                                        throttle_duration_sec=WARN_THROTTLE_SEC)

    def _decode(self, message: Image | CompressedImage) -> tuple[np.ndarray, str]:
        """Return a message's pixels (HxW or HxWxC, native dtype) and their encoding."""
        if isinstance(message, CompressedImage):
            return decode_compressed(message.format, message.data, self._max_frame_pixels)
        return image_msg_pixels(message, self._max_frame_pixels)

    def _process(self, frame: Frame) -> None:
        """Run the model on one frame and publish every output with its header."""
        header: Header = frame.message.header
        scorer = self._scorer
        detector = scorer.detector
        threshold = self._threshold
        scored = scorer.score(*self._decode(frame.message), threshold)
        prediction = scored.prediction
        if self._publish_map:
            self._map_pub.publish(raw_to_image_msg(
                array_to_image(prediction.anomaly_map.astype(np.float32), '32FC1'), header))
        if self._publish_heatmap:
            overlay = draw_regions(heatmap.overlay(
                scored.display, prediction.anomaly_map, self._alpha,
                scorer.map_range(scored.calibration)), scored.regions)
            self._heatmap_pub.publish(raw_to_image_msg(array_to_image(overlay, 'rgb8'), header))
        camera_info = self._camera_info
        if camera_info is not None and (self._publish_map or self._publish_heatmap):
            camera_info = copy.copy(camera_info)
            camera_info.header = header  # a new header: the stored message is not changed
            self._camera_info_pub.publish(camera_info)
        self._score_pub.publish(
            score_msg(header, prediction.score, prediction.raw_score, threshold))
        record = DetectionRecord(
            stamp_ns=stamp_to_ns(header), frame_id=header.frame_id, score=prediction.score,
            raw_score=prediction.raw_score, threshold=threshold,
            is_anomaly=prediction.is_anomaly,
            method=detector.method, model_id=detector.model_id,
            latency_ms=prediction.latency_ms, embedding=prediction.embedding,
            regions=scored.regions)
        self._detection_pub.publish(record_to_msg(record, header))
        for marker in region_markers(scored.regions, header, self._marker_count):
            self._regions_pub.publish(marker)
        self._marker_count = len(scored.regions)
        self.counters.add_processed(
            prediction.latency_ms, (time.monotonic() - frame.received) * 1000.0)

    # ----------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        totals, period = self.counters.snapshot()
        array = DiagnosticArray(status=[detector_status(
            self.get_name(), self._scorer, self._threshold, self._queue, totals, period)])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    # ----------------------------------------------------------------- shutdown
    def destroy_node(self) -> None:
        """Stop the worker thread, then destroy the node."""
        self._stop_input()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the detector node until shutdown; return 1 if autostart cannot configure it."""
    return run_node(DetectorNode, args, startup_errors=(StartupError,),
                    spin=spin_until_finalized)


if __name__ == '__main__':
    sys.exit(main())
