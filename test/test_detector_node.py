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

"""The detector node as a separate process on real DDS (rclpy + Fast DDS, loopback).

One node process (config/rover.yaml with ``transport:=raw``, a PaDiM model fitted by the CLI on
synthetic lunar chips, ``image`` and ``camera_info`` remapped as the rover launch file does)
serves most tests; the test process publishes frames and collects every output. The compressed
transport is tested under a namespace in test_detector_lifecycle.py.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped
import numpy as np
import pytest
import ros_harness
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from vad4space_ros.data.samples import load_rgb
from vad4space_ros.deploy.image_encoding import array_to_image, image_to_array, RawImage
from vad4space_ros.nodes.ros_conversions import msg_to_record, raw_to_image_msg

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
IMAGE_TOPIC = '/mastcam/image_raw'
NODE = '/vad4space_detector'
ANSWER_TIMEOUT = 30.0
NODE_ENV = {'OMP_NUM_THREADS': '1'}


@dataclass
class DetectorSession:
    """A running detector process and the test-side publishers and collectors."""

    process: ros_harness.NodeProcess
    ros: ros_harness.RosTestNode
    image_pub: object
    outputs: dict[str, ros_harness.MessageCollector]
    diagnostics: ros_harness.MessageCollector
    frame_count: int = 0

    def header(self, label: str) -> Header:
        """Return a fresh header stamped now with a unique frame_id."""
        self.frame_count += 1
        header = Header(frame_id=f'{label}-{self.frame_count}')
        header.stamp = self.ros.node.get_clock().now().to_msg()
        return header

    def answers(self, frame_id: str) -> dict[str, object]:
        """Return the first message of each output carrying ``frame_id``."""
        found = {}
        for name, collector in self.outputs.items():
            for message in collector.messages:
                if message.header.frame_id == frame_id:
                    found[name] = message
                    break
        return found

    def send(self, message: Image | CompressedImage, wanted: tuple[str, ...] = ('score',),
             timeout: float = ANSWER_TIMEOUT) -> dict[str, object]:
        """Publish one frame and wait for its answers (republished once if lost on the way)."""
        frame_id = message.header.frame_id
        for _attempt in range(2):
            self.image_pub.publish(message)
            try:
                self.ros.spin_until(lambda: all(k in self.answers(frame_id) for k in wanted),
                                    timeout / 2, self.process, what=f'answers to {frame_id}')
                return self.answers(frame_id)
            except AssertionError:
                self.process.assert_alive()
        raise AssertionError(f'no {wanted} for frame {frame_id}; log:\n{self.process.log()}')

    def latest_status(self, newer_than: float) -> dict[str, str]:
        """Wait for a /diagnostics status of this node received after ``newer_than``."""
        def fresh() -> list:
            return [message for message, arrived in zip(self.diagnostics.messages,
                                                        self.diagnostics.arrival_times)
                    if arrived > newer_than and message.status
                    and message.status[0].name.startswith('vad4space_detector')]
        self.ros.spin_until(lambda: bool(fresh()), 10.0, self.process, what='/diagnostics')
        return {pair.key: pair.value for pair in fresh()[-1].status[0].values}


def image_msg(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """Pack pixels into an Image message."""
    return raw_to_image_msg(array_to_image(pixels, encoding), header)


def compressed_msg(pixels: np.ndarray, extension: str, header: Header) -> CompressedImage:
    """Encode a grey (HxW) or RGB image as a JPEG/PNG CompressedImage."""
    ok, buffer = cv2.imencode(extension, pixels if pixels.ndim == 2 else pixels[:, :, ::-1])
    assert ok
    message = CompressedImage(header=header, format=extension[1:])
    message.data = buffer.tobytes()
    return message


def with_crater(grey: np.ndarray, seed: int) -> np.ndarray:
    """Inject a fresh-crater-like feature: dark floor, bright rim and ejecta rays."""
    rng = np.random.default_rng(seed)
    out = grey.astype(np.float32)
    height, width = grey.shape
    cy, cx = rng.uniform(0.35, 0.65, 2) * (height, width)
    yy, xx = np.mgrid[:height, :width]
    radius = np.hypot(yy - cy, xx - cx)
    crater = 0.12 * min(height, width)
    out[radius < crater] *= 0.35
    out[(radius >= crater) & (radius < 1.3 * crater)] = 250.0
    angle = np.arctan2(yy - cy, xx - cx)
    rays = (np.cos(angle * 9) > 0.6) & (radius >= 1.3 * crater) & (radius < 3 * crater)
    out[rays] = np.maximum(out[rays], 225.0)
    return np.clip(out, 0, 255).astype(np.uint8)


def grey_chips(root: Path, category: str, count: int) -> list[np.ndarray]:
    """Load the first ``count`` chips of test/<category> as HxW uint8."""
    files = sorted((root / 'test' / category).glob('*.jpg'))[:count]
    assert len(files) == count, f'expected {count} chips in {root / "test" / category}'
    return [load_rgb(path)[:, :, 0].copy() for path in files]


def camera_info_topic(image_topic: str) -> str:
    """Return the image_transport camera_info topic beside ``image_topic``."""
    return image_topic.rsplit('/', 1)[0] + '/camera_info'


@contextmanager
def detector_session(model: Path, params_file: str, handshake: tuple[np.ndarray, str],
                     transport: str = 'raw', image_topic: str = IMAGE_TOPIC,
                     parameters: dict[str, object] | None = None,
                     ) -> Iterator[DetectorSession]:
    """Start the detector on ``model`` with ``config/<params_file>``; handshake; yield.

    The test publishes ``handshake`` frames on ``image_topic`` (raw transport) or
    ``<image_topic>/compressed`` as PNG.
    """
    input_topic = image_topic + ('/compressed' if transport == 'compressed' else '')
    parameters = {
        'model_path': str(model), 'diagnostics_period': 0.5, 'transport': transport,
        # QoS override: the sensor-data default is best effort; loopback UDP can lose
        # fragments of 200 kB frames, so the test subscribes reliably.
        f'qos_overrides.{input_topic}.subscription.reliability': 'reliable',
        **(parameters or {}),
    }
    with ros_harness.run_node(
            ros_harness.node_command('vad4space_detector', 'vad4space_ros.nodes.detector_node'),
            parameters=parameters, params_file=PACKAGE_ROOT / 'config' / params_file,
            remappings={'image': image_topic, 'camera_info': camera_info_topic(image_topic)},
            env=NODE_ENV) as process, \
            ros_harness.RosTestNode() as ros:
        outputs = {
            'score': ros.collect(PointStamped, f'{NODE}/score'),
            'detection': ros.collect(DiagnosticArray, f'{NODE}/detection'),
            'map': ros.collect(Image, f'{NODE}/anomaly_map'),
            'heatmap': ros.collect(Image, f'{NODE}/heatmap'),
        }
        session = DetectorSession(
            process=process, ros=ros,
            image_pub=ros.node.create_publisher(
                CompressedImage if transport == 'compressed' else Image, input_topic, 10),
            outputs=outputs, diagnostics=ros.collect(DiagnosticArray, '/diagnostics'))
        pixels, encoding = handshake
        hello = session.header('hello')
        ros.publish_until_answered(
            session.image_pub, compressed_msg(pixels, '.png', hello) if transport == 'compressed'
            else image_msg(pixels, encoding, hello),
            list(outputs.values()), timeout=120.0, process=process)
        yield session


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the folder the node may load models from at run time (empty at first)."""
    return tmp_path_factory.mktemp('model_dir')


