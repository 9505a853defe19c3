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

"""What the replay node plays: the messages of a benchmark bag or of a dataset split (ROS-free).

Both sources yield :class:`ReplayMessage` items (serialized CDR bytes, as rosbag2 stores them, and
their header stamp) in playback order, so the node publishes bytes without decoding them:

- :class:`BagSource`: the image and label topics of a rosbag2 bag, read with
  :mod:`vad4space_ros.data.bags`;
- :class:`DatasetSource`: one part of an evaluation setting, encoded exactly as
  ``vad4space bag make`` writes it with its defaults (same pixels, labels and stamps: from
  ``bags.DEFAULT_START_NS`` every 0.1 s).

``logger`` is anything with ``info`` and ``warning`` (a ROS node's logger or a ``logging.Logger``).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union

from vad4space_ros.data import bags
from vad4space_ros.data.labels import GroundTruth

DATASET_STAMP_PERIOD_NS = 100_000_000  # 10 Hz, as `vad4space bag make` stamps by default
SPLIT_PARTS = ('test', 'train', 'calibration')


class ReplayError(RuntimeError):
    """The replay cannot start or continue (missing bag, no image topic, bad dataset, ...)."""


@dataclass(frozen=True)
class ReplayMessage:
    """One message to publish: serialized CDR bytes as stored in a rosbag2 bag."""

    kind: str  # 'image' or 'label'
    stamp_ns: int
    data: bytes


class BagSource:
    """Image and label messages of a rosbag2 bag, in storage order (read by :mod:`.bags`)."""

    def __init__(self, path: str, image_topic: str, label_topic: str, logger: Any) -> None:
        """Check that the bag exists and has an Image topic; raise ReplayError otherwise."""
        try:
            topics = bags.check_bag(path, image_topic, label_topic, labels_required=False)
        except bags.BagError as error:
            raise ReplayError(f'{error} (set bag_image_topic / bag_label_topic)') from error
        self.path = topics.path
        self._kinds = {image_topic: 'image', label_topic: 'label'}
        if label_topic not in topics.types:
            logger.warning(f'bag {self.path} has no label topic {label_topic!r}: playing '
                           'images only (nothing to evaluate against)')
        ignored = sorted(set(topics.types) - set(self._kinds))
        if ignored:
            logger.warning(f'ignoring bag topics {ignored}')
        self.image_count = topics.counts[image_topic]
        self.label_count = topics.counts.get(label_topic, 0)
        self.description = f'bag {self.path}'
        self.skipped = 0
        self._logger = logger

    def messages(self) -> Iterator[ReplayMessage]:
        """Yield the image and label messages; skip (and count) undecodable ones."""
        for message in bags.stamped_messages(self.path, self._kinds, self._skip):
            yield ReplayMessage(self._kinds[message.topic], message.stamp_ns, message.data)

    def _skip(self, topic: str, error: Exception) -> None:
        self.skipped += 1
        self._logger.warning(f'skipping an undecodable message on {topic}: {error}')


class DatasetSource:
    """One part of an evaluation setting, encoded as :func:`bags.write_benchmark_bag` does."""

    def __init__(self, dataset: str, root: str, setting: int, seed: int, split: str,
                 frame_id: str, logger: Any) -> None:
        """Load the dataset and build the split; raise ReplayError when that fails."""
        from vad4space_ros.data import load_dataset
        from vad4space_ros.data.protocols import make_setting

        try:
            split_samples = make_setting(load_dataset(dataset, root), setting, seed=seed)
            self._samples = split_samples.part(split)
        except (ValueError, OSError) as error:
            raise ReplayError(f'cannot load {dataset} setting {setting} from {root!r}: '
                              f'{error}') from error
        for note in split_samples.notes:
            logger.info(f'split note: {note}')
        self._dataset = dataset
        self._frame_id = frame_id
        self._logger = logger
        self.image_count = self.label_count = len(self._samples)
        self.description = f'{dataset} setting {setting} {split} (seed {seed}) from {root}'
        self.skipped = 0

    def messages(self) -> Iterator[ReplayMessage]:
        """Yield image and label messages per sample; unreadable samples are skipped."""
        from vad4space_ros.data.samples import load_rgb

        frames = 0
        for sample in self._samples:
            try:
                rgb = load_rgb(sample)
            except ValueError as error:
                self.skipped += 1
                self._logger.warning(f'skipping {sample.path}: {error}')
                continue
            stamp = bags.DEFAULT_START_NS + frames * DATASET_STAMP_PERIOD_NS
            image = bags.array_to_image_msg(rgb, stamp, self._frame_id)
            label = bags.label_msg(GroundTruth.of_sample(sample, frames, self._dataset), stamp,
                                   self._frame_id)
            yield ReplayMessage('image', stamp, bytes(
                bags.TYPESTORE.serialize_cdr(image, bags.IMAGE_TYPE)))
            yield ReplayMessage('label', stamp, bytes(
                bags.TYPESTORE.serialize_cdr(label, bags.LABEL_TYPE)))
            frames += 1


ReplaySource = Union[BagSource, DatasetSource]


def open_source(bag: str, bag_image_topic: str, bag_label_topic: str, dataset: str, root: str,
                setting: int, seed: int, split: str, frame_id: str, logger: Any) -> ReplaySource:
    """Open exactly one of a bag and a dataset split; raise ReplayError when that fails."""
    if bool(bag) == bool(dataset):
        raise ReplayError('set exactly one of the parameters bag (a rosbag2 folder) and '
                          'dataset (lroc or mastcam, with root)')
    if bag:
        return BagSource(bag, bag_image_topic, bag_label_topic, logger)
    if split not in SPLIT_PARTS:
        raise ReplayError(f'split must be one of {", ".join(SPLIT_PARTS)}, got {split!r}')
    return DatasetSource(dataset, root, setting, seed, split, frame_id, logger)
