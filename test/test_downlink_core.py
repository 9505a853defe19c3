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

"""Unit tests of the ROS-free downlink core: knapsack, ranking, store and queue."""
from __future__ import annotations

import itertools
import os
from pathlib import Path
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from vad4space_ros.cli import main as cli_main
from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.downlink.database import StoreError
from vad4space_ros.downlink.downlink_queue import (
    ACCEPTED, BELOW_MIN_SCORE, DownlinkQueue, DUPLICATE)
from vad4space_ros.downlink.policy import DownlinkPolicy
from vad4space_ros.downlink.products import ProductPart, record_json
from vad4space_ros.downlink.ranking import rank
from vad4space_ros.downlink.schema import (
    APPLICATION_ID, EVICTED, EXPIRED, FRAME, HEATMAP, PRODUCTS_SCHEMA, QUEUED, RELEASED, SCHEMA,
    SCHEMA_VERSION, THUMBNAIL)
from vad4space_ros.downlink.selection import knapsack, Option
from vad4space_ros.downlink.store import DownlinkStore

DIM = 16


def unit(vector: np.ndarray) -> np.ndarray:
    """Return the vector scaled to unit length (float32)."""
    vector = np.asarray(vector, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def basis(index: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Return a unit embedding near basis vector ``index`` (distinct indices are orthogonal)."""
    vector = np.zeros(DIM, np.float32)
    vector[index] = 1.0
    vector += noise * np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return unit(vector)


def record(frame: int, score: float, embedding: np.ndarray | None = None) -> DetectionRecord:
    """Build a detection record for frame number ``frame``."""
    return DetectionRecord(
        stamp_ns=1_000_000_000 + frame, frame_id=f'cam/{frame}', score=score, raw_score=score,
        threshold=0.5, is_anomaly=score >= 0.5, method='padim', model_id='test-model',
        latency_ms=1.0, embedding=basis(frame % DIM) if embedding is None else embedding)


def sized(rec: DetectionRecord, size: int = 1000,
          thumbnail: int | None = None) -> list[ProductPart]:
    """Parts (filler bytes) that make ``rec``'s full product exactly ``size`` stored bytes."""
    frame = size - len(record_json(rec).encode())
    assert frame > 0
    parts = [ProductPart(FRAME, 0, 'png', (0, 0, 8, 8), None, bytes(frame))]
    if thumbnail:
        parts.append(ProductPart(HEATMAP, 0, 'jpeg', (0, 0, 8, 8), None, b'h' * thumbnail))
    return parts


def accept(queue: DownlinkQueue, rec: DetectionRecord, size: int = 1000,
           thumbnail: int | None = None):
    """Accept ``rec`` with products of ``size`` (and a ``thumbnail``) bytes."""
    return queue.accept(rec, sized(rec, size, thumbnail))


def greedy_by_value(options: list[Option], budget: int) -> float:
    """Total value of the greedy policy: best value first, take it if it still fits."""
    total, remaining = 0.0, budget
    for option in sorted(options, key=lambda o: -o.value):
        if option.size <= remaining:
            total, remaining = total + option.value, remaining - option.size
    return total


def greedy_by_density(options: list[Option], budget: int) -> float:
    """Total value of the greedy policy by value per byte."""
    total, remaining = 0.0, budget
    for option in sorted(options, key=lambda o: -o.value / o.size):
        if option.size <= remaining:
            total, remaining = total + option.value, remaining - option.size
    return total


def chosen_value(options: list[Option], chosen: list[int]) -> float:
    """Total value of the chosen options."""
    return sum(options[index].value for index in chosen)


def chosen_size(options: list[Option], chosen: list[int]) -> int:
    """Total bytes of the chosen options."""
    return sum(options[index].size for index in chosen)


# --- selection --------------------------------------------------------------------------------
def test_knapsack_beats_greedy_on_constructed_case():
    # One big valuable product vs two medium ones that together fill the pass exactly.
    candidates = [Option(600, 7.0), Option(500, 5.0), Option(500, 5.0)]
    chosen = knapsack(candidates, budget=1000)
    assert chosen == [1, 2]
    assert chosen_value(candidates, chosen) == 10.0
    assert greedy_by_value(candidates, 1000) == 7.0
    assert greedy_by_density(candidates, 1000) == 7.0


def test_knapsack_is_optimal_on_random_small_cases():
    rng = np.random.default_rng(1)
    for _ in range(40):
        count = int(rng.integers(1, 9))
        candidates = [Option(int(rng.integers(1, 60)), float(rng.uniform(0, 1)))
                      for _ in range(count)]
        budget = int(rng.integers(1, 150))
        best = 0.0
        for pick in itertools.product([False, True], repeat=count):
            chosen = [option for option, take in zip(candidates, pick) if take]
            if sum(o.size for o in chosen) <= budget:
                best = max(best, sum(o.value for o in chosen))
        chosen = knapsack(candidates, budget)
        assert chosen == sorted(set(chosen))
        assert chosen_size(candidates, chosen) <= budget
        assert chosen_value(candidates, chosen) == pytest.approx(best)


def test_knapsack_with_buckets_never_exceeds_budget():
    rng = np.random.default_rng(2)
    candidates = [Option(int(rng.integers(10_000, 3_000_000)), float(rng.uniform()))
                  for _ in range(300)]
    for budget in (5_000_001, 33_333_333, 123_456_789):
        chosen = knapsack(candidates, budget, max_buckets=512)
        assert chosen
        assert chosen_size(candidates, chosen) <= budget
    # Ten 1 MB products fill a 10 MB pass although 1 MB is not a multiple of the bucket size.
    assert len(knapsack([Option(1_000_000, 1.0)] * 12, 10_000_000, max_buckets=4096)) == 10


# --- ranking ----------------------------------------------------------------------------------
def test_ranking_puts_distinct_anomalies_before_near_duplicates():
    duplicates = [basis(0, noise=0.02, seed=s) for s in range(6)]
    distinct = [basis(1), basis(2), basis(3)]
    scores = [0.95, 0.94, 0.93, 0.92, 0.91, 0.90] + [0.80, 0.75, 0.70]
    ranking = rank(scores, duplicates + distinct, [], weight=0.9, floor=0.85)
    top4 = set(ranking.order[:4].tolist())
    assert top4 == {0, 6, 7, 8}
    assert all(ranking.priority[i] < 0.3 for i in range(1, 6))
    assert all(ranking.similar_to[i] in range(6) for i in range(1, 6))
    plain = rank(scores, duplicates + distinct, [], weight=0.0, floor=0.85)
    assert plain.order.tolist() == list(range(9))


def test_ranking_penalises_items_similar_to_released_memory():
    ranking = rank([0.9, 0.6], [basis(0), basis(1)], [basis(0, noise=0.01)], 0.9, 0.85)
    assert ranking.order.tolist() == [1, 0]
    assert ranking.similar_to[0] == ranking.memory_offset + 0


def test_ranking_treats_missing_or_mismatched_embeddings_as_distinct():
    embeddings = [basis(0), np.zeros(0, np.float32), np.ones(4, np.float32), basis(0)]
    ranking = rank([0.9, 0.8, 0.7, 0.6], embeddings, [], 0.9, 0.85)
    assert ranking.order.tolist() == [0, 1, 2, 3]
    assert ranking.redundancy.tolist() == [0.0, 0.0, 0.0, 1.0]


# --- queue ------------------------------------------------------------------------------------
class Clock:
    """A settable wall clock (nanoseconds) for TTL tests."""

    def __init__(self) -> None:
        """Start at t = 1e18 ns."""
        self.now = 10 ** 18

    def __call__(self) -> int:
        """Return the current time."""
        return self.now


def open_queue(path: Path, **policy) -> DownlinkQueue:
    """Open a queue with small defaults (no thumbnails unless asked)."""
    settings = {'send_thumbnails': False}
    settings.update(policy)
    return DownlinkQueue.connect(path, DownlinkPolicy(**settings), synchronous='NORMAL')


def test_accept_is_idempotent_and_respects_min_score(tmp_path):
    queue = open_queue(tmp_path / 'q.db', min_score=0.1)
    assert accept(queue, record(1, 0.7)).status == ACCEPTED
    assert accept(queue, record(1, 0.7)).status == DUPLICATE
    assert accept(queue, record(2, 0.05)).status == BELOW_MIN_SCORE
    assert queue.store.count_by_state()[QUEUED] == 1
    assert (queue.queued_count, queue.queued_bytes) == (1, 1000)


def test_eviction_by_priority_when_capacity_fits_the_window(tmp_path):
    queue = open_queue(tmp_path / 'q.db', capacity_items=3)
    ids = [accept(queue, record(frame, score, emb)).item_id for frame, score, emb in [
        (1, 0.9, basis(0)), (2, 0.89, basis(0, noise=0.01)), (3, 0.5, basis(1)),
        (4, 0.4, basis(2))]]
    # Frame 2 has the second-highest score but is a near-duplicate of frame 1: evicted first.
    assert queue.store.items_in_state(EVICTED) == [ids[1]]
    result = accept(queue, record(5, 0.1, basis(3)))
    assert result.evicted == (result.item_id,)  # the newcomer ranks last
    result = accept(queue, record(6, 0.45, basis(4)))
    assert result.evicted == (ids[3],)
    assert queue.store.items_in_state(QUEUED) == [ids[0], ids[2], result.item_id]


def test_eviction_beyond_the_window_takes_lowest_score_oldest_first(tmp_path):
    queue = open_queue(tmp_path / 'q.db', capacity_items=4, ranking_window=2)
    ids = [accept(queue, record(frame, score)).item_id
           for frame, score in [(1, 0.3), (2, 0.9), (3, 0.3), (4, 0.8)]]
    evicted = [accept(queue, record(5, 0.7)).evicted, accept(queue, record(6, 0.6)).evicted]
    assert evicted == [(ids[0],), (ids[2],)]


def test_byte_capacity_evicts_until_it_fits(tmp_path):
    queue = open_queue(tmp_path / 'q.db', capacity_bytes=2500)
    accept(queue, record(1, 0.9))
    accept(queue, record(2, 0.2))
    result = accept(queue, record(3, 0.8), 1200)
    assert result.evicted == (2,)
    assert queue.queued_bytes == 2200


def test_ttl_expires_old_items(tmp_path):
    clock = Clock()
    queue = DownlinkQueue.connect(tmp_path / 'q.db', DownlinkPolicy(ttl_s=60.0), 'NORMAL', clock)
    old = accept(queue, record(1, 0.9)).item_id
    clock.now += 30 * 10 ** 9
    young = accept(queue, record(2, 0.9)).item_id
    clock.now += 40 * 10 ** 9
    assert queue.expire() == [old]
    assert queue.store.items_in_state(EXPIRED) == [old]
    assert queue.store.items_in_state(QUEUED) == [young]


def test_pass_releases_distinct_anomalies_within_budget(tmp_path):
    queue = open_queue(tmp_path / 'q.db')
    duplicates = [accept(queue, record(i, 0.95 - i / 100, basis(0, 0.02, i))).item_id
                  for i in range(5)]
    distinct = [accept(queue, record(10 + i, 0.8 - i / 100, basis(1 + i))).item_id
                for i in range(3)]
    normals = [accept(queue, record(20 + i, 0.2, basis(5 + i))).item_id for i in range(3)]
    result = queue.run_pass(4000)
    released = [p.item_id for p in result.products]
    assert set(released) == {duplicates[0], *distinct}
    assert result.used_bytes == 4000
    assert [p.position for p in result.products] == [0, 1, 2, 3]
    assert queue.store.items_in_state(RELEASED) == sorted(released)
    rest = queue.run_pass(100_000)
    assert {p.item_id for p in rest.products} == set(duplicates[1:] + normals)
    assert queue.run_pass(100_000).products == ()


def test_pass_sends_thumbnails_when_full_products_do_not_fit(tmp_path):
    queue = open_queue(tmp_path / 'q.db', send_thumbnails=True)
    big = accept(queue, record(1, 0.9), 10_000, thumbnail=500).item_id
    small = accept(queue, record(2, 0.6, basis(2)), 1000).item_id
    other = accept(queue, record(3, 0.3, basis(3)), 5000, thumbnail=600).item_id
    result = queue.run_pass(2000)  # small goes in full; 1000 bytes left: big's thumbnail fits
    assert [(p.item_id, p.product) for p in result.products] == [(small, 'full'), (big, THUMBNAIL)]
    assert queue.store.items_in_state(QUEUED) == [big, other]
    assert queue.ranked()[0].item.thumbnail_sent
    follow_up = queue.run_pass(10_600)
    assert [(p.item_id, p.product) for p in follow_up.products] == [(big, 'full'),
                                                                    (other, THUMBNAIL)]


def test_outbox_survives_restart_and_counts_attempts(tmp_path):
    path = tmp_path / 'q.db'
    queue = open_queue(path)
    ids = [accept(queue, record(i, 0.5 + i / 100)).item_id for i in range(6)]
    first = queue.run_pass(3000).products
    queue.confirm_sent(queue.begin_publication(first[:2]))
    queue.begin_publication(first[2:])  # published, never acknowledged: the process "dies"
    queue.close()
    queue = open_queue(path)
    pending = queue.outbox()
    assert [p.release_id for p in pending] == [p.release_id for p in first[2:]]
    assert [p.attempts for p in pending] == [1]
    retried = queue.begin_publication(pending)
    assert [p.attempts for p in retried] == [2]
    queue.confirm_sent(retried)
    queue.run_pass(100_000)
    queue.confirm_sent(queue.begin_publication(queue.outbox()))
    releases = queue.store.releases()
    assert sorted(r.item_id for r in releases) == ids
    assert queue.outbox() == []


def test_a_product_cannot_be_released_twice(tmp_path):
    queue = open_queue(tmp_path / 'q.db')
    item = accept(queue, record(1, 0.9)).item_id
    product = queue.run_pass(10_000).products[0]
    with pytest.raises(sqlite3.IntegrityError), queue.store.transaction():
        queue.store.insert_release(item, product.pass_id, 1, 'full', 100, 0.9)


def test_interrupted_pass_transaction_releases_nothing(tmp_path):
    path = tmp_path / 'q.db'
    child = (
        'import os, sys\n'
        'from vad4space_ros.downlink.downlink_queue import DownlinkQueue\n'
        'from vad4space_ros.downlink.policy import DownlinkPolicy\n'
        'queue = DownlinkQueue.connect(sys.argv[1], DownlinkPolicy(send_thumbnails=False))\n'
        'queue.store.finish_pass = lambda *a: os._exit(9)\n'  # die inside the pass transaction
        'queue.run_pass(10 ** 9)\n')
    queue = open_queue(path)
    ids = [accept(queue, record(i, 0.6)).item_id for i in range(3)]
    queue.close()
    died = subprocess.run([sys.executable, '-c', child, str(path)], capture_output=True)
    assert died.returncode == 9, died.stderr.decode()
    queue = open_queue(path)
    assert queue.store.items_in_state(QUEUED) == ids
    assert queue.store.releases() == []
    assert {p.item_id for p in queue.run_pass(10 ** 9).products} == set(ids)


# --- store errors -----------------------------------------------------------------------------
def test_a_schema_1_database_is_migrated_and_its_items_stay_sendable(tmp_path):
    """A queue written by schema 1 (records and estimated sizes, no products) opens as schema 2.

    Its queued item gains the columns of schema 2 (no record JSON, frame and heatmap missing)
    and is still released by a pass; new items store their products in the new table.
    """
    path = tmp_path / 'v1.db'
    schema_1 = '\n'.join(line for line in SCHEMA.replace(PRODUCTS_SCHEMA, '').splitlines()
                         if not line.strip().startswith(('record_json', 'missing')))
    legacy = sqlite3.connect(path)
    legacy.executescript(schema_1)
    legacy.execute(f'PRAGMA application_id={APPLICATION_ID}')
    legacy.execute('PRAGMA user_version=1')
    legacy.execute('INSERT INTO items (frame_id, stamp_ns, score, is_anomaly, method, model_id, '
                   'embedding, product_bytes, thumbnail_bytes, accepted_ns) '
                   'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                   ('cam/old', 5, 0.9, 1, 'padim', 'old-model', basis(3).tobytes(), 800, 0,
                    time.time_ns()))
    legacy.commit()
    legacy.close()
    queue = open_queue(path)
    store = queue.store
    assert store.connection.execute('PRAGMA user_version').fetchone()[0] == SCHEMA_VERSION
    old_id = store.queued_item_id('cam/old', 5)
    assert store.missing(old_id) == f'{FRAME},{HEATMAP}'
    assert store.count_missing() == {FRAME: 1, HEATMAP: 1}
    new_id = accept(queue, record(1, 0.7), thumbnail=100).item_id
    assert store.parts(new_id, [FRAME]) and store.missing(new_id) == ''
    released = {p.item_id for p in queue.run_pass(100_000).products}
    assert released == {old_id, new_id}
    queue.close()
    assert open_queue(path).store.items_in_state(RELEASED) == sorted(released)


def test_store_refuses_corrupt_foreign_locked_and_read_only_databases(tmp_path):
    corrupt = tmp_path / 'corrupt.db'
    corrupt.write_bytes(b'this is not an sqlite database' * 200)
    with pytest.raises(StoreError, match='not usable'):
        DownlinkStore.connect(corrupt)
    foreign = tmp_path / 'foreign.db'
    sqlite3.connect(foreign).execute('CREATE TABLE other (x)').connection.commit()
    with pytest.raises(StoreError, match='not a vad4space downlink queue'):
        DownlinkStore.connect(foreign)
    with pytest.raises(StoreError, match='directory'):
        DownlinkStore.connect(tmp_path / 'missing' / 'q.db')
    held = DownlinkStore.connect(tmp_path / 'q.db')
    with pytest.raises(StoreError, match='in use'):
        DownlinkStore.connect(tmp_path / 'q.db')
    held.close()
    DownlinkStore.connect(tmp_path / 'q.db').close()


def make_read_only(path: Path) -> None:
    """Make a file unwritable, also for root (immutable attribute)."""
    if os.geteuid() == 0:
        subprocess.run(['chattr', '+i', str(path)], check=True)
    else:
        path.chmod(0o444)


def undo_read_only(path: Path) -> None:
    """Undo :func:`make_read_only`."""
    if os.geteuid() == 0:
        subprocess.run(['chattr', '-i', str(path)], check=True)
    path.chmod(0o644)


def test_store_refuses_a_read_only_database(tmp_path):
    path = tmp_path / 'q.db'
    DownlinkStore.connect(path).close()
    make_read_only(path)
    try:
        with pytest.raises(StoreError, match='readonly|read-only|not usable'):
            DownlinkStore.connect(path)
    finally:
        undo_read_only(path)


# --- CLI --------------------------------------------------------------------------------------
def test_queue_show_prints_the_ranked_queue(tmp_path, capsys):
    """Print the table with ranks in priority order; a missing database is a clear error."""
    path = tmp_path / 'q.db'
    queue = open_queue(path)
    accept(queue, record(1, 0.9, basis(0)))
    accept(queue, record(2, 0.88, basis(0, noise=0.01)))
    accept(queue, record(3, 0.5, basis(1)))
    queue.close()
    assert cli_main(['queue', 'show', '--database', str(path), '--limit', '2']) == 0
    shown = capsys.readouterr().out
    lines = [line for line in shown.splitlines() if 'cam/' in line]
    assert [line.split('│')[3].strip() for line in lines] == ['cam/1', 'cam/3']
    assert '2 of 3 queued item(s) shown' in shown
    assert cli_main(['queue', 'show', '--database', str(tmp_path / 'none.db')]) == 2
    assert 'no downlink database' in capsys.readouterr().err
