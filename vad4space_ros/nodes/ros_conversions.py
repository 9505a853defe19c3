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

"""Conversions between ROS messages and the ROS-free core types.

- ``sensor_msgs/Image`` <-> :class:`~vad4space_ros.deploy.image_encoding.RawImage`;
- :class:`~vad4space_ros.deploy.records.DetectionRecord` <-> ``diagnostic_msgs/DiagnosticArray``
  (the ``~/detection`` wire form: one status named ``vad4space/detection``, level OK = normal,
  WARN = anomaly, hardware_id = model id, message ``anomaly``/``normal``, values = the record's
  key/value pairs);
- the detector's score as ``geometry_msgs/PointStamped`` (x = calibrated score, y = raw score,
  z = threshold; a stamped standard type, so no custom interface package is needed);
- a push-broom strip's place as ``sensor_msgs/CameraInfo`` (:func:`strip_info`: ``roi`` = the
  strip's rows in the whole image, ``height`` = the whole image's; docs/full_frames.md);
- header stamps <-> integer nanoseconds (:func:`stamp_to_ns`, :func:`ns_to_stamp`; the
  arithmetic is :mod:`vad4space_ros.stamps`, shared with the ROS-free bag code).
"""
from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from std_msgs.msg import Header

from vad4space_ros.deploy.image_encoding import check_frame_size, image_to_array, RawImage
from vad4space_ros.deploy.records import DetectionRecord, RECORD_NAME, RecordError
from vad4space_ros.stamps import ns_to_sec_nanosec, stamp_to_ns

__all__ = ['frame_header', 'image_msg_pixels', 'image_msg_to_raw', 'msg_to_record', 'ns_to_stamp',
           'raw_to_image_msg', 'record_to_msg', 'score_msg', 'stamp_to_ns', 'strip_info']


def image_msg_to_raw(msg: Image) -> RawImage:
    """Describe an Image message as RawImage (the data buffer is shared, not copied)."""
    return RawImage(height=int(msg.height), width=int(msg.width), encoding=msg.encoding,
                    is_bigendian=bool(msg.is_bigendian), step=int(msg.step),
                    data=memoryview(msg.data).cast('B'))


def image_msg_pixels(msg: Image, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """Return an Image message's pixels (HxW or HxWxC, native dtype) and encoding.

    With ``max_pixels``, a frame above it is refused from its header before any copy.
    Raises ImageEncodingError (a ValueError) on a bad size, encoding or buffer.
    """
    if max_pixels is not None:
        check_frame_size(int(msg.width), int(msg.height), max_pixels)
    raw = image_msg_to_raw(msg)
    return image_to_array(raw), raw.encoding


def raw_to_image_msg(raw: RawImage, header: Header) -> Image:
    """Build an Image message with the given header."""
    msg = Image(header=header, height=raw.height, width=raw.width, encoding=raw.encoding,
                is_bigendian=int(raw.is_bigendian), step=raw.step)
    msg.data = bytes(raw.data)
    return msg


def ns_to_stamp(stamp_ns: int) -> Time:
    """Return nanoseconds as a ``builtin_interfaces/Time`` (for ``header.stamp``)."""
    sec, nanosec = ns_to_sec_nanosec(stamp_ns)
    return Time(sec=sec, nanosec=nanosec)


def frame_header(frame_id: str, stamp_ns: int) -> Header:
    """Rebuild a frame's header from its id and stamp in nanoseconds."""
    return Header(frame_id=frame_id, stamp=ns_to_stamp(stamp_ns))


def strip_info(header: Header, row_offset: int, rows: int, width: int,
               image_height: int = 0) -> CameraInfo:
    """Describe a strip of ``rows`` x ``width`` from ``row_offset`` of a taller image.

    ``image_height`` is the whole image's (0 = not known yet).
    """
    return CameraInfo(header=header, height=image_height, width=width, roi=RegionOfInterest(
        x_offset=0, y_offset=row_offset, height=rows, width=width))


def score_msg(header: Header, score: float, raw_score: float, threshold: float) -> PointStamped:
    """Pack a score into PointStamped (x = score, y = raw score, z = threshold)."""
    msg = PointStamped(header=header)
    msg.point.x, msg.point.y, msg.point.z = float(score), float(raw_score), float(threshold)
    return msg


def record_to_msg(record: DetectionRecord, header: Header) -> DiagnosticArray:
    """Wrap a detection record in the ``~/detection`` DiagnosticArray."""
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN if record.is_anomaly else DiagnosticStatus.OK,
        name=RECORD_NAME, hardware_id=record.model_id,
        message='anomaly' if record.is_anomaly else 'normal',
        values=[KeyValue(key=key, value=value) for key, value in record.to_key_values()])
    return DiagnosticArray(header=header, status=[status])


def msg_to_record(msg: DiagnosticArray) -> DetectionRecord:
    """Read the detection record of a ``~/detection`` message; raise RecordError if absent."""
    for status in msg.status:
        if status.name == RECORD_NAME:
            return DetectionRecord.from_key_values(
                [(pair.key, pair.value) for pair in status.values])
    raise RecordError(f'DiagnosticArray has no {RECORD_NAME!r} status')
