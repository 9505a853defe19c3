"""``vad4space_detector``: camera images in, anomaly scores, maps and heatmaps out.

Subscribes to the relative topic ``image`` (``sensor_msgs/Image``, sensor-data QoS, overridable
with ``qos_overrides./<topic>.subscription.*`` parameters) and, if ``subscribe_compressed`` is
set, to ``<resolved image topic>/compressed`` (``sensor_msgs/CompressedImage``, JPEG/PNG).
Callbacks only put frames into a bounded queue that keeps the newest ``queue_size`` frames
(older ones are dropped and counted); one worker thread converts, runs the model and publishes,
each output carrying the input frame's header:

- ``~/anomaly_map`` ``sensor_msgs/Image`` 32FC1, the raw map at image resolution;
- ``~/heatmap`` ``sensor_msgs/Image`` rgb8, the colour-mapped map over the input (for RViz);
- ``~/score`` ``geometry_msgs/PointStamped``: x = calibrated score, y = raw score, z = threshold;
- ``~/detection`` ``diagnostic_msgs/DiagnosticArray``: the per-frame detection record
  (see :mod:`vad4space_ros.nodes.ros_conversions`), with the frame's anomalous regions;
- ``~/regions`` ``visualization_msgs/ImageMarker``: one box outline per region, best first
  (see :mod:`vad4space_ros.nodes.region_markers`); the boxes are also drawn on ``~/heatmap``.

Frames are scored in tiles at native resolution (``tile_size``, ``tile_stride``; see
docs/full_frames.md), and frames above ``max_frame_pixels`` are rejected before decoding.

``/diagnostics`` gets a status every ``diagnostics_period`` seconds: model loaded, input and
processing rates, drops, rejected frames, mean inference and receive-to-publish latency.
A frame that cannot be converted (unknown encoding, zero size, step/size mismatch, NaN, corrupt
compressed data, fewer than 6 bands for a fused model) is counted as rejected with a throttled
warning; the node keeps going. A model that cannot be loaded at start is a fatal error (exit
code 1).

``model_path`` may name a plain model, an exported ``.onnx`` file or a 6-band fused model
(``vad4space fit --spectral-fusion``); :class:`~vad4space_ros.deploy.frame_scoring.FrameScorer`
turns frames into what the model needs (fused models take 6-band frames whole).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from vad4space_ros.deploy import heatmap
from vad4space_ros.deploy.artifact import ArtifactError
from vad4space_ros.deploy.frame_scoring import FrameScorer, Model
from vad4space_ros.deploy.image_encoding import (
    array_to_image, check_frame_size, decode_compressed, image_to_array, ImageEncodingError,
    MULTISPECTRAL_BANDS, ScaleOptions)
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.deploy.regions import draw_regions
from vad4space_ros.deploy.tiling import TileOptions
from vad4space_ros.nodes.detector_parameters import PARAMETERS
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.parameters import declare_parameters
from vad4space_ros.nodes.region_markers import region_markers
from vad4space_ros.nodes.ros_conversions import (
    image_msg_to_raw, raw_to_image_msg, record_to_msg, score_msg, stamp_to_ns)
from visualization_msgs.msg import ImageMarker

NODE_NAME = 'vad4space_detector'
WARN_THROTTLE_SEC = 5.0


class StartupError(RuntimeError):
    """The node cannot start (for example the model file is missing or corrupt)."""


@dataclass
class Frame:
    """One received message waiting for the worker."""

    message: Image | CompressedImage
    received: float  # time.monotonic() at the subscription callback


class NewestFrameQueue:
    """Bounded FIFO that drops the oldest frame when full, so the newest are processed."""

    def __init__(self, capacity: int) -> None:
        """Create an empty queue holding at most ``capacity`` frames."""
        if capacity < 1:
            raise ValueError(f'queue capacity must be >= 1, got {capacity}')
        self._frames: deque[Frame] = deque()
        self._capacity = capacity
        self._ready = threading.Condition()
        self._closed = False

    @property
    def capacity(self) -> int:
        """Return the maximum number of queued frames."""
        return self._capacity

    def put(self, frame: Frame) -> int:
        """Add a frame; return how many old frames were dropped to make room (0 once closed)."""
        with self._ready:
            if self._closed:
                return 0
            dropped = 0
            while len(self._frames) >= self._capacity:
                self._frames.popleft()
                dropped += 1
            self._frames.append(frame)
            self._ready.notify()
            return dropped

    def get(self, timeout: float) -> Frame | None:
        """Take the oldest queued frame; None after ``timeout`` seconds or once closed."""
        with self._ready:
            if not self._frames and not self._closed:
                self._ready.wait(timeout)
            return self._frames.popleft() if self._frames and not self._closed else None

    def __len__(self) -> int:
        """Return the number of queued frames."""
        with self._ready:
            return len(self._frames)

    def close(self) -> None:
        """Wake the consumer and refuse further frames."""
        with self._ready:
            self._closed = True
            self._frames.clear()
            self._ready.notify_all()


class Counters:
    """Thread-safe frame counters and latencies for the diagnostics status."""

    FIELDS = ('received', 'processed', 'dropped', 'rejected', 'failed')

    def __init__(self) -> None:
        """Start all counters at zero."""
        self._lock = threading.Lock()
        self.totals = dict.fromkeys(self.FIELDS, 0)
        self._period = dict.fromkeys(self.FIELDS, 0)
        self._inference_ms: list[float] = []
        self._latency_ms: list[float] = []
        self._period_start = time.monotonic()

    def add(self, field: str, count: int = 1) -> None:
        """Increase one counter."""
        with self._lock:
            self.totals[field] += count
            self._period[field] += count

    def add_processed(self, inference_ms: float, latency_ms: float) -> None:
        """Count a published frame with its inference and receive-to-publish latency."""
        with self._lock:
            self.totals['processed'] += 1
            self._period['processed'] += 1
            self._inference_ms.append(inference_ms)
            self._latency_ms.append(latency_ms)

    def snapshot(self) -> tuple[dict[str, int], dict[str, float]]:
        """Return (totals, figures of the period since the last snapshot); start a new period."""
        with self._lock:
            now = time.monotonic()
            elapsed = max(now - self._period_start, 1e-9)
            latency = np.array(self._latency_ms) if self._latency_ms else np.full(1, np.nan)
            inference = np.array(self._inference_ms) if self._inference_ms else np.full(1, np.nan)
            period = {
                'period_s': elapsed,
                'period_rejected': self._period['rejected'],
                'period_failed': self._period['failed'],
                'input_rate_hz': self._period['received'] / elapsed,
                'processed_rate_hz': self._period['processed'] / elapsed,
                'mean_inference_ms': float(inference.mean()),
                'mean_latency_ms': float(latency.mean()),
                'max_latency_ms': float(latency.max()),
            }
            self._period = dict.fromkeys(self.FIELDS, 0)
            self._period_start = now
            self._inference_ms.clear()
            self._latency_ms.clear()
            return dict(self.totals), period


class DetectorNode(Node):
    """Anomaly detector node; usable as a component class (``DetectorNode(**node_kwargs)``)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare parameters, load the model and start the worker; raise StartupError."""
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS)
        model_path = self.get_parameter('model_path').value
        try:
            model = self._load_model(model_path)
        except StartupError as error:
            self.get_logger().fatal(str(error))
            self.destroy_node()
            raise
        self._threshold = float(self.get_parameter('threshold').value)
        self._publish_heatmap = bool(self.get_parameter('publish_heatmap').value)
        self._publish_map = bool(self.get_parameter('publish_map').value)
        self._alpha = float(self.get_parameter('heatmap_alpha').value)
        self._scorer = FrameScorer(
            model, bool(self.get_parameter('spectral_fusion').value), ScaleOptions(
                sixteen_bit_max=int(self.get_parameter('sixteen_bit_max').value),
                float_max=float(self.get_parameter('float_max').value),
                rgb_bands=self._checked_bands(
                    self.get_parameter('multispectral_rgb_bands').value)),
            TileOptions(int(self.get_parameter('tile_size').value),
                        int(self.get_parameter('tile_stride').value),
                        int(self.get_parameter('tile_batch_size').value)),
            int(self.get_parameter('max_regions').value))
        self._max_frame_pixels = int(self.get_parameter('max_frame_pixels').value)
        self._marker_count = 0
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.counters = Counters()
        self._queue = NewestFrameQueue(int(self.get_parameter('queue_size').value))
        qos_overrides = QoSOverridingOptions.with_default_policies()
        self._map_pub = self.create_publisher(
            Image, '~/anomaly_map', 10, qos_overriding_options=qos_overrides)
        self._heatmap_pub = self.create_publisher(
            Image, '~/heatmap', 10, qos_overriding_options=qos_overrides)
        self._score_pub = self.create_publisher(PointStamped, '~/score', 10)
        self._detection_pub = self.create_publisher(DiagnosticArray, '~/detection', 10)
        self._regions_pub = self.create_publisher(ImageMarker, '~/regions', 10)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._image_sub = self.create_subscription(
            Image, 'image', self._enqueue, qos_profile_sensor_data,
            qos_overriding_options=qos_overrides)
        self._compressed_sub = None
        if self.get_parameter('subscribe_compressed').value:
            compressed_topic = self.resolve_topic_name('image') + '/compressed'
            self._compressed_sub = self.create_subscription(
                CompressedImage, compressed_topic, self._enqueue, qos_profile_sensor_data,
                qos_overriding_options=qos_overrides)
        self._diagnostics_timer = self.create_timer(
            float(self.get_parameter('diagnostics_period').value), self._publish_diagnostics)
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name='vad4space_inference',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'{self._describe(self._scorer)} loaded from {model_path}; listening on '
            f'{self._image_sub.topic_name}'
            + (f' and {self._compressed_sub.topic_name}' if self._compressed_sub else ''))

    # ----------------------------------------------------------------- parameters
    @staticmethod
    def _load_model(model_path: str) -> Model:
        if not model_path:
            raise StartupError('parameter model_path is empty: give the model file written '
                               'by `vad4space fit` (-p model_path:=/path/model.safetensors)')
        try:
            return load_model(model_path)
        except (ArtifactError, OSError, ValueError) as error:
            raise StartupError(f'cannot load model {model_path!r}: {error}') from error

    @staticmethod
    def _describe(scorer: FrameScorer) -> str:
        detector = scorer.detector
        if scorer.fusing:
            mode = ', 6-band spectral fusion: needs 8UC6/16UC6/32FC6 frames'
        elif scorer.is_fused_model:
            mode = ', fused model with spectral_fusion off: RGB branch on 6-band frames'
        else:
            mode = ''
        return f'model {detector.model_id} ({detector.method}/{detector.backbone}{mode})'

    @staticmethod
    def _checked_bands(bands: Any) -> tuple[int, int, int]:
        bands = tuple(int(b) for b in bands)
        if len(bands) != 3 or not all(0 <= b < MULTISPECTRAL_BANDS for b in bands):
            raise ValueError(f'multispectral_rgb_bands must be 3 band indices in '
                             f'0..{MULTISPECTRAL_BANDS - 1}, got {list(bands)}')
        return bands  # type: ignore[return-value]

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a batch of changes; apply all of them or none."""
        changes = {p.name: p.value for p in parameters}
        current = self._scorer
        try:
            bands = (self._checked_bands(changes['multispectral_rgb_bands'])
                     if 'multispectral_rgb_bands' in changes else current.scale.rgb_bands)
            model = (self._load_model(changes['model_path'])
                     if 'model_path' in changes else current.model)
        except (ValueError, StartupError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        scorer = FrameScorer(
            model, bool(changes.get('spectral_fusion', current.spectral_fusion)), ScaleOptions(
                sixteen_bit_max=int(changes.get('sixteen_bit_max',
                                                current.scale.sixteen_bit_max)),
                float_max=float(changes.get('float_max', current.scale.float_max)),
                rgb_bands=bands), current.tiling, current.max_regions)
        if scorer.detector is not current.detector:
            self.get_logger().info(
                f'now scoring with {self._describe(scorer)}'
                + (f' loaded from {changes["model_path"]}' if 'model_path' in changes else ''))
        self._scorer = scorer
        self._threshold = float(changes.get('threshold', self._threshold))
        self._publish_heatmap = bool(changes.get('publish_heatmap', self._publish_heatmap))
        self._publish_map = bool(changes.get('publish_map', self._publish_map))
        self._alpha = float(changes.get('heatmap_alpha', self._alpha))
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- frames
    def _enqueue(self, message: Image | CompressedImage) -> None:
        """Subscription callback: queue the frame (no conversion here)."""
        self.counters.add('received')
        dropped = self._queue.put(Frame(message, time.monotonic()))
        if dropped:
            self.counters.add('dropped', dropped)

    def _work(self) -> None:
        """Worker thread: process queued frames until the node is closed."""
        while self.context.ok() and not self._stopping.is_set():
            frame = self._queue.get(timeout=0.2)
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
        check_frame_size(message.width, message.height, self._max_frame_pixels)
        raw = image_msg_to_raw(message)
        return image_to_array(raw), raw.encoding

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
        scorer = self._scorer
        detector = scorer.detector
        problem = period['period_rejected'] or period['period_failed']
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if problem else DiagnosticStatus.OK,
            name=f'{self.get_name()}: anomaly detector', hardware_id=detector.model_id,
            message=(f'{period["period_rejected"]} frame(s) rejected, '
                     f'{period["period_failed"]} failed in the last {period["period_s"]:.1f} s'
                     if problem else 'running'))
        pairs = {
            'model_loaded': 'true', 'model_id': detector.model_id, 'method': detector.method,
            'backbone': detector.backbone, 'threshold': repr(self._threshold),
            'spectral_fusion': str(scorer.fusing).lower(),
            'queue_size': str(self._queue.capacity), 'queued': str(len(self._queue)),
        }
        pairs.update({key: str(value) for key, value in totals.items()})
        pairs.update({key: f'{value:.3f}' for key, value in period.items()
                      if not key.startswith('period_')})
        status.values = [KeyValue(key=k, value=v) for k, v in pairs.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    # ----------------------------------------------------------------- shutdown
    def destroy_node(self) -> None:
        """Stop the worker thread, then destroy the node."""
        stopping = getattr(self, '_stopping', None)
        if stopping is not None:
            stopping.set()
            self._queue.close()
            self._worker.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the detector node until shutdown; return 1 if it cannot start."""
    return run_node(DetectorNode, args, startup_errors=(StartupError,))


if __name__ == '__main__':
    sys.exit(main())
