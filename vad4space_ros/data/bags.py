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

"""Benchmark bags: images plus ground-truth labels in a rosbag2, written with ``rosbags``.

A benchmark bag holds, per sample, with one shared header stamp:

* ``image_topic`` (default ``/camera/image_raw``): ``sensor_msgs/msg/Image``, ``rgb8``, the RGB
  view of :func:`~vad4space_ros.data.samples.load_rgb`;
* ``label_topic`` (default ``/camera/label``): ``diagnostic_msgs/msg/DiagnosticArray`` with the
  ground-truth status of :mod:`vad4space_ros.data.labels` (``label`` 0/1, ``category``,
  ``source``, ``split``, ``index``);
* optionally (Mastcam) ``bands_topic`` (default ``/camera/bands``): all six bands as one
  ``sensor_msgs/msg/Image`` with encoding ``32FC6`` (float32 reflectance-like values in
  ``[0, 1]`` = DN / 255, band order R1..R6, ``step = width * 24``). The ``32FC<n>`` form is the
  generic multi-channel encoding that ``sensor_msgs/image_encodings`` and cv_bridge parse.

Only standard message types are used, with the definitions of ``rosbags``' ROS 2 Jazzy
typestore (identical for these types in Humble to Kilted), so ``ros2 bag play`` can replay it.
Format: ``rosbags`` writes rosbag2 metadata version 8 or 9 only; version 8 (the default here)
is what Jazzy writes and Jazzy, Kilted and Rolling read. Humble's rosbag2 cannot read it
directly: there, delete ``metadata.yaml`` and run ``ros2 bag reindex <bag>`` (sqlite3), or use
the ``vad4space_replay`` node. Stamps start at ``start_ns`` and advance by ``1 / rate_hz``; the
bag's receive timestamps equal the header stamps, so ``ros2 bag play`` paces at ``rate_hz``.

Reading: :func:`check_bag` lists and checks a bag's topics, :func:`stamped_messages` yields the
serialized messages of chosen topics with their header stamps (the replay node publishes those
bytes as they are), and :func:`read_benchmark_bag` pairs decoded images with their labels.
"""
from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
from tqdm import tqdm

from vad4space_ros.data.labels import (
    ground_truth_of, GroundTruth, LABEL_STATUS_NAME, LabelError)
from vad4space_ros.data.samples import load_bands, load_rgb, Sample
from vad4space_ros.deploy.image_encoding import (
    array_to_image, image_to_array, ImageEncodingError, RawImage)
from vad4space_ros.stamps import ns_to_sec_nanosec, stamp_to_ns

IMAGE_TOPIC = '/camera/image_raw'
LABEL_TOPIC = '/camera/label'
BANDS_TOPIC = '/camera/bands'
IMAGE_TYPE = 'sensor_msgs/msg/Image'
LABEL_TYPE = 'diagnostic_msgs/msg/DiagnosticArray'
BAG_VERSION = 8
STORAGES = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}
DEFAULT_START_NS = 1_700_000_000_000_000_000
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)

logger = logging.getLogger(__name__)


class BagError(ValueError):
    """A bag cannot be written or lacks what a benchmark bag needs."""


class BenchmarkFrame(NamedTuple):
    """One frame read back from a benchmark bag."""

    stamp_ns: int
    image: np.ndarray
    label: GroundTruth


class StampedMessage(NamedTuple):
    """One stored message: its topic, header stamp, serialized CDR bytes and decoded form."""

    topic: str
    stamp_ns: int
    data: bytes
    msg: Any


@dataclass(frozen=True)
class BagTopics:
    """The topics of a bag: message type and message count per topic."""

    path: Path
    types: dict[str, str]
    counts: dict[str, int]

    def listing(self) -> list[str]:
        """Return ``topic [type]`` for every topic, sorted."""
        return sorted(f'{topic} [{msgtype}]' for topic, msgtype in self.types.items())


@dataclass
class BagReport:
    """What :func:`write_benchmark_bag` wrote."""

    path: Path
    frames: int
    skipped: list[tuple[Path, str]]
    size_bytes: int


def _header(stamp_ns: int, frame_id: str):
    types = TYPESTORE.types
    sec, nanosec = ns_to_sec_nanosec(stamp_ns)
    stamp = types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
    return types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)


