"""``vad4space_downlink``: prioritized, bandwidth-budgeted, crash-safe downlink queue node.

Subscriptions (relative names: remap them, e.g. ``-r detection:=/vad4space_detector/detection``)
- ``detection`` ``diagnostic_msgs/DiagnosticArray``: the detector's per-frame records
  (:mod:`vad4space_ros.deploy.records`). Each is committed to the queue database before it counts
  as accepted; malformed ones are counted and logged, never fatal.
- ``image`` and ``heatmap`` ``sensor_msgs/Image`` (optional): when the frame / heatmap of a
  detection is seen, the product and thumbnail sizes are measured from it (``product_format``,
  ``thumbnail_format``); otherwise ``default_product_bytes`` / ``default_thumbnail_bytes``.
- ``~/pass`` ``std_msgs/UInt64``: one communication pass with a budget of ``data`` bytes. Each
  message releases the best set that fits (see :mod:`vad4space_ros.downlink.selection`).
  A topic rather than a service: no standard service type carries an integer argument
  (``std_srvs`` has only Empty/Trigger/SetBool), and the products come back on ``~/downlink``.

Publications
- ``~/downlink`` ``diagnostic_msgs/DiagnosticArray`` (reliable, keep-all): one message per
  released product, in release order. header = the frame's header (stamp, frame_id); one status
  named ``vad4space/downlink`` (level WARN = anomaly, OK = normal; hardware_id = model id;
  message = ``full`` or ``thumbnail``) with values release_id, item_id, pass_id, position,
  product, bytes, priority, score, attempt. ``release_id`` is the idempotency key: a product is
  re-published (``attempt`` > 1) only if an earlier attempt was not acknowledged, so a consumer
  that drops repeated ``release_id`` values receives every product exactly once. Consumers
  should subscribe reliable + keep-all (or depth >= ``publish_batch``).
- ``~/queue`` ``diagnostic_msgs/DiagnosticArray`` (reliable, transient-local, depth 1): the
  ranked queue. status[0] ``vad4space/queue`` holds counters (per-state totals, queued bytes,
  outbox size, last pass; this session's accepted/duplicate/malformed/... counts); then one
  ``vad4space/queue_item`` status per item (best first, at most ``queue_publish_limit``):
  hardware_id = frame_id, message = reason, values rank, item_id, frame_id, stamp_ns, score,
  priority, redundancy, similar_to, bytes, thumbnail_bytes, thumbnail_sent, is_anomaly.

Delivery semantics (accepted / released / sent) are documented in
:mod:`vad4space_ros.downlink.downlink_queue`. All knobs are read-only ROS parameters;
``config/downlink.yaml`` holds the defaults.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import fields
import sqlite3
import sys
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header, UInt64

from vad4space_ros.deploy.image_encoding import image_to_array, to_rgb8
from vad4space_ros.deploy.records import RecordError
from vad4space_ros.downlink.downlink_queue import DownlinkQueue, RankedItem
from vad4space_ros.downlink.policy import DownlinkPolicy
from vad4space_ros.downlink.sizing import (
    encoded_size, PRODUCT_FORMATS, THUMBNAIL_FORMATS, thumbnail_size)
from vad4space_ros.downlink.store import Release, SYNCHRONOUS_MODES
from vad4space_ros.nodes.entry_point import run_node
from vad4space_ros.nodes.parameters import read_only_descriptor
from vad4space_ros.nodes.ros_conversions import image_msg_to_raw, msg_to_record, stamp_to_ns

NODE_NAME = 'vad4space_downlink'
DOWNLINK_NAME = 'vad4space/downlink'
QUEUE_NAME = 'vad4space/queue'
QUEUE_ITEM_NAME = 'vad4space/queue_item'
# unusable parameters or database
STARTUP_ERRORS = (ValueError, ParameterException)

# Node-level parameters: name -> (default, description). Policy knobs come from DownlinkPolicy.
NODE_PARAMETERS: dict[str, tuple[Any, str]] = {
    'database': ('~/.ros/vad4space_downlink.db',
                 'SQLite file of the persistent queue (created if missing; its directory must '
                 'exist). The node refuses to start if it is corrupt, foreign, read-only or '
                 'used by another process.'),
    'synchronous': ('FULL', 'SQLite synchronous mode: FULL (fsync at every commit, survives '
                    'power loss) or NORMAL (survives a killed process, not a power loss).'),
    'product_format': ('raw', 'How a full product is sent, for its size estimate: raw (the '
                       'image message data), png or jpeg.'),
    'thumbnail_format': ('jpeg', 'Thumbnail encoding for its size estimate: jpeg or png.'),
    'thumbnail_source': ('heatmap', 'Thumbnail made from the heatmap or the image topic.'),
    'thumbnail_max_side': (128, 'Longer side of a thumbnail in pixels.'),
    'jpeg_quality': (85, 'JPEG quality (1-100) used for size estimates.'),
    'size_cache_frames': (256, 'Frames whose measured sizes are kept until their detection '
                          'arrives (and detections kept waiting for a late image).'),
    'queue_publish_period_s': (1.0, 'Seconds between ~/queue updates (only when changed).'),
    'queue_publish_limit': (50, 'Items listed in each ~/queue message.'),
    'maintenance_period_s': (10.0, 'Seconds between TTL sweeps.'),
    'publish_batch': (50, 'Products published before waiting for acknowledgement.'),
    'ack_timeout_s': (5.0, 'Seconds to wait for the consumer to acknowledge a batch; '
                      'unacknowledged products stay in the outbox and are retried.'),
    'outbox_retry_period_s': (2.0, 'Seconds between attempts to publish a non-empty outbox.'),
}


def declared_parameter_names() -> set[str]:
    """Return every parameter name the node declares (node-level and policy)."""
    return set(NODE_PARAMETERS) | {item.name for item in fields(DownlinkPolicy)}


def _status_values(pairs: list[tuple[str, Any]]) -> list[KeyValue]:
    return [KeyValue(key=key, value=str(value)) for key, value in pairs]


def release_msg(release: Release) -> DiagnosticArray:
    """Build the ``~/downlink`` message of one released product."""
    header = Header(frame_id=release.frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(release.stamp_ns, 1_000_000_000)
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN if release.is_anomaly else DiagnosticStatus.OK,
        name=DOWNLINK_NAME, hardware_id=release.model_id, message=release.product,
        values=_status_values([
            ('release_id', release.release_id), ('item_id', release.item_id),
            ('pass_id', release.pass_id), ('position', release.position),
            ('product', release.product), ('bytes', release.size),
            ('priority', repr(release.priority)), ('score', repr(release.score)),
            ('attempt', release.attempts)]))
    return DiagnosticArray(header=header, status=[status])


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


class DownlinkNode(Node):
    """Wire the persistent :class:`DownlinkQueue` to ROS topics."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare parameters and open the database; raise ValueError if it is unusable."""
        super().__init__(node_name, **kwargs)
        policy_values = {}
        descriptions = DownlinkPolicy.descriptions()
        for item in fields(DownlinkPolicy):
            self.declare_parameter(item.name, item.default,
                                   read_only_descriptor(descriptions[item.name]))
            policy_values[item.name] = self.get_parameter(item.name).value
        for name, (default, description) in NODE_PARAMETERS.items():
            self.declare_parameter(name, default, read_only_descriptor(description))
        self.settings = {name: self.get_parameter(name).value for name in NODE_PARAMETERS}
        self._check_settings()
        policy = DownlinkPolicy(**policy_values)
        self.queue = DownlinkQueue.connect(self.settings['database'], policy,
                                           self.settings['synchronous'])
        self.counters: Counter[str] = Counter()
        limit = int(self.settings['size_cache_frames'])
        self._sizes: OrderedDict[tuple[int, str], list[int | None]] = OrderedDict()
        self._awaiting_sizes: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._cache_limit = max(1, limit)
        self._queue_dirty = True

        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(DiagnosticArray, 'detection', self._on_detection, reliable)
        self.create_subscription(Image, 'image', self._on_image, 10)
        self.create_subscription(Image, 'heatmap', self._on_heatmap, 10)
        self.create_subscription(UInt64, '~/pass', self._on_pass, reliable)
        self._downlink_pub = self.create_publisher(DiagnosticArray, '~/downlink', QoSProfile(
            depth=1, history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE))
        self._queue_pub = self.create_publisher(DiagnosticArray, '~/queue', QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.create_timer(float(self.settings['queue_publish_period_s']), self._publish_queue)
        self.create_timer(float(self.settings['maintenance_period_s']), self._expire)
        self.create_timer(float(self.settings['outbox_retry_period_s']), self._retry_outbox)
        summary = self.queue.summary()
        self.get_logger().info(
            f'queue {self.queue.store.path}: {summary["queued"]} queued, '
            f'{summary["released"]} released, {summary["outbox"]} released but not yet '
            'acknowledged (will be published when a consumer subscribes to ~/downlink)')

    def _check_settings(self) -> None:
        """Reject node-level parameter values that cannot work."""
        settings = self.settings
        choices = [('synchronous', SYNCHRONOUS_MODES), ('product_format', PRODUCT_FORMATS),
                   ('thumbnail_format', THUMBNAIL_FORMATS),
                   ('thumbnail_source', ('heatmap', 'image'))]
        for name, allowed in choices:
            if settings[name] not in allowed:
                raise ValueError(f'parameter {name} must be one of {allowed}, '
                                 f'got {settings[name]!r}')
        positive = ['thumbnail_max_side', 'size_cache_frames', 'queue_publish_period_s',
                    'queue_publish_limit', 'maintenance_period_s', 'publish_batch',
                    'ack_timeout_s', 'outbox_retry_period_s']
        for name in positive:
            if not settings[name] > 0:
                raise ValueError(f'parameter {name} must be > 0, got {settings[name]!r}')
        if not 1 <= settings['jpeg_quality'] <= 100:
            raise ValueError('parameter jpeg_quality must be in 1..100')

    # --- intake -----------------------------------------------------------------------------
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
        product_bytes, thumbnail_bytes = self._sizes.pop(key, (None, None))
        try:
            result = self.queue.accept(record, product_bytes, thumbnail_bytes)
        except sqlite3.Error as error:
            self.counters['store_errors'] += 1
            self.get_logger().error(f'could not store detection of {record.frame_id} '
                                    f'@{record.stamp_ns}: {error} (not accepted)')
            return
        self.counters[result.status] += 1
        self.counters['evicted'] += len(result.evicted)
        if result.evicted:
            self.get_logger().info(f'capacity reached: evicted item(s) {list(result.evicted)}',
                                   throttle_duration_sec=5.0)
        if result.item_id is not None and (product_bytes is None or thumbnail_bytes is None):
            self.counters['without_image'] += 1
            self._remember(self._awaiting_sizes, key, None)
        self._queue_dirty = True

    def _remember(self, cache: OrderedDict, key: tuple[int, str], value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self._cache_limit:
            cache.popitem(last=False)

    def _measure(self, msg: Image, thumbnail: bool, product: bool) -> None:
        """Measure sizes from an image message and attach them to its frame."""
        key = (stamp_to_ns(msg.header), msg.header.frame_id)
        settings = self.settings
        try:
            raw = image_msg_to_raw(msg)
            pixels = to_rgb8(image_to_array(raw), raw.encoding)
            product_bytes = None
            if product:
                product_bytes = (len(msg.data) if settings['product_format'] == 'raw' else
                                 encoded_size(pixels, settings['product_format'],
                                              settings['jpeg_quality']))
            thumbnail_bytes = thumbnail_size(
                pixels, int(settings['thumbnail_max_side']), settings['thumbnail_format'],
                int(settings['jpeg_quality'])) if thumbnail else None
        except ValueError as error:
            self.counters['bad_images'] += 1
            self.get_logger().warning(f'cannot measure image of {key[1]}: {error}',
                                      throttle_duration_sec=5.0)
            return
        sizes = self._sizes.get(key, [None, None])
        sizes = [product_bytes or sizes[0], thumbnail_bytes or sizes[1]]
        if key in self._awaiting_sizes:
            try:
                self.queue.update_sizes(key[1], key[0], *sizes)
            except sqlite3.Error as error:
                self.get_logger().error(f'could not update sizes of {key[1]}: {error}')
            if None not in sizes:
                self._awaiting_sizes.pop(key)
            self._queue_dirty = True
        else:
            self._remember(self._sizes, key, sizes)

    def _on_image(self, msg: Image) -> None:
        self._measure(msg, product=True,
                      thumbnail=self.settings['thumbnail_source'] == 'image')

    def _on_heatmap(self, msg: Image) -> None:
        if self.settings['thumbnail_source'] == 'heatmap':
            self._measure(msg, product=False, thumbnail=True)

    # --- passes and publication -------------------------------------------------------------
    def _on_pass(self, msg: UInt64) -> None:
        try:
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
        """Publish unacknowledged releases in order, batch by batch, until all are acked."""
        batch_size = int(self.settings['publish_batch'])
        timeout = Duration(nanoseconds=int(float(self.settings['ack_timeout_s']) * 1e9))
        while True:
            pending = self.queue.outbox(batch_size)
            if not pending:
                return
            if self._downlink_pub.get_subscription_count() == 0:
                self.get_logger().warning(
                    f'{self.queue.store.outbox_size()} released product(s) held in the outbox: '
                    'no subscriber on ~/downlink', throttle_duration_sec=30.0)
                return
            batch = self.queue.begin_publication(pending)
            for release in batch:
                self._downlink_pub.publish(release_msg(release))
            if not self._downlink_pub.wait_for_all_acked(timeout):
                self.get_logger().warning(
                    f'downlink consumer did not acknowledge {len(batch)} product(s) within '
                    f'{timeout.nanoseconds / 1e9:.1f} s; they will be published again')
                return
            self.queue.confirm_sent(batch)
            self.counters['sent'] += len(batch)
            self._queue_dirty = True

    def _retry_outbox(self) -> None:
        if self.queue.store.outbox_size():
            self._flush_outbox()

    def _expire(self) -> None:
        expired = self.queue.expire()
        if expired:
            self.counters['expired'] += len(expired)
            self.get_logger().info(f'{len(expired)} item(s) expired (ttl)')
            self._queue_dirty = True

    def _publish_queue(self) -> None:
        if not self._queue_dirty:
            return
        self._queue_dirty = False
        summary = self.queue.summary()
        session = {f'session_{name}': count for name, count in sorted(self.counters.items())}
        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        statuses = [DiagnosticStatus(
            level=DiagnosticStatus.OK, name=QUEUE_NAME, hardware_id=NODE_NAME,
            message=f'{summary["queued"]} queued, {summary["outbox"]} awaiting acknowledgement',
            values=_status_values([*summary.items(), *session.items()]))]
        statuses += [queue_item_status(entry) for entry in
                     self.queue.ranked(int(self.settings['queue_publish_limit']))]
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
                    before_destroy=lambda node: node.queue.close())


if __name__ == '__main__':
    sys.exit(main())
