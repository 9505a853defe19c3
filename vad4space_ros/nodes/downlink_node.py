"""``vad4space_downlink``: prioritized, bandwidth-budgeted, crash-safe downlink of product bytes.

Subscriptions (relative names: remap them, e.g. ``-r detection:=/vad4space_detector/detection``)
- ``detection`` ``diagnostic_msgs/DiagnosticArray`` (reliable, depth 100): the detector's
  per-frame records (:mod:`vad4space_ros.deploy.records`). Each accepted one is committed to the
  queue database together with its captured products (:mod:`vad4space_ros.downlink.products`):
  the frame, or one crop per region when the record has regions (``image_format`` PNG/JPEG),
  and the heatmap thumbnail. Malformed records are counted and logged, never fatal.
- ``image`` and ``heatmap`` ``sensor_msgs/Image`` (sensor-data QoS by default, ``image_qos``):
  the last ``image_cache_frames`` frames/heatmaps are kept until their detection arrives; an
  image arriving after its detection is attached while the item is queued. Items whose image
  never arrived are counted (``without_frame``/``without_heatmap`` on ``~/queue``) and go home
  as their record alone, marked ``missing``.
- ``~/pass`` ``std_msgs/UInt64``: one communication pass with a budget of ``data`` bytes
  (the stored byte lengths of what it releases fit the budget).

Publications
- ``~/downlink`` ``diagnostic_msgs/DiagnosticArray`` (reliable, keep-all): one message per
  released product part, in release order, header = the frame's header; one status
  ``vad4space/downlink`` (level WARN = anomaly; hardware_id = model id; message = kind) whose
  values describe it: release_id, part, parts, kind (frame, region, heatmap, or record when the
  image never arrived), format, sha256, part_bytes, box (x,y,width,height), region_score,
  item_id, pass_id, position, product (full/thumbnail), bytes, priority, score, is_anomaly,
  model_id, method, missing, attempt and record (the detection record as JSON).
- ``~/downlink/image`` ``sensor_msgs/CompressedImage`` (reliable, keep-all): the bytes of each
  image part (format ``png``/``jpeg``), header = the frame's header. The ground pairs it with its
  description by (frame, stamp, sha256): ``vad4space ground receive``.
- ``~/queue`` ``diagnostic_msgs/DiagnosticArray`` (reliable, transient-local, depth 1): counters,
  then the ranked items (see :func:`queue_item_status`).

Intake: callbacks only buffer; a worker thread encodes the products and commits up to
``commit_group`` detections per transaction (:mod:`vad4space_ros.downlink.intake`), so neither
encoding, fsync, a pass nor acknowledgements delay the subscriptions.

Delivery: exactly-once release; at-least-once transmission with the idempotency key
``release_id.part`` (:mod:`vad4space_ros.downlink.downlink_queue`). Intake never waits for
acknowledgements: a batch of ``publish_batch`` releases is published, then a timer checks every
``ACK_POLL_S`` without blocking (``wait_for_all_acked`` with a zero timeout) until both topics are
acknowledged (then ``sent`` is committed and the next batch goes) or ``ack_timeout_s`` passes
(the batch stays in the outbox and is published again, ``attempt`` + 1).
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, fields
import sqlite3
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy, HistoryPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, UInt64

from vad4space_ros.deploy.image_encoding import image_to_array, to_rgb8
from vad4space_ros.deploy.records import RecordError
from vad4space_ros.downlink.downlink_queue import DownlinkQueue, RankedItem
from vad4space_ros.downlink.intake import IntakeTask, IntakeWorker
from vad4space_ros.downlink.policy import DownlinkPolicy
from vad4space_ros.downlink.products import CaptureSettings, IMAGE_FORMATS
from vad4space_ros.downlink.schema import RECORD_ONLY, SYNCHRONOUS_MODES
from vad4space_ros.downlink.store import Release, StoredPart
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.parameters import (
    declare_parameters, ParameterTable, read_only_descriptor)
from vad4space_ros.nodes.ros_conversions import image_msg_to_raw, msg_to_record, stamp_to_ns

NODE_NAME = 'vad4space_downlink'
DOWNLINK_NAME = 'vad4space/downlink'
QUEUE_NAME = 'vad4space/queue'
QUEUE_ITEM_NAME = 'vad4space/queue_item'
ACK_POLL_S = 0.02
STARTUP_ERRORS = (ValueError, ParameterException)  # unusable parameters or database

NODE_PARAMETERS: ParameterTable = {
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
        'QoS of the image/heatmap subscriptions: sensor_data (best effort; matches any camera) '
        'or reliable (only reliable publishers; no frame lost on a loaded link).')),
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


def _status_values(pairs: list[tuple[str, Any]]) -> list[KeyValue]:
    return [KeyValue(key=key, value=str(value)) for key, value in pairs]


def frame_header(frame_id: str, stamp_ns: int) -> Header:
    """Rebuild a frame's header from its id and stamp."""
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return header


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
            values=_status_values([('release_id', release.release_id), ('part', index),
                                   ('parts', max(1, len(parts))), *described, *common]))
        messages.append((DiagnosticArray(header=header, status=[status]), image))
    return messages