def array_to_image_msg(array: np.ndarray, stamp_ns: int, frame_id: str):
    """Build a ``sensor_msgs/msg/Image``: uint8 HxWx3 → rgb8, HxW → mono8, float32 → 32FC<n>.

    The pixels are packed by :func:`~vad4space_ros.deploy.image_encoding.array_to_image`.
    """
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        encoding = 'rgb8'
    elif array.dtype == np.uint8 and array.ndim == 2:
        encoding = 'mono8'
    elif array.dtype == np.float32 and array.ndim in (2, 3):
        encoding = f'32FC{1 if array.ndim == 2 else array.shape[2]}'
    else:
        raise BagError(f'cannot encode an array of shape {array.shape} dtype {array.dtype}')
    try:
        raw = array_to_image(array, encoding)
    except ImageEncodingError as error:
        raise BagError(f'cannot encode an array of shape {array.shape}: {error}') from error
    return TYPESTORE.types[IMAGE_TYPE](
        header=_header(stamp_ns, frame_id), height=raw.height, width=raw.width,
        encoding=raw.encoding, is_bigendian=int(raw.is_bigendian), step=raw.step,
        data=np.frombuffer(raw.data, dtype=np.uint8))


def image_msg_to_array(msg) -> np.ndarray:
    """Decode an Image message (any encoding of ``image_encoding.ENCODINGS``) into an ndarray.

    As :func:`~vad4space_ros.deploy.image_encoding.image_to_array` (HxW for one channel), except
    that BGR-ordered encodings come back in RGB order. Raises BagError when it cannot decode.
    """
    try:
        pixels = image_to_array(RawImage(
            height=msg.height, width=msg.width, encoding=msg.encoding,
            is_bigendian=bool(msg.is_bigendian), step=msg.step, data=memoryview(msg.data)))
    except ImageEncodingError as error:
        raise BagError(f'cannot decode image: {error}') from error
    if msg.encoding.startswith('bgr'):
        pixels = pixels[..., [2, 1, 0, *range(3, pixels.shape[2])]]
    return pixels


def label_msg(truth: GroundTruth, stamp_ns: int, frame_id: str):
    """Build the ground-truth ``DiagnosticArray`` of one frame (:mod:`.labels` wire form)."""
    types = TYPESTORE.types
    key_value = types['diagnostic_msgs/msg/KeyValue']
    status_type = types['diagnostic_msgs/msg/DiagnosticStatus']
    status = status_type(
        level=status_type.WARN if truth.label else status_type.OK, name=LABEL_STATUS_NAME,
        message=truth.message, hardware_id=truth.dataset,
        values=[key_value(key=key, value=value) for key, value in truth.to_key_values()])
    return types[LABEL_TYPE](header=_header(stamp_ns, frame_id), status=[status])


def write_benchmark_bag(
        samples: Iterable[Sample], bag_path: Path | str, *, dataset: str = '',
        image_topic: str = IMAGE_TOPIC, label_topic: str = LABEL_TOPIC,
        bands_topic: str | None = None, frame_id: str = 'camera', rate_hz: float = 10.0,
        start_ns: int = DEFAULT_START_NS, storage: str = 'sqlite3',
        progress: bool = True) -> BagReport:
    """Write samples as image + label (+ optional 6-band) messages; skip unreadable files.

    ``bag_path`` must not exist. Unreadable samples are skipped and reported in the result
    (the stamps of the frames that are written stay evenly spaced).
    """
    if storage not in STORAGES:
        raise BagError(f'unknown storage {storage!r}: expected one of {sorted(STORAGES)}')
    if rate_hz <= 0:
        raise BagError(f'rate_hz must be positive, got {rate_hz}')
    samples = list(samples)
    bag_path = Path(bag_path)
    if bag_path.exists():
        raise BagError(f'{bag_path} exists already: choose a new bag path')
    period_ns = int(round(1e9 / rate_hz))
    skipped: list[tuple[Path, str]] = []
    frames = 0
    with Writer(bag_path, version=BAG_VERSION, storage_plugin=STORAGES[storage]) as writer:
        image_conn = writer.add_connection(image_topic, IMAGE_TYPE, typestore=TYPESTORE)
        label_conn = writer.add_connection(label_topic, LABEL_TYPE, typestore=TYPESTORE)
        bands_conn = (writer.add_connection(bands_topic, IMAGE_TYPE, typestore=TYPESTORE)
                      if bands_topic else None)
        for sample in tqdm(samples, desc=f'writing {bag_path.name}', unit='frame',
                           disable=not progress):
            try:
                rgb = load_rgb(sample)
                bands = load_bands(sample) if bands_conn is not None else None
            except ValueError as error:
                skipped.append((sample.path, str(error)))
                logger.warning('skipping %s: %s', sample.path, error)
                continue
            stamp = start_ns + frames * period_ns
            writer.write(image_conn, stamp, TYPESTORE.serialize_cdr(
                array_to_image_msg(rgb, stamp, frame_id), IMAGE_TYPE))
            if bands_conn is not None:
                writer.write(bands_conn, stamp, TYPESTORE.serialize_cdr(
                    array_to_image_msg(bands, stamp, frame_id), IMAGE_TYPE))
            writer.write(label_conn, stamp, TYPESTORE.serialize_cdr(
                label_msg(GroundTruth.of_sample(sample, frames, dataset), stamp, frame_id),
                LABEL_TYPE))
            frames += 1
    size = sum(p.stat().st_size for p in bag_path.rglob('*') if p.is_file())
    return BagReport(bag_path, frames, skipped, size)


