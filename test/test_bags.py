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

"""Benchmark bags written with rosbags: round trip, both storages, bad bags."""
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer

from vad4space_ros.cli import main
from vad4space_ros.data import bags
from vad4space_ros.data import load_bands, load_dataset, load_rgb, synthetic
from vad4space_ros.data.labels import ground_truth_of, GroundTruth, LabelError
from vad4space_ros.data.protocols import make_setting
from vad4space_ros.stamps import ns_to_sec_nanosec, stamp_to_ns


@pytest.fixture(scope='module')
def mastcam_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('mastcam')
    synthetic.generate('mastcam', root, seed=5, size='tiny', progress=False)
    return root


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_round_trip_keeps_pixels_labels_and_stamps(mastcam_root, tmp_path, storage):
    samples = make_setting(load_dataset('mastcam', mastcam_root), 1, seed=0).test
    bag = tmp_path / 'bag'
    report = bags.write_benchmark_bag(samples, bag, dataset='mastcam', rate_hz=4.0,
                                      storage=storage, progress=False)
    assert report.frames == len(samples) and report.skipped == []
    frames = list(bags.read_benchmark_bag(bag))
    assert len(frames) == len(samples)
    for index, (frame, sample) in enumerate(zip(frames, samples)):
        assert frame.stamp_ns == bags.DEFAULT_START_NS + index * 250_000_000
        assert np.array_equal(frame.image, load_rgb(sample))
        assert frame.label == GroundTruth(sample.label, sample.category, sample.path.name,
                                          'test', index, 'mastcam')
    with Reader(bag) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == {
            bags.IMAGE_TOPIC: bags.IMAGE_TYPE, bags.LABEL_TOPIC: bags.LABEL_TYPE}
        assert reader.message_count == 2 * len(samples)
        for connection, timestamp, raw in reader.messages():
            msg = bags.TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            assert timestamp == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_six_band_topic_round_trips_as_32fc6(mastcam_root, tmp_path):
    samples = load_dataset('mastcam', mastcam_root).select(split='test')[:3]
    bag = tmp_path / 'bands'
    bags.write_benchmark_bag(samples, bag, bands_topic=bags.BANDS_TOPIC, progress=False)
    with Reader(bag) as reader:
        wanted = [c for c in reader.connections if c.topic == bags.BANDS_TOPIC]
        decoded = [bags.TYPESTORE.deserialize_cdr(raw, c.msgtype)
                   for c, _, raw in reader.messages(connections=wanted)]
    assert [m.encoding for m in decoded] == ['32FC6'] * 3
    assert decoded[0].step == 64 * 6 * 4
    for msg, sample in zip(decoded, samples):
        assert np.array_equal(bags.image_msg_to_array(msg), load_bands(sample))
    assert len(list(bags.read_benchmark_bag(bag))) == 3  # the extra topic is ignored


def test_bag_without_label_topic_names_what_it_has(tmp_path):
    bag = tmp_path / 'images_only'
    with Writer(bag, version=8) as writer:
        connection = writer.add_connection('/cam/image', bags.IMAGE_TYPE,
                                           typestore=bags.TYPESTORE)
        image = np.zeros((4, 4, 3), np.uint8)
        writer.write(connection, 1, bags.TYPESTORE.serialize_cdr(
            bags.array_to_image_msg(image, 1, 'cam'), bags.IMAGE_TYPE))
    with pytest.raises(bags.BagError, match=r"/camera/image_raw.*its topics are \['/cam/image"):
        list(bags.read_benchmark_bag(bag))


def test_unreadable_sample_is_skipped_and_stamps_stay_even(mastcam_root, tmp_path):
    samples = load_dataset('mastcam', mastcam_root).select(split='val')[:3]
    broken = tmp_path / 'broken.npy'
    broken.write_bytes(b'garbage')
    samples.insert(1, type(samples[0])(broken, 0, 'typical', 'val'))
    report = bags.write_benchmark_bag(samples, tmp_path / 'bag', rate_hz=10, progress=False)
    assert report.frames == 3 and [p for p, _ in report.skipped] == [broken]
    stamps = [f.stamp_ns for f in bags.read_benchmark_bag(tmp_path / 'bag')]
    assert np.diff(stamps).tolist() == [100_000_000, 100_000_000]


def test_existing_bag_path_is_refused(tmp_path):
    (tmp_path / 'bag').mkdir()
    with pytest.raises(bags.BagError, match='exists already'):
        bags.write_benchmark_bag([], tmp_path / 'bag', progress=False)