def queue_item_status(entry: RankedItem) -> DiagnosticStatus:
    """Describe one ranked item as a ``~/queue`` status."""
    item = entry.item
    return DiagnosticStatus(
        level=DiagnosticStatus.WARN if item.is_anomaly else DiagnosticStatus.OK,
        name=QUEUE_ITEM_NAME, hardware_id=item.frame_id, message=entry.reason,
        values=_status_values([
            ('rank', entry.rank), ('item_id', item.item_id), ('frame_id', item.frame_id),
            ('stamp_ns', item.stamp_ns), ('score', repr(item.score)),
            ('priority', repr(entry.priority)), ('redundancy', f'{entry.redundancy:.4f}'),
            ('similar_to', '' if entry.similar_to is None else entry.similar_to),
            ('bytes', item.product_bytes), ('thumbnail_bytes', item.thumbnail_bytes),
            ('thumbnail_sent', str(item.thumbnail_sent).lower()),
            ('is_anomaly', str(item.is_anomaly).lower())]))


@dataclass
class InFlight:
    """A published batch waiting for acknowledgement."""

    releases: list[Release]
    deadline: float


class DownlinkNode(Node):
    """Wire the persistent :class:`DownlinkQueue` to ROS topics."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare parameters and open the database; raise ValueError if it is unusable."""
        super().__init__(node_name, **kwargs)
        values = declare_parameters(self, PARAMETERS)
        self.settings = {name: values[name] for name in NODE_PARAMETERS}
        self._check_settings()
        self.capture = CaptureSettings(
            self.settings['image_format'], self.settings['thumbnail_format'],
            int(self.settings['thumbnail_max_side']), int(self.settings['jpeg_quality']))
        policy = DownlinkPolicy(**{item.name: values[item.name]
                                   for item in fields(DownlinkPolicy)})
        self.queue = DownlinkQueue.connect(self.settings['database'], policy,
                                           self.settings['synchronous'])
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()  # the database: intake thread vs. executor callbacks
        self.intake = IntakeWorker(self.queue, self.capture, self._lock,
                                   int(self.settings['intake_buffer']),
                                   int(self.settings['commit_group']), self._log,
                                   self._mark_dirty)
        self._thumbnail_from_frame = self.settings['thumbnail_source'] == 'image'
        self._cache_limit = int(self.settings['image_cache_frames'])
        self._frames: OrderedDict[tuple[int, str], Any] = OrderedDict()
        self._heatmaps: OrderedDict[tuple[int, str], Any] = OrderedDict()
        self._awaiting: OrderedDict[tuple[int, str], list] = OrderedDict()
        self._in_flight: InFlight | None = None
        self._queue_dirty = True

        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        image_qos = (qos_profile_sensor_data if self.settings['image_qos'] == 'sensor_data'
                     else QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        keep_all = QoSProfile(depth=1, history=HistoryPolicy.KEEP_ALL,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(DiagnosticArray, 'detection', self._on_detection, reliable)
        self.create_subscription(Image, 'image', self._on_image, image_qos)
        self.create_subscription(Image, 'heatmap', self._on_heatmap, image_qos)
        self.create_subscription(UInt64, '~/pass', self._on_pass, reliable)
        self._downlink_pub = self.create_publisher(DiagnosticArray, '~/downlink', keep_all)
        self._image_pub = self.create_publisher(CompressedImage, '~/downlink/image', keep_all)
        self._queue_pub = self.create_publisher(DiagnosticArray, '~/queue', QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.create_timer(float(self.settings['queue_publish_period_s']), self._publish_queue)
        self.create_timer(float(self.settings['maintenance_period_s']), self._expire)
        self.create_timer(float(self.settings['outbox_retry_period_s']), self._flush_outbox)
        self.create_timer(ACK_POLL_S, self._check_acks)
        summary = self.queue.summary()
        self.get_logger().info(
            f'queue {self.queue.store.path}: {summary["queued"]} queued, '
            f'{summary["released"]} released, {summary["outbox"]} released but not yet '
            'acknowledged (will be published when a consumer subscribes to ~/downlink)')

    def _log(self, level: str, text: str) -> None:
        getattr(self.get_logger(), level)(text, throttle_duration_sec=5.0)

    def _mark_dirty(self) -> None:
        self._queue_dirty = True

    def close(self) -> None:
        """Accept what the intake buffer holds, then close the database."""
        self.intake.stop()
        self.queue.close()

    def _check_settings(self) -> None:
        """Reject node-level parameter values that cannot work."""
        choices = [('synchronous', SYNCHRONOUS_MODES), ('image_format', IMAGE_FORMATS),
                   ('thumbnail_format', IMAGE_FORMATS),
                   ('thumbnail_source', ('heatmap', 'image')),
                   ('image_qos', ('sensor_data', 'reliable'))]
        for name, allowed in choices:
            if self.settings[name] not in allowed:
                raise ValueError(f'parameter {name} must be one of {allowed}, '
                                 f'got {self.settings[name]!r}')

    # --- intake (callbacks only buffer; the IntakeWorker encodes and commits) ---------------
    def _on_detection(self, msg: DiagnosticArray) -> None:
        try:
            record = msg_to_record(msg)
        except RecordError as error:
            self.counters['malformed'] += 1
            self.get_logger().warning(
                f'ignored a malformed detection record ({self.counters["malformed"]} so far): '
                f'{error}', throttle_duration_sec=5.0)
            return
        key = (record.stamp_ns, record.frame_id)
        frame = self._frames.pop(key, None)
        heatmap = self._heatmaps.pop(key, None)
        thumbnail = frame if self._thumbnail_from_frame else heatmap
        if self.intake.submit(IntakeTask(key, record, record.regions, frame, thumbnail)) and (
                frame is None or thumbnail is None):
            self._remember(self._awaiting, key, [record.regions, frame is None,
                                                 thumbnail is None])

    def _remember(self, cache: OrderedDict, key: tuple[int, str], value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self._cache_limit:
            cache.popitem(last=False)

    def _receive(self, msg: Image, cache: OrderedDict, is_frame: bool) -> None:
        key = (stamp_to_ns(msg.header), msg.header.frame_id)
        try:
            raw = image_msg_to_raw(msg)
            pixels = to_rgb8(image_to_array(raw), raw.encoding)
        except ValueError as error:
            self.counters['bad_images'] += 1
            self.get_logger().warning(f'cannot read image of {key[1]}: {error}',
                                      throttle_duration_sec=5.0)
            return
        waiting = self._awaiting.get(key)
        if waiting is None:
            self._remember(cache, key, pixels)
            return
        regions, need_frame, need_thumbnail = waiting
        frame = pixels if is_frame and need_frame else None
        gives_thumbnail = is_frame == self._thumbnail_from_frame
        thumbnail = pixels if gives_thumbnail and need_thumbnail else None
        if frame is None and thumbnail is None:
            return
        self.intake.submit(IntakeTask(key, None, regions, frame, thumbnail))
        waiting[1:] = [need_frame and frame is None, need_thumbnail and thumbnail is None]
        if not any(waiting[1:]):
            self._awaiting.pop(key)

    def _on_image(self, msg: Image) -> None:
        self._receive(msg, self._frames, is_frame=True)

    def _on_heatmap(self, msg: Image) -> None:
        if not self._thumbnail_from_frame:
            self._receive(msg, self._heatmaps, is_frame=False)

    # --- passes and publication -------------------------------------------------------------
    def _on_pass(self, msg: UInt64) -> None:
        try:
            with self._lock:
                result = self.queue.run_pass(int(msg.data))
        except sqlite3.Error as error:
            self.get_logger().error(f'pass of {msg.data} bytes failed, nothing released: {error}')
            return
        self.counters['passes'] += 1
        self.get_logger().info(
            f'pass {result.pass_id}: released {len(result.products)} product(s), '
            f'{result.used_bytes}/{result.budget_bytes} bytes')
        self._queue_dirty = True
        self._flush_outbox()

    def _flush_outbox(self) -> None:
        """Publish the next batch of unacknowledged releases unless one is in flight."""
        if self._in_flight is not None:
            return
        with self._lock:
            pending = self.queue.outbox(int(self.settings['publish_batch']))
            if not pending:
                return
            if not (self._downlink_pub.get_subscription_count()
                    and self._image_pub.get_subscription_count()):
                self.get_logger().warning(
                    f'{self.queue.store.outbox_size()} released product(s) held in the outbox: '
                    'no subscriber on ~/downlink and ~/downlink/image',
                    throttle_duration_sec=30.0)
                return
            batch = self.queue.begin_publication(pending)
            messages = [message for release in batch for message in
                        product_msgs(release, self.queue.release_parts(release))]
        for description, image in messages:
            if image is not None:
                self._image_pub.publish(image)
            self._downlink_pub.publish(description)
        self._in_flight = InFlight(batch, time.monotonic() + float(self.settings['ack_timeout_s']))

    def _check_acks(self) -> None:
        """Commit an acknowledged batch and send the next; give up on it after the timeout."""
        flight = self._in_flight
        if flight is None:
            return
        now = Duration(seconds=0)
        if self._downlink_pub.wait_for_all_acked(now) and self._image_pub.wait_for_all_acked(now):
            with self._lock:
                self.queue.confirm_sent(flight.releases)
            self.counters['sent'] += len(flight.releases)
            self._in_flight = None
            self._queue_dirty = True
            self._flush_outbox()
        elif time.monotonic() > flight.deadline:
            self.get_logger().warning(
                f'downlink consumer did not acknowledge {len(flight.releases)} product(s) '
                f'within {self.settings["ack_timeout_s"]} s; they will be published again')
            self._in_flight = None

    def _expire(self) -> None:
        with self._lock:
            expired = self.queue.expire()
        if expired:
            self.counters['expired'] += len(expired)
            self.get_logger().info(f'{len(expired)} item(s) expired (ttl)')
            self._queue_dirty = True

    def _publish_queue(self) -> None:
        if not self._queue_dirty:
            return
        self._queue_dirty = False
        with self._lock:
            summary = self.queue.summary()
            ranked = self.queue.ranked(int(self.settings['queue_publish_limit']))
        counters = self.counters + self.intake.counters
        session = {f'session_{name}': count for name, count in sorted(counters.items())}
        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        statuses = [DiagnosticStatus(
            level=DiagnosticStatus.OK, name=QUEUE_NAME, hardware_id=NODE_NAME,
            message=f'{summary["queued"]} queued, {summary["outbox"]} awaiting acknowledgement',
            values=_status_values([*summary.items(), *session.items()]))]
        statuses += [queue_item_status(entry) for entry in ranked]
        self._queue_pub.publish(DiagnosticArray(header=header, status=statuses))


def _create_node() -> DownlinkNode:
    """Create the node; print why to stderr when it cannot start."""
    try:
        return DownlinkNode()
    except STARTUP_ERRORS as error:
        print(f'[{NODE_NAME}] cannot start: {error}', file=sys.stderr, flush=True)
        raise


def main(args: list[str] | None = None) -> int:
    """Run the downlink node until shutdown; return 2 if it cannot start."""
    return run_node(_create_node, args, startup_errors=STARTUP_ERRORS, startup_exit_code=2,
                    before_destroy=DownlinkNode.close)


if __name__ == '__main__':
    sys.exit(main())
