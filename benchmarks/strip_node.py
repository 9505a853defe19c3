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

"""A NAC-size image streamed as strips through the strip detector node over DDS (issue 14).

The flight path end to end: this process publishes a generated 5,064 x 52,224 grey image
(SYNTHETIC: a mosaic of generated LROC ``none`` chips, ``synthetic_frames.ChipMosaic``) as
1,024-row ``sensor_msgs/Image`` strips, each with its ``CameraInfo`` (``roi.y_offset`` = row
offset, ``height`` = image height), to one ``vad4space_strip_detector`` process (loopback-only
DDS on a private domain, as in the tests). At most ``--in-flight`` strips are sent ahead of the
map rows the node has published back. Reported: seconds from the first strip to the image's
detection record, map rows received, tiles, and the node's resident memory (``VmRSS`` after
loading, peak ``VmHWM`` at the end)::

    .venv/bin/python benchmarks/strip_node.py lroc_padim.onnx

Adds a ``nac_node`` section to ``benchmarks/results/full_frames.json``. A benchmark, not a
test: figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACKAGE_ROOT / 'test'))

import ros_harness  # noqa: E402  (sets the isolated ROS environment before rclpy is used)

from vad4space_ros.evaluation.resources import process_memory_mb  # noqa: E402,I100

RESULTS = PACKAGE_ROOT / 'benchmarks' / 'results' / 'full_frames.json'
NODE = '/vad4space_strip_detector'


def log(message: str) -> None:
    """Print progress to stderr."""
    print(f'[{time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def stream(args: argparse.Namespace) -> dict:
    """Run the node, stream the image, return the figures."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from vad4space_ros.data.synthetic_frames import ChipMosaic
    from vad4space_ros.deploy.image_encoding import array_to_image
    from vad4space_ros.nodes.ros_conversions import msg_to_record, raw_to_image_msg, strip_info
    from vad4space_ros.nodes.strip_detector_node import STRIP_QOS

    command = ros_harness.node_command('vad4space_strip_detector',
                                       'vad4space_ros.nodes.strip_detector_node')
    parameters = {'model_path': str(args.model), 'tile_batch_size': args.batch,
                  'strip_timeout': 600.0}
    mosaic = ChipMosaic(args.width, args.height, seed=3)
    with ros_harness.RosTestNode('strip_node_benchmark') as ros, \
            ros_harness.run_node(command, parameters,
                                 env={'OMP_NUM_THREADS': str(args.threads)}) as process:
        strips = ros.node.create_publisher(Image, 'image', STRIP_QOS)
        infos = ros.node.create_publisher(CameraInfo, 'camera_info', STRIP_QOS)
        detections = ros.collect(DiagnosticArray, f'{NODE}/detection')
        map_infos = ros.collect(CameraInfo, f'{NODE}/camera_info', STRIP_QOS)

        def send(frame_id: str, offset: int, rows, height: int) -> None:
            header = Header(frame_id=frame_id)   # each strip its own stamp
            header.stamp.sec, header.stamp.nanosec = 1, offset
            strips.publish(raw_to_image_msg(array_to_image(rows, 'mono8'), header))
            infos.publish(strip_info(header, offset, *rows.shape[:2], height))

        ros.wait_for_subscribers(strips, timeout=120.0, process=process)
        ros.wait_for_subscribers(infos, timeout=120.0, process=process)
        hello = mosaic.rows(0, 227)[:, :227]
        while not detections.messages:       # handshake: one-strip images until one is scored
            send('hello', 0, hello, 227)
            ros.spin_for(0.5)
            process.assert_alive()
        loaded_rss = process_memory_mb(process.pid, 'VmRSS')
        ros.spin_for(1.0)
        detections.clear()
        map_infos.clear()

        def rows_back() -> int:
            done = [m.roi.y_offset + m.roi.height for m in map_infos.messages
                    if m.header.frame_id == 'nac']
            return max(done, default=0)

        started = time.monotonic()
        for number, (offset, rows) in enumerate(mosaic.strips(args.strip_rows)):
            ros.spin_until(lambda: rows_back() >= offset - args.in_flight * args.strip_rows,
                           600.0, process, what=f'map rows up to {offset}')
            send('nac', offset, rows, args.height)
            if number % 10 == 0:
                log(f'strip at row {offset}: {time.monotonic() - started:.0f} s, map rows back '
                    f'{rows_back()}, node RSS {process_memory_mb(process.pid):.0f} MB')
        ros.spin_until(lambda: any(msg_to_record(m).frame_id == 'nac'
                                   for m in detections.messages), 600.0, process,
                       what='the image detection')
        seconds = time.monotonic() - started
        ros.spin_for(1.0)
        record = next(msg_to_record(m) for m in detections.messages
                      if msg_to_record(m).frame_id == 'nac')
        peak = process_memory_mb(process.pid, 'VmHWM')
        rows = sum(m.roi.height for m in map_infos.messages if m.header.frame_id == 'nac')
    return {'model': str(args.model), 'width': args.width, 'height': args.height,
            'rows_per_strip': args.strip_rows, 'tile_batch': args.batch,
            'threads': args.threads, 'strips_in_flight': args.in_flight,
            'seconds_first_strip_to_detection': seconds, 'map_rows_received': rows,
            'scoring_ms_in_node': record.latency_ms, 'score': record.score,
            'regions': len(record.regions), 'rss_after_model_load_mb': loaded_rss,
            'peak_rss_mb': peak}


def main() -> int:
    """Run the benchmark, add the figures to the results, print them."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', type=Path, help='model fitted on 227-px chips (.onnx)')
    parser.add_argument('--width', type=int, default=5064)
    parser.add_argument('--height', type=int, default=52224)
    parser.add_argument('--strip-rows', type=int, default=1024)
    parser.add_argument('--batch', type=int, default=16, help='tile_batch_size of the node')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--in-flight', type=int, default=3,
                        help='strips sent ahead of the map rows received back')
    parser.add_argument('--output', type=Path, default=RESULTS)
    args = parser.parse_args()
    figures = stream(args)
    results = json.loads(args.output.read_text()) if args.output.is_file() else {}
    results['nac_node'] = figures
    args.output.write_text(json.dumps(results, indent=2) + '\n')
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
