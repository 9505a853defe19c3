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

"""Pair detection records with their frame and heatmap images, which arrive in any order.

The detector publishes a frame's record, image and heatmap on separate topics. Images that arrive
first are cached (the last ``cache_limit`` of each) until their record comes; a record whose
image is still missing is remembered (again the last ``cache_limit``) so that an image arriving
after it is attached to its item while the item is queued.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.downlink.intake import IntakeTask, Key


class ImageMatcher:
    """Match records and images by (stamp, frame id); build the intake tasks that carry them."""

    def __init__(self, cache_limit: int, thumbnail_from_frame: bool) -> None:
        """Keep ``cache_limit`` entries per cache; thumbnails come from the frame or heatmap."""
        self.cache_limit = cache_limit
        self.thumbnail_from_frame = thumbnail_from_frame
        self._frames: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._heatmaps: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._awaiting: OrderedDict[Key, list] = OrderedDict()  # [regions, need frame, thumb]

    def detection_task(self, record: DetectionRecord) -> IntakeTask:
        """Return the task accepting ``record`` with its cached frame and thumbnail, if any."""
        key = (record.stamp_ns, record.frame_id)
        frame = self._frames.pop(key, None)
        heatmap = self._heatmaps.pop(key, None)
        thumbnail = frame if self.thumbnail_from_frame else heatmap
        return IntakeTask(key, record, record.regions, frame, thumbnail)

    def await_images(self, task: IntakeTask) -> None:
        """Remember a submitted detection task that lacks its frame or thumbnail."""
        if task.frame is None or task.thumbnail is None:
            self._remember(self._awaiting, task.key,
                           [task.regions, task.frame is None, task.thumbnail is None])

    def image_task(self, key: Key, pixels: np.ndarray, is_frame: bool) -> IntakeTask | None:
        """Cache an image until its record arrives, or return the task attaching it to one.

        ``is_frame``: the image is a frame (else a heatmap). None when the image is cached or
        the waiting record does not need it.
        """
        waiting = self._awaiting.get(key)
        if waiting is None:
            self._remember(self._frames if is_frame else self._heatmaps, key, pixels)
            return None
        regions, need_frame, need_thumbnail = waiting
        frame = pixels if is_frame and need_frame else None
        gives_thumbnail = is_frame == self.thumbnail_from_frame
        thumbnail = pixels if gives_thumbnail and need_thumbnail else None
        if frame is None and thumbnail is None:
            return None
        return IntakeTask(key, None, regions, frame, thumbnail)

    def attached(self, task: IntakeTask) -> None:
        """Stop waiting for what a submitted :meth:`image_task` task carries."""
        waiting = self._awaiting[task.key]
        waiting[1:] = [waiting[1] and task.frame is None, waiting[2] and task.thumbnail is None]
        if not any(waiting[1:]):
            self._awaiting.pop(task.key)

    def _remember(self, cache: OrderedDict, key: Key, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.cache_limit:
            cache.popitem(last=False)
