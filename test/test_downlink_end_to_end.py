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

"""Bag replay -> detector -> downlink -> budgeted passes -> ground, with SIGKILLs of the downlink.

All processes talk over real DDS (rclpy + Fast DDS, loopback). The bag holds the setting-1 test
split of the SYNTHETIC LROC chips (28 frames). The downlink is killed (SIGKILL) at random moments
during intake and during the passes and restarted on the same database each time. At the end the
ground folder must hold every released product part of every accepted item exactly once,
byte-identical to the stored bytes, each pass within its budget, best anomalies first.
"""
from __future__ import annotations

from contextlib import ExitStack
import json
from pathlib import Path
import random
import signal
import sqlite3
import time

from diagnostic_msgs.msg import DiagnosticArray
import pytest
import ros_harness
from std_msgs.msg import UInt64
from test_downlink_ground import GROUND, GROUND_TOPICS
from test_downlink_node import NODE, parameters, RELIABLE
from test_replay_evaluator import (  # noqa: F401 (fixtures)
    DETECTION_TOPIC, NODE_ENV, RELIABLE_LATCHED, RUN_TIMEOUT, setting1_bag, small_padim)

from vad4space_ros.data import bags

DOWNLINK = ros_harness.node_command('vad4space_downlink', 'vad4space_ros.nodes.downlink_node')
FRAMES = 28


def query(database: Path, sql: str, *args) -> list[tuple]:
    """Run a read-only query on the queue database (while the node may write it)."""
    with sqlite3.connect(f'file:{database}?mode=ro', uri=True, timeout=10.0) as connection:
        return connection.execute(sql, args).fetchall()


def expected_parts(database: Path) -> dict[str, tuple[dict, bytes | None]]:
    """{'release_id.part': (release row, bytes or None for a record-only product)}."""
    expected = {}
    releases = query(database, 'SELECT r.id, r.item_id, r.pass_id, r.product, r.bytes, '
                     'i.frame_id, i.score FROM releases r JOIN items i ON i.id = r.item_id')
    for release_id, item_id, pass_id, product, size, frame_id, score in releases:
        kinds = ('frame', 'region') if product == 'full' else ('heatmap',)
        rows = query(database, 'SELECT data FROM products WHERE item_id = ? AND kind IN (?, ?) '
                     "ORDER BY kind = 'heatmap', kind, part", item_id, kinds[0], kinds[-1])
        info = {'pass_id': pass_id, 'product': product, 'bytes': size, 'frame_id': frame_id,
                'score': score, 'item_id': item_id}
        for part, (data,) in enumerate(rows or [(None,)]):
            expected[f'{release_id}.{part}'] = (info, None if data is None else bytes(data))
    return expected


class Downlink:
    """The downlink node process, which the test kills and restarts on the same database."""

    def __init__(self, stack: ExitStack, database: Path) -> None:
        """Remember where to start it."""
        self.stack, self.database = stack, database
        self.process: ros_harness.NodeProcess | None = None
        self.kills = 0

    def start(self) -> None:
        """Start a new process."""
        self.process = self.stack.enter_context(ros_harness.run_node(
            DOWNLINK, parameters(self.database, send_thumbnails=True, publish_batch=4,
                                 outbox_retry_period_s=0.5, ack_timeout_s=3.0),
            remappings={'detection': DETECTION_TOPIC, 'image': bags.IMAGE_TOPIC,
                        'heatmap': '/vad4space_detector/heatmap'}))

    def kill_and_restart(self) -> None:
        """SIGKILL the process, check it died of it, start another."""
        self.process.popen.send_signal(signal.SIGKILL)
        assert self.process.popen.wait(timeout=10) == -signal.SIGKILL
        self.kills += 1
        self.start()


def wait(ros: ros_harness.RosTestNode, condition, timeout: float, what: str,
         process=None) -> None:
    """Spin until ``condition()``."""
    ros.spin_until(condition, timeout, process, what=what)