@pytest.fixture(scope='module')
def detector(padim_model: Path, model_dir: Path) -> Iterator[DetectorSession]:
    """Start the detector with config/rover.yaml (raw transport); handshake."""
    with detector_session(padim_model, 'rover.yaml', (np.full((64, 64), 100, np.uint8), 'mono8'),
                          parameters={'model_dir': str(model_dir)}) as session:
        yield session


def stamp_of(message: object) -> tuple[int, int, str]:
    """Return (sec, nanosec, frame_id) of a stamped message."""
    return (message.header.stamp.sec, message.header.stamp.nanosec, message.header.frame_id)


def test_each_frame_gets_map_heatmap_score_and_detection_with_its_header(
        detector: DetectorSession, lunar_chips: Path) -> None:
    everything = ('score', 'detection', 'map', 'heatmap')
    for chip in grey_chips(lunar_chips, 'none', 3):
        rgb = np.repeat(chip[:, :, None], 3, axis=2)
        header = detector.header('frame')
        answers = detector.send(image_msg(rgb, 'rgb8', header), everything)
        for message in answers.values():
            assert stamp_of(message) == (header.stamp.sec, header.stamp.nanosec,
                                         header.frame_id)
        anomaly_map = image_to_array(RawImage(
            answers['map'].height, answers['map'].width, answers['map'].encoding,
            bool(answers['map'].is_bigendian), answers['map'].step, bytes(answers['map'].data)))
        assert answers['map'].encoding == '32FC1' and anomaly_map.shape == chip.shape
        assert np.isfinite(anomaly_map).all() and anomaly_map.std() > 0
        assert answers['heatmap'].encoding == 'rgb8'
        assert (answers['heatmap'].height, answers['heatmap'].width) == chip.shape
        record = msg_to_record(answers['detection'])
        score = answers['score'].point
        assert record.frame_id == header.frame_id
        assert record.stamp_ns == header.stamp.sec * 10**9 + header.stamp.nanosec
        assert (record.score, record.raw_score, record.threshold) == pytest.approx(
            (score.x, score.y, score.z))
        assert record.threshold == 0.5 and record.method == 'padim'
        assert record.is_anomaly == (record.score >= 0.5)
        assert answers['detection'].status[0].hardware_id == record.model_id
        assert record.latency_ms > 0 and record.embedding.size > 0
    status = detector.latest_status(time.monotonic())
    assert status['model_loaded'] == 'true' and int(status['processed']) >= 3