def check_bag(bag_path: Path | str, image_topic: str = IMAGE_TOPIC,
              label_topic: str = LABEL_TOPIC, labels_required: bool = True) -> BagTopics:
    """Return the bag's topics after checking it has images (and labels, if required).

    Raises BagError, listing the bag's topics, when the bag is missing or unreadable, has no
    ``sensor_msgs/msg/Image`` on ``image_topic``, or has ``label_topic`` with another type (or
    not at all while ``labels_required``).
    """
    path = Path(bag_path).expanduser()
    if not path.exists():
        raise BagError(f'bag {path} does not exist')
    try:
        with Reader(path) as reader:
            connections = list(reader.connections)
    except Exception as error:  # noqa: B902 - rosbags raises several unrelated types
        raise BagError(f'cannot read bag {path}: {error}') from error
    topics = BagTopics(path, {c.topic: c.msgtype for c in connections},
                       {c.topic: c.msgcount for c in connections})
    wanted = [(image_topic, IMAGE_TYPE)] + (
        [(label_topic, LABEL_TYPE)] if labels_required or label_topic in topics.types else [])
    for topic, msgtype in wanted:
        if topics.types.get(topic) != msgtype:
            raise BagError(f'bag {path} has no {msgtype} topic {topic!r}; its topics are '
                           f'{topics.listing()}')
    return topics


def stamped_messages(bag_path: Path | str, topics: Iterable[str],
                     on_undecodable: Callable[[str, Exception], None] | None = None
                     ) -> Iterator[StampedMessage]:
    """Yield the messages of ``topics`` in storage order with their header stamps.

    A message that cannot be decoded is passed to ``on_undecodable(topic, error)`` and skipped;
    without that callback it raises BagError.
    """
    wanted_topics = set(topics)
    with Reader(Path(bag_path).expanduser()) as reader:
        wanted = [c for c in reader.connections if c.topic in wanted_topics]
        for connection, _, raw in reader.messages(connections=wanted):
            try:
                msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
                stamp = stamp_to_ns(msg.header)
            except Exception as error:  # noqa: B902 - a corrupt message has many failure modes
                if on_undecodable is None:
                    raise BagError(f'bag {bag_path}: undecodable message on '
                                   f'{connection.topic}: {error}') from error
                on_undecodable(connection.topic, error)
                continue
            yield StampedMessage(connection.topic, stamp, bytes(raw), msg)


def read_benchmark_bag(bag_path: Path | str, image_topic: str = IMAGE_TOPIC,
                       label_topic: str = LABEL_TOPIC) -> Iterator[BenchmarkFrame]:
    """Yield ``(stamp_ns, image, label)`` for every image with a label of the same stamp.

    ``label`` is the frame's :class:`~vad4space_ros.data.labels.GroundTruth`. Raises BagError
    (listing the bag's topics) when a required topic is missing, and on an undecodable message
    or a malformed label; other topics are ignored with a warning; images without a label (or
    vice versa) are dropped with a warning at the end.
    """
    topics = check_bag(bag_path, image_topic, label_topic)
    ignored = sorted(set(topics.types) - {image_topic, label_topic})
    if ignored:
        logger.warning('ignoring topics %s of bag %s', ignored, bag_path)
    images: dict[int, np.ndarray] = {}
    labels: dict[int, GroundTruth] = {}
    for message in stamped_messages(topics.path, (image_topic, label_topic)):
        stamp = message.stamp_ns
        if message.topic == image_topic:
            images[stamp] = image_msg_to_array(message.msg)
        else:
            try:
                labels[stamp] = ground_truth_of(message.msg.status)
            except LabelError as error:
                raise BagError(f'bag {bag_path}: label at {stamp} ns: {error}') from error
        if stamp in images and stamp in labels:
            yield BenchmarkFrame(stamp, images.pop(stamp), labels.pop(stamp))
    if images or labels:
        logger.warning('bag %s: %d images without label and %d labels without image dropped',
                       bag_path, len(images), len(labels))
