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

"""The downlink node as a process over real DDS: ranking, eviction, crash safety, bad input."""
from __future__ import annotations

from pathlib import Path
import signal
import sqlite3

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
import ros_harness
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, UInt64
from test_downlink_core import basis, make_read_only, record, undo_read_only

from vad4space_ros.downlink.products import encode_image, record_json
from vad4space_ros.nodes.downlink_parameters import PARAMETERS
from vad4space_ros.nodes.ros_conversions import record_to_msg
import yaml

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'downlink.yaml'
COMMAND = ros_harness.node_command('vad4space_downlink', 'vad4space_ros.nodes.downlink_node')
NODE = '/vad4space_downlink'
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
KEEP_ALL = QoSProfile(depth=1, history=HistoryPolicy.KEEP_ALL,
                      reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def header_of(rec) -> Header:
    """Header carrying a record's stamp and frame id."""
    header = Header(frame_id=rec.frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(rec.stamp_ns, 1_000_000_000)
    return header


def detection_msg(rec) -> DiagnosticArray:
    """Return the detector's wire form of a record."""
    return record_to_msg(rec, header_of(rec))


def record_bytes(*records) -> int:
    """Return the stored bytes of full products without images (the record JSON)."""
    return sum(len(record_json(rec).encode()) for rec in records)


def values(status: DiagnosticStatus) -> dict[str, str]:
    """Key/value pairs of a status as a dict."""
    return {pair.key: pair.value for pair in status.values}


def parameters(database: Path, **overrides) -> dict:
    """Node parameters for a test: no thumbnails, fast publication."""
    settings = {'database': str(database), 'send_thumbnails': False,
                'queue_publish_period_s': 0.2, 'synchronous': 'FULL'}
    settings.update(overrides)
    return settings


class Session:
    """A running downlink node and the test client's publishers/collectors."""

    def __init__(self, ros: ros_harness.RosTestNode, process: ros_harness.NodeProcess,
                 consume_downlink: bool = True) -> None:
        """Create publishers and subscriptions and wait until they matched the node."""
        self.ros, self.process = ros, process
        self.detections = ros.node.create_publisher(DiagnosticArray, '/detection', RELIABLE)
        self.images = ros.node.create_publisher(Image, '/image', 10)
        self.passes = ros.node.create_publisher(UInt64, f'{NODE}/pass', RELIABLE)
        self.queue = ros.collect(DiagnosticArray, f'{NODE}/queue', LATCHED)
        for publisher in (self.detections, self.images, self.passes):
            ros.wait_for_subscribers(publisher, process=process)
        if consume_downlink:
            self.downlink = ros.collect(DiagnosticArray, f'{NODE}/downlink', KEEP_ALL)
            self.downlink_images = ros.collect(CompressedImage, f'{NODE}/downlink/image',
                                               KEEP_ALL)
            self.downlink.wait_for_publishers(process=process)
            self.downlink_images.wait_for_publishers(process=process)

    def latest_summary(self) -> dict[str, str]:
        """Counters of the newest ~/queue message."""
        return values(self.queue.messages[-1].status[0]) if self.queue.messages else {}

    def wait_summary(self, key: str, expected: int, timeout: float = 20.0) -> dict[str, str]:
        """Spin until the ~/queue summary shows ``key`` == ``expected``."""
        self.ros.spin_until(lambda: self.latest_summary().get(key) == str(expected), timeout,
                            self.process, what=f'{key} == {expected} in ~/queue')
        return self.latest_summary()

    def run_pass(self, budget: int, products: int, timeout: float = 20.0) -> list[dict]:
        """Trigger a pass and return the values of the ``products`` downlink messages."""
        self.downlink.clear()
        self.passes.publish(UInt64(data=budget))
        self.downlink.wait_for(products, timeout, self.process)
        self.ros.spin_for(0.5)  # nothing more may arrive
        return [values(msg.status[0]) | {'frame_id': msg.header.frame_id}
                for msg in self.downlink.messages]


def db_items(database: Path) -> dict[str, str]:
    """{frame_id: state} of every item in a queue database (read while the node may run)."""
    with sqlite3.connect(f'file:{database}?mode=ro', uri=True) as connection:
        return dict(connection.execute('SELECT frame_id, state FROM items ORDER BY id'))


def db_releases(database: Path) -> list[tuple[int, int, int | None]]:
    """(release id, attempts, sent_ns) of every released product."""
    with sqlite3.connect(f'file:{database}?mode=ro', uri=True) as connection:
        return connection.execute('SELECT id, attempts, sent_ns FROM releases ORDER BY id'
                                  ).fetchall()


def test_yaml_config_sets_every_parameter_to_its_default():
    settings = yaml.safe_load(CONFIG.read_text())['/**/vad4space_downlink']['ros__parameters']
    assert settings == {name: default for name, (default, _) in PARAMETERS.items()}


def test_distinct_anomalies_are_released_before_near_duplicates(tmp_path):
    database = tmp_path / 'queue.db'
    with ros_harness.run_node(COMMAND, parameters(database), params_file=CONFIG,
                              remappings={'detection': '/detection', 'image': '/image'}) as node, \
            ros_harness.RosTestNode() as ros:
        session = Session(ros, node)
        duplicates = [record(i, 0.95 - i / 100, basis(0, 0.005, i)) for i in range(5)]
        distinct = [record(10 + i, 0.8 - i / 50, basis(1 + i)) for i in range(3)]
        normals = [record(20 + i, 0.2, basis(5 + i)) for i in range(4)]
        for rec in duplicates + distinct + normals:
            session.detections.publish(detection_msg(rec))
        session.wait_summary('queued', 12)
        top = session.queue.messages[-1].status[1:5]
        assert [status.hardware_id for status in top] == ['cam/0', 'cam/10', 'cam/11', 'cam/12']
        released = session.run_pass(record_bytes(duplicates[0], *distinct), 4)
        assert [p['frame_id'] for p in released] == ['cam/0', 'cam/10', 'cam/11', 'cam/12']
        assert [p['position'] for p in released] == ['0', '1', '2', '3']
        assert {p['attempt'] for p in released} == {'1'}
        summary = session.wait_summary('outbox', 0)  # acknowledged (checked asynchronously)
        assert summary['queued'] == '8' and summary['released'] == '4'
        # Room for 3 more: the remaining near-duplicates (priority < 0.2) rank after normals.
        nxt = session.run_pass(record_bytes(*normals[:3]), 3)
        assert {p['frame_id'] for p in nxt} <= {rec.frame_id for rec in normals}
        node.assert_alive()


def test_eviction_under_capacity_pressure_drops_lowest_priority_first(tmp_path):
    database = tmp_path / 'queue.db'
    with ros_harness.run_node(COMMAND, parameters(database, capacity_items=3),
                              remappings={'detection': '/detection'}) as node, \
            ros_harness.RosTestNode() as ros:
        session = Session(ros, node)
        stream = [record(1, 0.9, basis(0)), record(2, 0.89, basis(0, 0.01)),
                  record(3, 0.5, basis(1)), record(4, 0.4, basis(2)), record(5, 0.45, basis(3))]
        evicted_in_order = []
        for rec in stream:
            session.detections.publish(detection_msg(rec))
            ros.spin_until(lambda: rec.frame_id in db_items(database), 10.0, node,
                           what=f'{rec.frame_id} stored')
            evicted_in_order += [frame for frame, state in db_items(database).items()
                                 if state == 'evicted' and frame not in evicted_in_order]
        # cam/2 is a near-duplicate of cam/1 (priority 0.09) although it has the 2nd score.
        assert evicted_in_order == ['cam/2', 'cam/4']
        summary = session.wait_summary('evicted', 2)
        assert summary['queued'] == '3'
        ranked = [s.hardware_id for s in session.queue.messages[-1].status[1:]]
        assert ranked == ['cam/1', 'cam/3', 'cam/5']


def test_sigkill_mid_stream_loses_nothing_and_releases_each_item_once(tmp_path):
    database = tmp_path / 'queue.db'
    stream = [record(i, float(np.random.default_rng(i).uniform(0.1, 1.0)), basis(i % 16, 0.3, i))
              for i in range(80)]
    with ros_harness.run_node(COMMAND, parameters(database),
                              remappings={'detection': '/detection'}) as node, \
            ros_harness.RosTestNode() as ros:
        session = Session(ros, node)
        for index, rec in enumerate(stream):
            session.detections.publish(detection_msg(rec))
            ros.spin_for(0.01)
            if index == 40:
                node.popen.send_signal(signal.SIGKILL)
        assert node.popen.wait(timeout=10) == -signal.SIGKILL
    before_restart = db_items(database)
    assert 0 < len(before_restart) < len(stream)  # killed mid-stream
    assert set(before_restart.values()) == {'queued'}
    with ros_harness.run_node(COMMAND, parameters(database),
                              remappings={'detection': '/detection'}) as node, \
            ros_harness.RosTestNode() as ros:
        session = Session(ros, node)
        for rec in stream:  # the detector side re-sends everything: duplicates are recognised
            session.detections.publish(detection_msg(rec))
        summary = session.wait_summary('queued', len(stream), timeout=30.0)
        assert int(summary['session_duplicate']) == len(before_restart)
        released = session.run_pass(10 ** 9, len(stream))
    frames = [p['frame_id'] for p in released]
    assert len(frames) == len(stream) == len(set(frames))
    assert set(frames) == {rec.frame_id for rec in stream}
    assert len({p['item_id'] for p in released}) == len(stream)
    assert set(before_restart) <= set(frames)
    assert set(db_items(database).values()) == {'released'}


def test_released_products_survive_sigkill_before_publication(tmp_path):
    database = tmp_path / 'queue.db'
    stream = [record(i, 0.9 - i / 20, basis(i)) for i in range(5)]
    with ros_harness.run_node(COMMAND, parameters(database, outbox_retry_period_s=0.5),
                              remappings={'detection': '/detection'}) as node, \
            ros_harness.RosTestNode() as ros:
        session = Session(ros, node, consume_downlink=False)
        for rec in stream:
            session.detections.publish(detection_msg(rec))
        session.wait_summary('queued', 5)
        session.passes.publish(UInt64(data=10 ** 6))
        ros.spin_until(lambda: len(db_releases(database)) == 5, 10.0, node, what='5 releases')
        ros.spin_for(1.0)  # retries find no consumer: the products stay in the outbox
        node.popen.send_signal(signal.SIGKILL)
        assert node.popen.wait(timeout=10) == -signal.SIGKILL
    assert [(attempts, sent) for _, attempts, sent in db_releases(database)] == [(0, None)] * 5
    with ros_harness.run_node(COMMAND, parameters(database, outbox_retry_period_s=0.5)) as node, \
            ros_harness.RosTestNode() as ros:
        session = Session(ros, node)
        session.downlink.wait_for(5, 20.0, node)
        ros.spin_for(1.5)
        received = [values(msg.status[0]) for msg in session.downlink.messages]
        assert [p['position'] for p in received] == ['0', '1', '2', '3', '4']
        assert {p['attempt'] for p in received} == {'1'}
        assert [msg.header.frame_id for msg in session.downlink.messages] == [
            rec.frame_id for rec in stream]
        ros.spin_until(lambda: all(sent for _, _, sent in db_releases(database)), 10.0, node,
                       what='all releases acknowledged')


def test_malformed_records_are_counted_and_images_are_captured_at_their_size(tmp_path):
    database = tmp_path / 'queue.db'
    # image_qos reliable: the test's first frames must not be lost to best-effort discovery.
    with ros_harness.run_node(COMMAND, parameters(database, image_qos='reliable'),
                              remappings={'detection': '/detection', 'image': '/image'}) as node, \
            ros_harness.RosTestNode() as ros:
        session = Session(ros, node)
        good = record(1, 0.7)
        no_field = detection_msg(record(2, 0.7))
        no_field.status[0].values = [kv for kv in no_field.status[0].values if kv.key != 'score']
        bad_number = detection_msg(record(3, 0.7))
        bad_number.status[0].values[2] = KeyValue(key='score', value='nan')
        foreign = DiagnosticArray(status=[DiagnosticStatus(name='battery', message='ok')])
        image = Image(header=header_of(good), height=48, width=64, encoding='mono8', step=64,
                      data=bytes(range(256)) * 12)
        stray_image = Image(header=Header(frame_id='unknown/frame'), height=2, width=2,
                            encoding='mono8', step=2, data=bytes(4))
        broken_image = Image(header=header_of(record(4, 0.7)), height=10, width=10,
                             encoding='mono8', step=10, data=bytes(3))
        for msg in (stray_image, broken_image, image):
            session.images.publish(msg)
        ros.spin_for(0.5)
        for msg in (no_field, bad_number, foreign, detection_msg(good)):
            session.detections.publish(msg)
        summary = session.wait_summary('queued', 1)
        assert summary['session_malformed'] == '3'
        assert summary['session_bad_images'] == '1'
        item = values(session.queue.messages[-1].status[1])
        pixels = np.frombuffer(image.data, np.uint8).reshape(48, 64)
        stored = len(encode_image(pixels, 'png')) + record_bytes(good)
        assert item['frame_id'] == 'cam/1' and item['bytes'] == str(stored)
        node.assert_alive()


@pytest.mark.parametrize('problem', ['corrupt', 'foreign', 'read-only', 'in use'])
def test_unusable_database_stops_the_node_with_a_clear_message(tmp_path, problem):
    database = tmp_path / 'queue.db'
    if problem == 'corrupt':
        database.write_bytes(b'\x00garbage' * 1000)
    elif problem == 'foreign':
        with sqlite3.connect(database) as connection:
            connection.execute('CREATE TABLE bags (x)')
    else:
        with ros_harness.run_node(COMMAND, parameters(database)) as first, \
                ros_harness.RosTestNode() as ros:
            ros.wait_for_node('vad4space_downlink', process=first)
            # The node joins the graph before it opens its database: wait for the file too.
            ros.spin_until(database.exists, 30.0, first, what='database file')
            if problem == 'in use':
                with ros_harness.run_node(COMMAND, parameters(database)) as second:
                    assert second.wait(timeout=30) == 2
                    assert 'in use by another downlink process' in second.log()
                first.assert_alive()
                return
    if problem == 'read-only':
        make_read_only(database)
    try:
        with ros_harness.run_node(COMMAND, parameters(database)) as node:
            assert node.wait(timeout=30) == 2
            log = node.log()
    finally:
        if problem == 'read-only':
            undo_read_only(database)
    assert 'cannot start' in log and str(database) in log
    expected = {'corrupt': 'not a database', 'foreign': 'not a vad4space downlink queue',
                'read-only': 'readonly'}[problem]
    assert expected in log


def test_a_pass_larger_than_one_batch_arrives_complete_and_in_order(tmp_path):
    database = tmp_path / 'queue.db'
    with ros_harness.run_node(COMMAND, parameters(database, publish_batch=7),
                              remappings={'detection': '/detection'}) as node, \
            ros_harness.RosTestNode() as ros:
        session = Session(ros, node)
        stream = [record(i, 1.0 - i / 100, basis(i % 16, 0.5, i)) for i in range(30)]
        for rec in stream:
            session.detections.publish(detection_msg(rec))
        session.wait_summary('queued', 30)
        released = session.run_pass(30_000, 30)
        assert [int(p['position']) for p in released] == list(range(30))
        assert len({p['release_id'] for p in released}) == 30
        assert session.wait_summary('outbox', 0)['last_pass_products'] == '30'