def test_injected_craters_score_above_the_same_frames_without(
        detector: DetectorSession, lunar_chips: Path) -> None:
    plain, cratered = [], []
    for index, chip in enumerate(grey_chips(lunar_chips, 'none', 4)):
        for pixels, scores in ((chip, plain), (with_crater(chip, index), cratered)):
            answer = detector.send(image_msg(pixels, 'mono8', detector.header('crater')))
            scores.append(answer['score'].point.x)
    assert all(c > p for c, p in zip(cratered, plain)), (plain, cratered)
    assert min(cratered) > max(plain), (plain, cratered)
    ejecta = [detector.send(image_msg(chip, 'mono8', detector.header('ejecta')))['score']
              .point.x for chip in grey_chips(lunar_chips, 'ejecta', 4)]
    assert np.mean(ejecta) > np.mean(plain), (plain, ejecta)


def test_every_encoding_gives_the_same_score(
        detector: DetectorSession, lunar_chips: Path) -> None:
    chip = grey_chips(lunar_chips, 'none', 1)[0]
    rgb = np.repeat(chip[:, :, None], 3, axis=2)
    alpha = np.full(chip.shape, 7, np.uint8)
    frames = {
        'mono8': (chip, 'mono8'),
        'rgb8': (rgb, 'rgb8'),
        'bgr8': (rgb[:, :, ::-1], 'bgr8'),
        'bgra8': (np.dstack([rgb[:, :, ::-1], alpha]), 'bgra8'),
        'rgba8': (np.dstack([rgb, alpha]), 'rgba8'),
        # config/rover.yaml: 16-bit data is 12-bit (sixteen_bit_max 4095), float is 0..1.
        'mono16': (((chip.astype(np.int32) * 4095 + 127) // 255).astype(np.uint16), 'mono16'),
        '32FC1': (chip.astype(np.float32) / 255.0, '32FC1'),
        '8UC6': (np.dstack([rgb, np.zeros_like(rgb)]), '8UC6'),
    }
    scores = {name: detector.send(image_msg(pixels, encoding, detector.header(name)))['score']
              .point.x for name, (pixels, encoding) in frames.items()}
    for name, score in scores.items():
        assert score == pytest.approx(scores['mono8'], abs=1e-3), (name, scores)


def bad_frames(header: Header) -> list[Image]:
    """Return the raw bad-input corpus: one frame per failure mode."""
    def image(height: int, width: int, encoding: str, step: int, data: bytes) -> Image:
        message = Image(header=header, height=height, width=width, encoding=encoding,
                        step=step)
        message.data = data
        return message

    nan_map = np.full((32, 32), 0.5, np.float32)
    nan_map[5, 7] = np.nan
    return [
        image(32, 32, 'yuv422_yuy2', 64, bytes(64 * 32)),   # unsupported encoding
        image(0, 0, 'rgb8', 0, b''),                         # zero-size
        image(32, 32, 'rgb8', 90, bytes(90 * 32)),           # step smaller than a row
        image(32, 32, 'rgb8', 96, bytes(96 * 32 - 100)),     # truncated data
        image(32, 32, '32FC1', 128, nan_map.tobytes()),      # NaN
    ]


def truncated_jpeg(header: Header) -> CompressedImage:
    """Return a JPEG frame cut after 40 bytes."""
    message = CompressedImage(header=header, format='jpeg')
    message.data = cv2.imencode('.jpg', np.zeros((32, 32, 3), np.uint8))[1].tobytes()[:40]
    return message


def test_bad_frames_are_rejected_and_the_node_keeps_answering(
        detector: DetectorSession, lunar_chips: Path) -> None:
    before = detector.latest_status(time.monotonic())
    corpus = bad_frames(detector.header('bad'))
    for message in corpus:
        detector.image_pub.publish(message)
        detector.ros.spin_for(0.2)
    chip = grey_chips(lunar_chips, 'none', 1)[0]
    answer = detector.send(image_msg(chip, 'mono8', detector.header('after-bad')))
    assert np.isfinite(answer['score'].point.x)
    after = detector.latest_status(time.monotonic())
    assert int(after['rejected']) - int(before['rejected']) == len(corpus)
    assert int(after['failed']) == 0
    levels = [(message.status[0].level, message.status[0].message)
              for message in detector.diagnostics.messages
              if message.status[0].name.startswith('vad4space_detector')]
    assert any(level == DiagnosticStatus.WARN and 'rejected' in text for level, text in levels)
    detector.latest_status(time.monotonic() + 0.6)  # a whole period without bad frames
    assert detector.diagnostics.messages[-1].status[0].level == DiagnosticStatus.OK
    log = detector.process.log()
    assert 'rejected frame' in log and 'WARN' in log


def test_parameters_change_at_run_time_and_bad_values_are_refused(
        detector: DetectorSession, lunar_chips: Path, model_dir: Path) -> None:
    chip = grey_chips(lunar_chips, 'none', 1)[0]
    set_parameters = detector.ros.set_parameters
    results = set_parameters(NODE, {'threshold': 0.001, 'publish_heatmap': False},
                             process=detector.process)
    assert all(result.successful for result in results)
    header = detector.header('runtime')
    answer = detector.send(image_msg(chip, 'mono8', header), ('score', 'detection', 'map'))
    assert answer['score'].point.z == pytest.approx(0.001)
    record = msg_to_record(answer['detection'])
    assert record.is_anomaly == (record.score >= 0.001)
    detector.ros.spin_for(1.0)
    assert 'heatmap' not in detector.answers(header.frame_id)

    broken_model = model_dir / 'broken.safetensors'
    broken_model.write_bytes(b'not a model')
    refused = {
        'threshold': -1.0,                      # outside the declared range
        'multispectral_rgb_bands': [0, 1, 9],   # band 9 does not exist
        'model_path': str(broken_model),        # under model_dir, but must load to be accepted
        'queue_size': 5,                        # read-only after start
        'transport': 'compressed',              # read-only after start
        'model_dir': '/',                       # read-only after start
    }
    for name, value in refused.items():
        result = set_parameters(NODE, {name: value}, process=detector.process)[0]
        assert not result.successful, name
        assert result.reason, name
        if name == 'model_path':
            assert 'cannot load model' in result.reason, result.reason
    results = set_parameters(NODE, {'threshold': 0.5, 'publish_heatmap': True},
                             process=detector.process)
    assert all(result.successful for result in results)
    answer = detector.send(image_msg(chip, 'mono8', detector.header('restored')),
                           ('score', 'heatmap'))
    assert answer['score'].point.z == 0.5


def test_camera_info_goes_out_with_each_map_and_heatmap_header(
        detector: DetectorSession, lunar_chips: Path) -> None:
    ros = detector.ros
    republished = ros.collect(CameraInfo, f'{NODE}/camera_info')
    camera_pub = ros.node.create_publisher(CameraInfo, camera_info_topic(IMAGE_TOPIC), 10)
    ros.wait_for_subscribers(camera_pub, process=detector.process)
    chip = grey_chips(lunar_chips, 'none', 1)[0]
    camera_info = CameraInfo(header=detector.header('camera'), height=chip.shape[0],
                             width=chip.shape[1], distortion_model='plumb_bob')
    camera_info.k = [700.0, 0.0, 64.0, 0.0, 700.0, 64.0, 0.0, 0.0, 1.0]
    camera_info.d = [0.01, -0.02, 0.0, 0.0, 0.0]
    frames = []
    for _ in range(3):
        camera_pub.publish(camera_info)
        ros.spin_for(0.3)
        header = detector.header('with-info')
        frames.append((header, detector.send(image_msg(chip, 'mono8', header),
                                             ('map', 'heatmap'))))
    ros.spin_until(lambda: len(republished.messages) >= 2, 10.0, detector.process,
                   what='~/camera_info')
    by_frame = {message.header.frame_id: message for message in republished.messages}
    matched = [(header, answers) for header, answers in frames if header.frame_id in by_frame]
    assert len(matched) >= 2, [m.header.frame_id for m in republished.messages]
    for header, answers in matched:
        info = by_frame[header.frame_id]
        assert stamp_of(info) == stamp_of(answers['map']) == stamp_of(answers['heatmap'])
        assert (info.height, info.width) == (answers['map'].height, answers['map'].width)
        assert list(info.k) == list(camera_info.k) and list(info.d) == list(camera_info.d)
        assert info.distortion_model == 'plumb_bob'


def test_a_30_hz_burst_keeps_the_queue_bounded(
        detector: DetectorSession, lunar_chips: Path) -> None:
    chips = grey_chips(lunar_chips, 'none', 5)
    earlier_ms = [msg_to_record(m).latency_ms for m in detector.outputs['detection'].messages]
    # 30 Hz, or faster if this machine runs the model faster: the burst must overload it.
    rate_hz = max(30.0, 3000.0 / float(np.median(earlier_ms)))
    before = detector.latest_status(time.monotonic())
    first = detector.frame_count + 1
    sent = 90
    start = time.monotonic()
    for index in range(sent):
        detector.image_pub.publish(image_msg(chips[index % 5], 'mono8', detector.header('burst')))
        while time.monotonic() < start + (index + 1) / rate_hz:
            detector.ros.spin_once(0.002)
    detector.ros.spin_for(3.0)
    after = detector.latest_status(time.monotonic())
    burst_ids = {f'burst-{n}' for n in range(first, first + sent)}
    answered = [(m, t) for m, t in zip(detector.outputs['score'].messages,
                                       detector.outputs['score'].arrival_times)
                if m.header.frame_id in burst_ids]
    records = [msg_to_record(m) for m in detector.outputs['detection'].messages
               if m.header.frame_id in burst_ids]
    received = int(after['received']) - int(before['received'])
    dropped = int(after['dropped']) - int(before['dropped'])
    processed = int(after['processed']) - int(before['processed'])
    inference_s = max(r.latency_ms for r in records) / 1000.0
    assert dropped > 0 and received == processed + dropped
    assert len(answered) == processed
    # Queue of 1 (config/rover.yaml): a published frame waited at most for the frame being
    # processed and its own inference, plus transport and conversion.
    clock_offset = time.time() - time.monotonic()
    latencies = [arrived + clock_offset - (m.header.stamp.sec + m.header.stamp.nanosec / 1e9)
                 for m, arrived in answered]
    assert max(latencies) < 2 * inference_s + 0.5, (max(latencies), inference_s)
    assert int(after['queued']) <= int(after['queue_size']) == 1


def test_missing_or_corrupt_model_or_bad_transport_stops_the_node_with_exit_code_1(
        tmp_path: Path, padim_model: Path) -> None:
    truncated = tmp_path / 'truncated.safetensors'
    truncated.write_bytes(padim_model.read_bytes()[:4096])
    command = ros_harness.node_command('vad4space_detector', 'vad4space_ros.nodes.detector_node')
    cases = {'missing': tmp_path / 'absent.safetensors', 'truncated': truncated}
    with ros_harness.run_node(command, {'model_path': str(cases['missing'])},
                              name='missing_model', env=NODE_ENV) as missing, \
            ros_harness.run_node(command, {'model_path': str(cases['truncated'])},
                                 name='truncated_model', env=NODE_ENV) as corrupt:
        for case, process in (('missing', missing), ('truncated', corrupt)):
            assert process.wait(timeout=120) == 1, process.log()
            log = process.log()
            assert 'cannot load model' in log and str(cases[case]) in log, log
            assert 'Traceback' not in log
    with ros_harness.run_node(command, {'model_path': str(padim_model), 'transport': 'theora'},
                              name='bad_transport', env=NODE_ENV) as bad_transport:
        assert bad_transport.wait(timeout=120) == 1, bad_transport.log()
        assert "transport must be one of raw, compressed, got 'theora'" in bad_transport.log()


def test_newest_frame_queue_drops_the_oldest_and_stays_bounded() -> None:
    from vad4space_ros.nodes.frame_queue import Frame, NewestFrameQueue

    queue = NewestFrameQueue(2)
    frames = [Frame(Image(header=Header(frame_id=str(n))), float(n)) for n in range(5)]
    dropped = [queue.put(frame) for frame in frames]
    assert dropped == [0, 0, 1, 1, 1] and len(queue) == 2
    assert [queue.get(0.0).message.header.frame_id for _ in range(2)] == ['3', '4']
    assert queue.get(0.01) is None
    queue.close()
    assert queue.put(frames[0]) == 0 and len(queue) == 0 and queue.get(0.0) is None


def test_detector_node_runs_as_a_component_in_another_process(padim_model: Path,
                                                              ros: ros_harness.RosTestNode,
                                                              lunar_chips: Path) -> None:
    from rclpy.parameter import Parameter

    from vad4space_ros.nodes.detector_node import DetectorNode

    component = DetectorNode(node_name='component_detector', context=ros.context,
                             parameter_overrides=[Parameter('model_path',
                                                            value=str(padim_model))])
    try:
        ros.executor.add_node(component)
        scores = ros.collect(PointStamped, '/component_detector/score')
        publisher = ros.node.create_publisher(Image, '/image', 10)
        chip = grey_chips(lunar_chips, 'none', 1)[0]
        ros.publish_until_answered(publisher, image_msg(chip, 'mono8', Header(frame_id='c')),
                                   [scores], timeout=60.0)
        assert scores.messages[0].header.frame_id == 'c'
        assert component.counters.totals['processed'] >= 1
        assert component.lifecycle_state == 'active'  # autostart
    finally:
        ros.executor.remove_node(component)
        component.destroy_node()