@pytest.mark.slow
def test_replay_to_ground_survives_sigkills_and_delivers_each_product_once(
        setting1_bag: Path, small_padim: Path, tmp_path: Path) -> None:  # noqa: F811
    rng = random.Random(2024)
    database, folder = tmp_path / 'queue.db', tmp_path / 'ground'
    with ExitStack() as stack:
        detector = stack.enter_context(ros_harness.run_node(
            ros_harness.node_command('vad4space_detector'), env=NODE_ENV,
            parameters={'model_path': str(small_padim), 'queue_size': 1, 'publish_map': False},
            remappings={'image': bags.IMAGE_TOPIC}))
        ground = stack.enter_context(ros_harness.run_node(GROUND, {'output': str(folder)},
                                                          remappings=GROUND_TOPICS))
        ros = stack.enter_context(ros_harness.RosTestNode())
        downlink = Downlink(stack, database)
        downlink.start()
        labels = ros.collect(DiagnosticArray, bags.LABEL_TOPIC, RELIABLE_LATCHED)
        wait(ros, lambda: 'queue ' in downlink.process.log(), 60.0, 'the downlink to start',
             downlink.process)
        probe = ros.node.create_publisher(UInt64, f'{NODE}/pass', RELIABLE)  # never published
        ros.wait_for_subscribers(probe, process=downlink.process)
        replay = stack.enter_context(ros_harness.run_node(
            ros_harness.node_command('vad4space_replay'),
            parameters={'bag': str(setting1_bag), 'pace_on_topic': DETECTION_TOPIC,
                        'pace_timeout': 10.0, 'wait_timeout': RUN_TIMEOUT, 'rate_hz': 1.5,
                        'start_delay': 2.0},
            remappings={'image': bags.IMAGE_TOPIC, 'label': bags.LABEL_TOPIC}))

        # Intake: kill the downlink twice after a random number of accepted items.
        def accepted() -> int:
            return query(database, 'SELECT count(*) FROM items')[0][0]

        for threshold in sorted(rng.sample(range(4, FRAMES // 2), 2)):
            wait(ros, lambda: accepted() >= threshold or replay.popen.poll() is not None,
                 RUN_TIMEOUT, f'{threshold} accepted')
            downlink.kill_and_restart()
            wait(ros, lambda: 'queue ' in downlink.process.log(), 60.0, 'the restart',
                 downlink.process)
        wait(ros, lambda: replay.popen.poll() is not None, RUN_TIMEOUT, 'the replay to end')
        assert replay.popen.returncode == 0, replay.log()
        wait(ros, lambda: len(labels.messages) >= FRAMES, 10.0, 'all labels')
        ros.spin_for(2.0)  # the last detections reach the downlink
        items = accepted()
        assert 0 < items <= FRAMES

        # Passes: budgets of about a quarter of what is stored; kills at random moments.
        stored = query(database, 'SELECT coalesce(sum(product_bytes + thumbnail_bytes), 0) '
                       'FROM items')[0][0]
        budget = max(1, stored // 4)
        passes = probe
        kill_at = set(rng.sample(range(1, 5), 2))
        requests = 0
        while query(database, "SELECT count(*) FROM items WHERE state = 'queued'")[0][0] \
                or query(database, 'SELECT count(*) FROM releases WHERE sent_ns IS NULL')[0][0]:
            assert requests < 40, 'passes did not empty the queue'
            done = query(database, 'SELECT count(*) FROM passes')[0][0]
            ros.wait_for_subscribers(passes, process=downlink.process)
            passes.publish(UInt64(data=budget))
            requests += 1
            if requests in kill_at:
                ros.spin_for(rng.uniform(0.0, 0.6))
                downlink.kill_and_restart()
                continue
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and (
                    query(database, 'SELECT count(*) FROM passes')[0][0] == done or query(
                        database, 'SELECT count(*) FROM releases WHERE sent_ns IS NULL')[0][0]):
                downlink.process.assert_alive()
                ros.spin_once(0.05)
        expected = expected_parts(database)
        wait(ros, lambda: len(list(folder.glob('*.json'))) >= len(expected), 30.0,
             'every product on the ground', ground)
        ros.spin_for(2.0)  # anything more (a repeat) would show now
        detector.assert_alive()
        ground.assert_alive()
        assert downlink.kills == 4

    # Exactly once, byte-identical.
    sidecars = {}
    for path in folder.glob('*.json'):
        description = json.loads(path.read_text())
        key = f'{description["release_id"]}.{description["part"]}'
        assert key not in sidecars
        sidecars[key] = description
    assert set(sidecars) == set(expected)
    assert len(list(folder.glob('*.png'))) + len(list(folder.glob('*.jpg'))) == sum(
        data is not None for _, data in expected.values())
    for key, (info, data) in expected.items():
        description = sidecars[key]
        assert description['frame_id'] == info['frame_id']
        if data is not None:
            assert (folder / description['file']).read_bytes() == data
    # Every accepted item went home in full, each pass within its budget.
    states = query(database, 'SELECT state, count(*) FROM items GROUP BY state')
    assert states == [('released', items)]
    for pass_id, budget_bytes, used in query(database,
                                             'SELECT id, budget_bytes, used_bytes FROM passes'):
        sent = {key.split('.')[0]: info['bytes'] for key, (info, _) in expected.items()
                if info['pass_id'] == pass_id}
        assert sum(sent.values()) == used <= budget_bytes
    # The best-scored item went home in full in the first pass that released full products.
    full = sorted((info['pass_id'], -info['score']) for info, _ in expected.values()
                  if info['product'] == 'full')
    best_score = query(database, 'SELECT max(score) FROM items')[0][0]
    assert -full[0][1] == best_score
