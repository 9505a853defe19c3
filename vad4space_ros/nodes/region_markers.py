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

"""Anomalous regions as ``visualization_msgs/ImageMarker`` messages (``~/regions``).

Why ImageMarker: it is the standard ROS message for 2D annotations in *pixel* coordinates of an
image (top-left origin, same ``header`` as the frame), shown over the image by image_view,
rqt_image_overlay and Foxglove's image panel; vision_msgs (Detection2DArray) is not part of the
package's dependencies. RViz's Image display does not draw ImageMarkers, so the same boxes are
also drawn on ``~/heatmap``.

Per frame the node publishes one ``POLYGON`` marker per region: ``ns`` = ``vad4space/regions``,
``id`` = rank (0 = best), ``points`` = the four box corners (x right, y down, pixels),
``outline_color`` from yellow (calibrated score 0.5) to red (1.0 and above), ``scale`` = line
width. Ranks used by the previous frame but not by this one are sent with ``action = REMOVE``, so
a viewer shows exactly the current frame's boxes. The scores themselves are in the detection
record (``regions`` key).
"""
from __future__ import annotations

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header

from vad4space_ros.deploy.records import Region
from visualization_msgs.msg import ImageMarker

MARKER_NAMESPACE = 'vad4space/regions'


def region_marker(region: Region, rank: int, header: Header) -> ImageMarker:
    """Return the outline of one region as a POLYGON ImageMarker."""
    left, top = float(region.x), float(region.y)
    right, bottom = left + region.width, top + region.height
    redness = min(max((region.score - 0.5) * 2.0, 0.0), 1.0)
    return ImageMarker(
        header=header, ns=MARKER_NAMESPACE, id=rank, type=ImageMarker.POLYGON,
        action=ImageMarker.ADD, scale=2.0, filled=0, lifetime=Duration(),
        outline_color=ColorRGBA(r=1.0, g=1.0 - redness, b=0.0, a=1.0),
        points=[Point(x=left, y=top), Point(x=right, y=top), Point(x=right, y=bottom),
                Point(x=left, y=bottom)])


def region_markers(regions: list[Region], header: Header,
                   previous_count: int) -> list[ImageMarker]:
    """Return the markers of a frame's regions and REMOVE markers for stale ranks."""
    markers = [region_marker(region, rank, header) for rank, region in enumerate(regions)]
    markers += [ImageMarker(header=header, ns=MARKER_NAMESPACE, id=rank,
                            action=ImageMarker.REMOVE)
                for rank in range(len(regions), previous_count)]
    return markers