def test_cli_bag_make_writes_the_requested_setting(mastcam_root, tmp_path, capsys):
    out = tmp_path / 'cli_bag'
    assert main(['bag', 'make', 'mastcam', '--setting', '2', '--root', str(mastcam_root),
                 '--out', str(out), '--storage', 'mcap', '--seed', '4']) == 0
    expected = make_setting(load_dataset('mastcam', mastcam_root), 2, seed=4).test
    frames = list(bags.read_benchmark_bag(out))
    assert [f.label.source for f in frames] == [s.path.name for s in expected]
    assert sum(f.label.label for f in frames) == sum(s.label for s in expected) == 1
    assert main(['bag', 'make', 'mastcam', '--setting', '2', '--root', str(mastcam_root),
                 '--out', str(out)]) == 2
    assert 'exists already' in capsys.readouterr().err


def test_bgr8_frames_decode_in_rgb_order_and_bad_ones_raise_bag_error():
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    msg = bags.array_to_image_msg(rgb, 1, 'cam')
    assert msg.encoding == 'rgb8' and np.array_equal(bags.image_msg_to_array(msg), rgb)
    msg.encoding = 'bgr8'
    msg.data = np.ascontiguousarray(rgb[..., ::-1]).reshape(-1)
    assert np.array_equal(bags.image_msg_to_array(msg), rgb)
    msg.encoding = 'yuv422'
    with pytest.raises(bags.BagError, match='yuv422'):
        bags.image_msg_to_array(msg)
    with pytest.raises(bags.BagError, match='int64'):
        bags.array_to_image_msg(np.zeros((2, 2), np.int64), 1, 'cam')


def test_label_message_round_trips_through_the_one_label_format():
    truth = GroundTruth(1, 'crater', 'a.jpg', 'test', 7, 'lroc')
    msg = bags.label_msg(truth, 1_700_000_000_250_000_000, 'cam')
    decoded = bags.TYPESTORE.deserialize_cdr(
        bags.TYPESTORE.serialize_cdr(msg, bags.LABEL_TYPE), bags.LABEL_TYPE)
    assert ground_truth_of(decoded.status) == truth
    assert decoded.status[0].message == 'anomaly' and decoded.status[0].level == 1  # WARN
    assert stamp_to_ns(decoded.header) == 1_700_000_000_250_000_000
    assert GroundTruth.from_key_values([('label', '0')]) == GroundTruth(0)


@pytest.mark.parametrize('pairs, match', [
    ([('label', '2')], 'label must be 0 or 1'), ([('category', 'x')], 'label must be 0 or 1'),
    ([('label', '1'), ('index', '-3')], 'index must be')])
def test_malformed_labels_raise_label_error(pairs, match):
    with pytest.raises(LabelError, match=match):
        GroundTruth.from_key_values(pairs)


def test_label_message_without_ground_truth_status_is_refused():
    msg = bags.label_msg(GroundTruth(0), 5, 'cam')
    msg.status[0].name = 'something/else'
    with pytest.raises(LabelError, match='no .vad4space/ground_truth. status'):
        ground_truth_of(msg.status)


def test_stamp_split_and_join_are_inverse_and_refuse_negative_stamps():
    assert ns_to_sec_nanosec(1_700_000_000_000_000_001) == (1_700_000_000, 1)
    with pytest.raises(ValueError, match='negative'):
        ns_to_sec_nanosec(-1)


def test_stamped_messages_skip_undecodable_messages_when_asked(tmp_path):
    bag = tmp_path / 'bag'
    with Writer(bag, version=bags.BAG_VERSION) as writer:
        connection = writer.add_connection(bags.IMAGE_TOPIC, bags.IMAGE_TYPE,
                                           typestore=bags.TYPESTORE)
        image = np.zeros((2, 2, 3), np.uint8)
        writer.write(connection, 1, bags.TYPESTORE.serialize_cdr(
            bags.array_to_image_msg(image, 1, 'cam'), bags.IMAGE_TYPE))
        writer.write(connection, 2, b'\x00\x01\x00\x00broken')
        writer.write(connection, 3, bags.TYPESTORE.serialize_cdr(
            bags.array_to_image_msg(image, 3, 'cam'), bags.IMAGE_TYPE))
    topics = bags.check_bag(bag, labels_required=False)
    assert topics.counts == {bags.IMAGE_TOPIC: 3}
    skipped = []
    messages = list(bags.stamped_messages(bag, [bags.IMAGE_TOPIC],
                                          lambda topic, error: skipped.append(topic)))
    assert [m.stamp_ns for m in messages] == [1, 3] and skipped == [bags.IMAGE_TOPIC]
    with pytest.raises(bags.BagError, match='undecodable message'):
        list(bags.stamped_messages(bag, [bags.IMAGE_TOPIC]))
    with pytest.raises(bags.BagError, match='DiagnosticArray topic'):
        bags.check_bag(bag)  # labels required by default
    with pytest.raises(bags.BagError, match='does not exist'):
        bags.check_bag(tmp_path / 'missing')
