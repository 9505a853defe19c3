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

"""Replay → detector → evaluator as separate processes on real DDS (rclpy + Fast DDS, loopback).

The end-to-end test replays a setting-1 bag of synthetic LROC chips through a detector process in
closed loop and checks that the evaluator's metrics equal the offline ones computed with
``detector.predict`` on the same bag pixels: the ROS transport changes nothing. Smaller tests
cover a bag without images, dataset-folder playback and unmatched frames in the evaluator.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
import ros_harness
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from vad4space_ros.data import bags
from vad4space_ros.data import load_dataset
from vad4space_ros.data.labels import ground_truth_of, GroundTruth, LABEL_STATUS_NAME
from vad4space_ros.data.protocols import make_setting
from vad4space_ros.deploy.image_encoding import image_to_array
from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.evaluation.metrics import image_metrics
from vad4space_ros.nodes import evaluator_node, replay_node
from vad4space_ros.nodes.detector_parameters import PARAMETERS as DETECTOR_PARAMETERS
from vad4space_ros.nodes.ros_conversions import (
    image_msg_to_raw, ns_to_stamp, record_to_msg, stamp_to_ns)
import yaml

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
ONNX_FILE = (PACKAGE_ROOT.parent / 'shared' / 'data' / 'mobilenetv2_onnx_int8'
             / 'mobilenetv2-12-int8.onnx')
DETECTION_TOPIC = '/vad4space_detector/detection'
STATUS_TOPIC = '/vad4space_replay/status'
NODE_ENV = {'OMP_NUM_THREADS': '1'}
RUN_TIMEOUT = 120.0
RELIABLE_LATCHED = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope='module')
def setting1_bag(lunar_chips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the setting-1 test split of the synthetic LROC chips as a bag (28 frames)."""
    split = make_setting(load_dataset('lroc', lunar_chips), 1, seed=0)
    bag = tmp_path_factory.mktemp('replay_bags') / 'lroc_setting1'
    report = bags.write_benchmark_bag(split.test, bag, dataset='lroc', progress=False)
    assert report.frames == len(split.test) and not report.skipped
    return bag


