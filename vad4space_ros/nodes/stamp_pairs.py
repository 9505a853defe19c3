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

"""Pair each strip (``sensor_msgs/Image``) with its ``CameraInfo`` by frame_id and stamp.

A camera publishes both with the same header (as image_transport's CameraPublisher does);
either may arrive first, so every strip needs its own stamp. At most ``capacity`` unpaired
messages of each kind are kept; older ones, and an unpaired one whose stamp comes again, are
dropped and counted (their partner was lost).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from std_msgs.msg import Header

from vad4space_ros.nodes.ros_conversions import stamp_to_ns

ImageT = TypeVar('ImageT')
InfoT = TypeVar('InfoT')
Key = tuple[str, int]


def header_key(header: Header) -> Key:
    """Return the (frame_id, stamp in ns) that pairs an image with its camera info."""
    return header.frame_id, stamp_to_ns(header)


class StampPairs(Generic[ImageT, InfoT]):
    """Unpaired images and camera infos, matched on :func:`header_key`."""

    def __init__(self, capacity: int) -> None:
        """Keep at most ``capacity`` unpaired messages of each kind."""
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self.dropped = 0
        self._images: OrderedDict[Key, ImageT] = OrderedDict()
        self._infos: OrderedDict[Key, InfoT] = OrderedDict()

    def add_image(self, key: Key, image: ImageT) -> tuple[ImageT, InfoT] | None:
        """Store an image; return (image, info) once its camera info is here."""
        info = self._infos.pop(key, None)
        if info is not None:
            return image, info
        self._keep(self._images, key, image)
        return None

    def add_info(self, key: Key, info: InfoT) -> tuple[ImageT, InfoT] | None:
        """Store a camera info; return (image, info) once its image is here."""
        image = self._images.pop(key, None)
        if image is not None:
            return image, info
        self._keep(self._infos, key, info)
        return None

    def _keep(self, waiting: OrderedDict, key: Key, message: object) -> None:
        if waiting.pop(key, None) is not None:   # a repeated stamp replaces the older message
            self.dropped += 1
        waiting[key] = message
        while len(waiting) > self.capacity:
            waiting.popitem(last=False)
            self.dropped += 1