@pytest.fixture(scope='module')
def small_padim(lunar_chips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fit a 64 px PaDiM in-process (ImageNet MobileNetV2 if the ONNX is here, else Lite0)."""
    from vad4space_ros.training.fitting import fit_detector, FitConfig

    if ONNX_FILE.is_file():
        os.environ.setdefault('VAD4SPACE_MOBILENETV2_ONNX', str(ONNX_FILE))
        backbone = 'mobilenet_v2'
    else:
        backbone = 'efficientnet_lite0'
    train = sorted((lunar_chips / 'train' / 'none').glob('*.jpg'))
    detector = fit_detector(train, FitConfig('padim', backbone=backbone, input_size=(64, 64),
                                             progress=False))
    return detector.save(tmp_path_factory.mktemp('replay_models') / 'padim64.safetensors')


def test_replay_detector_evaluator_match_offline_metrics(
        setting1_bag: Path, small_padim: Path, tmp_path: Path) -> None:
    from vad4space_ros.deploy.loading import load_model

    frames = list(bags.read_benchmark_bag(setting1_bag))
    metrics_file = tmp_path / 'metrics.json'
    detector_cmd = ros_harness.node_command('vad4space_detector')
    evaluator_cmd = ros_harness.node_command('vad4space_evaluator')
    replay_cmd = ros_harness.node_command('vad4space_replay')
    with ros_harness.run_node(
            detector_cmd, env=NODE_ENV,
            parameters={'model_path': str(small_padim), 'queue_size': 1,
                        'publish_heatmap': False, 'publish_map': False},
            remappings={'image': bags.IMAGE_TOPIC}) as detector_process, \
            ros_harness.run_node(
                evaluator_cmd,
                parameters={'output': str(metrics_file), 'labels_transient_local': True,
                            'timeout': RUN_TIMEOUT},
                remappings={'detection': DETECTION_TOPIC, 'label': bags.LABEL_TOPIC,
                            'replay_status': STATUS_TOPIC}) as evaluator, \
            ros_harness.run_node(
                replay_cmd,
                parameters={'bag': str(setting1_bag), 'pace_on_topic': DETECTION_TOPIC,
                            'pace_timeout': 10.0, 'wait_timeout': RUN_TIMEOUT},
                remappings={'image': bags.IMAGE_TOPIC, 'label': bags.LABEL_TOPIC}) as replay:
        # Offline reference: the same artifact on the same bag pixels, without ROS (computed
        # while the node processes start up).
        detector = load_model(small_padim)
        offline = {frame.stamp_ns: detector.predict(frame.image) for frame in frames}
        assert evaluator.wait(timeout=RUN_TIMEOUT) == 0, evaluator.log()
        assert replay.wait(timeout=30.0) == 0, replay.log()
        detector_process.assert_alive()
        assert 'done: passes 1, images_published 28' in replay.log()

    result = json.loads(metrics_file.read_text())
    counts = result['counts']
    assert counts['matched'] == counts['expected'] == len(frames) == 28
    assert counts['labels_without_detection'] == counts['detections_without_label'] == 0
    assert result['complete'] is True

    labels = [frame.label.label for frame in frames]
    offline_metrics = image_metrics(labels, [offline[f.stamp_ns].score for f in frames], 0.5)
    assert abs(result['metrics']['img_auroc'] - offline_metrics['img_auroc']) <= 1e-6
    assert abs(result['metrics']['auc_pr'] - offline_metrics['auc_pr']) <= 1e-6
    assert result['metrics']['img_f1'] == pytest.approx(offline_metrics['img_f1'], abs=1e-9)
    for frame in result['frames']:
        prediction = offline[frame['stamp_ns']]
        assert frame['score'] == pytest.approx(prediction.score, rel=1e-4, abs=1e-6)
        assert frame['is_anomaly'] == prediction.is_anomaly
    assert [frame['label'] for frame in result['frames']] == labels


def test_replay_of_a_bag_without_images_fails_clearly(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Writer

    bag = tmp_path / 'labels_only'
    with Writer(bag, version=bags.BAG_VERSION) as writer:
        writer.add_connection('/camera/label', bags.LABEL_TYPE, typestore=bags.TYPESTORE)
    with ros_harness.run_node(ros_harness.node_command('vad4space_replay'),
                              parameters={'bag': str(bag)}) as replay:
        assert replay.wait(timeout=30.0) == 1
        log = replay.log()
    assert f"no sensor_msgs/msg/Image topic '{bags.IMAGE_TOPIC}'" in log
    assert '/camera/label [diagnostic_msgs/msg/DiagnosticArray]' in log


def test_dataset_folder_replay_reproduces_the_bag(
        lunar_chips: Path, setting1_bag: Path, ros: ros_harness.RosTestNode) -> None:
    images = ros.collect(Image, '/replayed/image', QoSProfile(
        depth=100, reliability=ReliabilityPolicy.RELIABLE))
    labels = ros.collect(DiagnosticArray, '/replayed/label', RELIABLE_LATCHED)
    status = ros.collect(DiagnosticArray, STATUS_TOPIC, QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    frames = list(bags.read_benchmark_bag(setting1_bag))
    with ros_harness.run_node(
            ros_harness.node_command('vad4space_replay'),
            parameters={'dataset': 'lroc', 'root': str(lunar_chips), 'setting': 1,
                        'rate_hz': 100.0, 'wait_timeout': 30.0},
            remappings={'image': '/replayed/image', 'label': '/replayed/label'}) as replay:
        ros.spin_until(lambda: status.messages and status.messages[-1].status[0].message
                       == 'done' and len(images.messages) >= len(frames)
                       and len(labels.messages) >= len(frames), 30.0, what='a full replay')
        assert replay.wait(timeout=15.0) == 0
    done = {pair.key: pair.value for pair in status.messages[-1].status[0].values}
    assert done['images_published'] == done['labels_published'] == str(len(frames))
    assert len(images.messages) == len(labels.messages) == len(frames)
    for frame, image, label in zip(frames, images.messages, labels.messages):
        assert stamp_to_ns(image.header) == stamp_to_ns(label.header) == frame.stamp_ns
        np.testing.assert_array_equal(image_to_array(image_msg_to_raw(image)), frame.image)
        assert ground_truth_of(label.status) == frame.label


def _label_msg(stamp_ns: int, label: int) -> DiagnosticArray:
    truth = GroundTruth(label, category='c', source=f'{stamp_ns}.jpg')
    status = DiagnosticStatus(name=LABEL_STATUS_NAME, values=[
        KeyValue(key=key, value=value) for key, value in truth.to_key_values()])
    return DiagnosticArray(header=Header(frame_id='camera', stamp=ns_to_stamp(stamp_ns)),
                           status=[status])


def _detection_msg(stamp_ns: int, score: float) -> DiagnosticArray:
    record = DetectionRecord(stamp_ns=stamp_ns, frame_id='camera', score=score,
                             raw_score=score * 10, threshold=0.5, is_anomaly=score >= 0.5,
                             method='padim', model_id='m', latency_ms=5.0)
    return record_to_msg(record, Header(frame_id='camera', stamp=ns_to_stamp(stamp_ns)))


def test_evaluator_counts_unmatched_duplicate_and_malformed_messages(
        ros: ros_harness.RosTestNode, tmp_path: Path) -> None:
    output = tmp_path / 'metrics.json'
    label_pub = ros.node.create_publisher(DiagnosticArray, '/eval/label', RELIABLE_LATCHED)
    detection_pub = ros.node.create_publisher(DiagnosticArray, '/eval/detection', QoSProfile(
        depth=100, reliability=ReliabilityPolicy.RELIABLE))
    status_pub = ros.node.create_publisher(DiagnosticArray, '/eval/status', QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    stamps = [1_000_000_000 * k for k in range(1, 6)]
    with ros_harness.run_node(
            ros_harness.node_command('vad4space_evaluator'),
            parameters={'output': str(output), 'labels_transient_local': True,
                        'quiet_period': 0.5, 'timeout': 60.0},
            remappings={'label': '/eval/label', 'detection': '/eval/detection',
                        'replay_status': '/eval/status'}) as evaluator:
        ros.wait_for_subscribers(detection_pub, process=evaluator)
        ros.wait_for_subscribers(status_pub, process=evaluator)
        ros.spin_for(1.0)  # let the evaluator's side of discovery finish too
        for stamp, label in zip(stamps[:4], (0, 1, 0, 1)):  # the fourth gets no detection
            label_pub.publish(_label_msg(stamp, label))
        for stamp, score in zip(stamps[:3], (0.2, 0.9, 0.4)):
            detection_pub.publish(_detection_msg(stamp, score))
        detection_pub.publish(_detection_msg(stamps[1], 0.1))  # a re-sent frame: first kept
        detection_pub.publish(_detection_msg(stamps[4], 0.7))  # no label for this one
        broken = _detection_msg(stamps[0], 0.3)
        broken.status[0].values = broken.status[0].values[:2]
        detection_pub.publish(broken)
        done = DiagnosticArray(status=[DiagnosticStatus(
            name=replay_node.STATUS_NAME, message='done',
            values=[KeyValue(key='labels_published', value='4')])])
        status_pub.publish(done)
        ros.spin_until(lambda: not evaluator.alive(), 30.0, what='the evaluator to finish')
        assert evaluator.wait(timeout=1.0) == 0, evaluator.log()
    result = json.loads(output.read_text())
    assert result['counts'] == {
        'labels': 4, 'detections': 4, 'matched': 3, 'labels_without_detection': 1,
        'detections_without_label': 1, 'duplicate_labels': 0, 'duplicate_detections': 1,
        'malformed': 1, 'expected': 4}
    assert result['unmatched_label_stamps'] == [stamps[3]]
    assert result['unmatched_detection_stamps'] == [stamps[4]]
    assert result['complete'] is False
    assert result['reason'].startswith('replay done and quiet')
    expected = image_metrics([0, 1, 0], [0.2, 0.9, 0.4], 0.5)
    assert result['metrics']['img_auroc'] == expected['img_auroc'] == 1.0
    assert result['decisions']['tp'] == 1 and result['decisions']['tn'] == 2


def test_namespaced_replay_and_evaluator_read_the_shared_parameter_file(
        setting1_bag: Path, ros: ros_harness.RosTestNode, tmp_path: Path) -> None:
    # Both nodes run in /rover1 with config/replay.yaml (keyed /**/); this test answers as the
    # detector on the namespaced topics, so the run completes only if the file's relative
    # pace_on_topic and the evaluator's transient-local labels were loaded and resolved there.
    truth = {frame.stamp_ns: frame.label.label for frame in bags.read_benchmark_bag(setting1_bag)}
    output = tmp_path / 'metrics.json'
    detection_pub = ros.node.create_publisher(
        DiagnosticArray, '/rover1/vad4space_detector/detection',
        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    ros.node.create_subscription(
        Image, '/rover1/camera/image_raw',
        lambda image: detection_pub.publish(_detection_msg(
            stamp_to_ns(image.header), 0.9 if truth[stamp_to_ns(image.header)] else 0.1)),
        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    config = PACKAGE_ROOT / 'config' / 'replay.yaml'
    namespace = {'__ns': '/rover1'}  # the ros-args form of a launch file's namespace=
    evaluator_remaps = {**namespace, 'detection': 'vad4space_detector/detection',
                        'label': 'camera/label', 'replay_status': 'vad4space_replay/status'}
    replay_remaps = {**namespace, 'image': 'camera/image_raw', 'label': 'camera/label'}
    with ros_harness.run_node(ros_harness.node_command('vad4space_evaluator'), params_file=config,
                              parameters={'output': str(output), 'timeout': RUN_TIMEOUT},
                              remappings=evaluator_remaps) as evaluator, \
            ros_harness.run_node(ros_harness.node_command('vad4space_replay'), params_file=config,
                                 parameters={'bag': str(setting1_bag),
                                             'wait_timeout': RUN_TIMEOUT},
                                 remappings=replay_remaps) as replay:
        ros.spin_until(lambda: not evaluator.alive(), RUN_TIMEOUT, what='the evaluator to finish')
        assert evaluator.wait(timeout=1.0) == 0, evaluator.log()
        assert replay.wait(timeout=30.0) == 0, replay.log()
        assert 'paced on /rover1/vad4space_detector/detection' in replay.log()
    result = json.loads(output.read_text())
    assert result['complete'] is True and result['counts']['matched'] == len(truth) == 28
    assert result['metrics']['img_auroc'] == 1.0


def _check_section(section: dict, declared: dict, where: str) -> None:
    assert section, f'{where}: empty ros__parameters'
    for name, value in section.items():
        assert name in declared, f'{where}: {name} is not declared by the node'
        default, descriptor = declared[name]
        assert type(value) is type(default), f'{where}: {name}={value!r}'
        for allowed in list(descriptor.floating_point_range) + list(descriptor.integer_range):
            assert allowed.from_value <= value <= allowed.to_value, (where, name, value)


@pytest.mark.parametrize('config_name, node_names', [
    ('replay.yaml', ('vad4space_replay', 'vad4space_detector', 'vad4space_evaluator')),
    ('evaluator.yaml', ('vad4space_evaluator',))])
def test_parameter_files_set_declared_parameters(config_name: str,
                                                 node_names: tuple[str, ...]) -> None:
    declared = {'vad4space_replay': replay_node.PARAMETERS,
                'vad4space_detector': DETECTOR_PARAMETERS,
                'vad4space_evaluator': evaluator_node.PARAMETERS}
    document = yaml.safe_load((PACKAGE_ROOT / 'config' / config_name).read_text())
    sections = {key.split('/')[-1]: value['ros__parameters'] for key, value in document.items()}
    assert set(sections) == set(node_names)
    for node_name, section in sections.items():
        _check_section(section, declared[node_name], f'{config_name}:{node_name}')
