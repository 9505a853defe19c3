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

"""SQLite (WAL) store of the downlink queue: items, products, passes and the release outbox.

Tables: ``items`` (one row per accepted detection with its record as JSON; ``state``
queued/released/evicted/expired; ``missing`` lists products whose image never arrived),
``products`` (the captured bytes: frame or region crops and the heatmap thumbnail, stored in the
transaction that accepts the item), ``passes`` (one row per bandwidth pass) and ``releases`` (the
outbox: one row per released product, ``UNIQUE(item_id, product)`` so no product can be released
twice; ``sent_ns`` is set once the downlink consumer acknowledged it).

Opening the file (the writer lock, durability, start-up faults and backups) is documented in
:mod:`vad4space_ros.downlink.database`; the rows as Python values are in
:mod:`vad4space_ros.downlink.stored_rows`.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
import os
from pathlib import Path
import sqlite3
from typing import TextIO

import numpy as np

from vad4space_ros.downlink.database import (
    immediate_transaction, open_for_writing, open_read_only)
from vad4space_ros.downlink.schema import (
    EVICTED, EXPIRED, FRAME, FULL_PRODUCT, HEATMAP, QUEUED, RELEASED)
from vad4space_ros.downlink.stored_rows import (
    decode_embedding, encode_embedding, ITEM_COLUMNS, item_from_row, PART_COLUMNS,
    part_from_row, Release, RELEASE_COLUMNS, release_from_row, StoredItem, StoredPart)


class DownlinkStore:
    """Connection to one downlink database; all writes go through :meth:`transaction`."""

    def __init__(self, connection: sqlite3.Connection, path: Path,
                 lock_handle: TextIO | None = None) -> None:
        """Wrap an open connection (use :meth:`connect` or :meth:`connect_read_only`)."""
        self.connection = connection
        self.path = path
        self._lock_handle = lock_handle

    @classmethod
    def connect(cls, path: str | os.PathLike, synchronous: str = 'FULL') -> 'DownlinkStore':
        """Open (creating if needed) a store for writing; raise StoreError if unusable."""
        path = Path(path).expanduser()
        connection, lock_handle = open_for_writing(path, synchronous)
        return cls(connection, path, lock_handle)

    @classmethod
    def connect_read_only(cls, path: str | os.PathLike) -> 'DownlinkStore':
        """Open an existing store for reading (no lock; safe while a node writes)."""
        path = Path(path).expanduser()
        return cls(open_read_only(path), path)

    def close(self) -> None:
        """Close the connection and release the writer lock."""
        self.connection.close()
        if self._lock_handle is not None:
            self._lock_handle.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Run a block in one IMMEDIATE transaction: committed on success, rolled back on error."""
        return immediate_transaction(self.connection)

    # --- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """Return a meta value or None."""
        row = self.connection.execute('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a meta value (inside the caller's transaction if any)."""
        self.connection.execute('INSERT OR REPLACE INTO meta VALUES (?, ?)', (key, value))

    # --- items ------------------------------------------------------------------------------
    def insert_item(self, frame_id: str, stamp_ns: int, score: float, is_anomaly: bool,
                    method: str, model_id: str, embedding: np.ndarray, record_json: str,
                    accepted_ns: int) -> int | None:
        """Insert an item without products; return its id, or None if already stored.

        Its sizes count the record only until :meth:`set_sizes` (same transaction).
        """
        cursor = self.connection.execute(
            'INSERT OR IGNORE INTO items (frame_id, stamp_ns, score, is_anomaly, method, '
            'model_id, embedding, product_bytes, thumbnail_bytes, accepted_ns, record_json) '
            'VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)',
            (frame_id, stamp_ns, score, int(is_anomaly), method, model_id,
             encode_embedding(embedding), len(record_json.encode()), accepted_ns, record_json))
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def queued_item_id(self, frame_id: str, stamp_ns: int) -> int | None:
        """Return the id of the queued item of a frame, or None."""
        row = self.connection.execute(
            'SELECT id FROM items WHERE frame_id = ? AND stamp_ns = ? AND state = ?',
            (frame_id, stamp_ns, QUEUED)).fetchone()
        return None if row is None else int(row[0])

    def insert_part(self, item_id: int, kind: str, part: int, image_format: str,
                    box: tuple[int, int, int, int], region_score: float | None,
                    data: bytes) -> None:
        """Store one captured product part (inside the caller's transaction)."""
        self.connection.execute(
            f'INSERT INTO products (item_id, {PART_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '
            '?)', (item_id, kind, part, image_format, *box, region_score, data))

    def parts(self, item_id: int, kinds: Sequence[str]) -> list[StoredPart]:
        """Return an item's stored parts of the given kinds (frame/regions first, by index)."""
        marks = ', '.join('?' * len(kinds))
        rows = self.connection.execute(
            f'SELECT {PART_COLUMNS} FROM products WHERE item_id = ? AND kind IN ({marks}) '
            "ORDER BY kind = 'heatmap', kind, part", (item_id, *kinds)).fetchall()
        return [part_from_row(row) for row in rows]

    def set_sizes(self, item_id: int, missing: str) -> tuple[int, int]:
        """Recompute an item's sizes from its stored bytes; return (product, thumbnail) bytes.

        Full product = frame or region crops + the record JSON; thumbnail = the heatmap part.
        """
        execute = self.connection.execute
        image_bytes, heatmap_bytes = execute(
            "SELECT coalesce(sum(CASE WHEN kind != 'heatmap' THEN length(data) END), 0), "
            "coalesce(sum(CASE WHEN kind = 'heatmap' THEN length(data) END), 0) "
            'FROM products WHERE item_id = ?', (item_id,)).fetchone()
        record_bytes = execute('SELECT length(CAST(record_json AS BLOB)) FROM items WHERE id = ?',
                               (item_id,)).fetchone()[0]
        product_bytes = int(image_bytes) + int(record_bytes)
        execute('UPDATE items SET product_bytes = ?, thumbnail_bytes = ?, missing = ? '
                'WHERE id = ?', (product_bytes, int(heatmap_bytes), missing, item_id))
        return product_bytes, int(heatmap_bytes)

    def missing(self, item_id: int) -> str:
        """Return the comma-separated product kinds an item still lacks."""
        return self.connection.execute('SELECT missing FROM items WHERE id = ?',
                                       (item_id,)).fetchone()[0]

    def count_missing(self) -> dict[str, int]:
        """Return {'frame': n, 'heatmap': n}: items of any state lacking that product."""
        return {kind: self.connection.execute(
            "SELECT count(*) FROM items WHERE ',' || missing || ',' LIKE ?",
            (f'%,{kind},%',)).fetchone()[0] for kind in (FRAME, HEATMAP)}

    def stored_bytes(self) -> tuple[int, int]:
        """Return (number of product parts, their total bytes)."""
        count, total = self.connection.execute(
            'SELECT count(*), coalesce(sum(length(data)), 0) FROM products').fetchone()
        return int(count), int(total)

    def queued_totals(self) -> tuple[int, int]:
        """Return (number of queued items, their total estimated product bytes)."""
        count, total = self.connection.execute(
            'SELECT count(*), coalesce(sum(product_bytes), 0) FROM items WHERE state = ?',
            (QUEUED,)).fetchone()
        return int(count), int(total)

    def top_queued(self, limit: int, offset: int = 0) -> list[StoredItem]:
        """Queued items with the highest scores (ties: newest first), skipping ``offset``."""
        rows = self.connection.execute(
            f'SELECT {ITEM_COLUMNS} FROM items WHERE state = ? ORDER BY score DESC, id DESC '
            'LIMIT ? OFFSET ?', (QUEUED, limit, offset)).fetchall()
        return [item_from_row(row) for row in rows]

    def bottom_queued(self, limit: int) -> list[StoredItem]:
        """Queued items with the lowest scores (ties: oldest first)."""
        rows = self.connection.execute(
            f'SELECT {ITEM_COLUMNS} FROM items WHERE state = ? ORDER BY score ASC, id ASC '
            'LIMIT ?', (QUEUED, limit)).fetchall()
        return [item_from_row(row) for row in rows]

    def set_state(self, item_ids: Sequence[int], state: str, now_ns: int) -> None:
        """Move queued items to another state."""
        self.connection.executemany(
            'UPDATE items SET state = ?, state_ns = ? WHERE id = ? AND state = ?',
            [(state, now_ns, item_id, QUEUED) for item_id in item_ids])

    def expire_before(self, cutoff_ns: int, now_ns: int) -> list[int]:
        """Mark queued items accepted before ``cutoff_ns`` expired; return their ids."""
        ids = [row[0] for row in self.connection.execute(
            'SELECT id FROM items WHERE state = ? AND accepted_ns < ? ORDER BY id',
            (QUEUED, cutoff_ns))]
        self.set_state(ids, EXPIRED, now_ns)
        return ids

    def count_by_state(self) -> dict[str, int]:
        """Return {state: number of items}."""
        counts = dict.fromkeys((QUEUED, RELEASED, EVICTED, EXPIRED), 0)
        counts.update(self.connection.execute(
            'SELECT state, count(*) FROM items GROUP BY state').fetchall())
        return counts

    def items_in_state(self, state: str) -> list[int]:
        """Ids of items in ``state`` (ascending)."""
        return [row[0] for row in self.connection.execute(
            'SELECT id FROM items WHERE state = ? ORDER BY id', (state,))]

    def released_embeddings(self, limit: int) -> list[np.ndarray]:
        """Embeddings of the ``limit`` most recently released full products."""
        if limit <= 0:
            return []
        rows = self.connection.execute(
            'SELECT i.embedding FROM releases r JOIN items i ON i.id = r.item_id '
            'WHERE r.product = ? ORDER BY r.id DESC LIMIT ?', (FULL_PRODUCT, limit)).fetchall()
        return [decode_embedding(row[0]) for row in rows]

    def released_item_ids(self, limit: int) -> list[int]:
        """Item ids matching :meth:`released_embeddings` (same order)."""
        if limit <= 0:
            return []
        return [row[0] for row in self.connection.execute(
            'SELECT item_id FROM releases WHERE product = ? ORDER BY id DESC LIMIT ?',
            (FULL_PRODUCT, limit))]

    # --- passes and the outbox -------------------------------------------------------------
    def insert_pass(self, budget_bytes: int, now_ns: int) -> int:
        """Record a pass (inside the caller's transaction); return its id."""
        return self.connection.execute(
            'INSERT INTO passes (budget_bytes, used_bytes, products, created_ns) '
            'VALUES (?, 0, 0, ?)', (budget_bytes, now_ns)).lastrowid

    def finish_pass(self, pass_id: int, used_bytes: int, products: int) -> None:
        """Store what a pass released (inside the caller's transaction)."""
        self.connection.execute('UPDATE passes SET used_bytes = ?, products = ? WHERE id = ?',
                                (used_bytes, products, pass_id))

    def insert_release(self, item_id: int, pass_id: int, position: int, product: str,
                       size: int, priority: float) -> None:
        """Put a product in the outbox (raises sqlite3.IntegrityError if already released)."""
        self.connection.execute(
            'INSERT INTO releases (item_id, pass_id, position, product, bytes, priority) '
            'VALUES (?, ?, ?, ?, ?, ?)', (item_id, pass_id, position, product, size, priority))

    def outbox(self, limit: int = -1) -> list[Release]:
        """Released products not yet acknowledged, in release order."""
        rows = self.connection.execute(
            f'SELECT {RELEASE_COLUMNS} FROM releases r JOIN items i ON i.id = r.item_id '
            'WHERE r.sent_ns IS NULL ORDER BY r.pass_id, r.position LIMIT ?',
            (limit,)).fetchall()
        return [release_from_row(row) for row in rows]

    def outbox_size(self) -> int:
        """Return the number of released products not yet acknowledged."""
        return self.connection.execute(
            'SELECT count(*) FROM releases WHERE sent_ns IS NULL').fetchone()[0]

    def releases(self) -> list[Release]:
        """Every released product (sent or not), in release order."""
        rows = self.connection.execute(
            f'SELECT {RELEASE_COLUMNS} FROM releases r JOIN items i ON i.id = r.item_id '
            'ORDER BY r.pass_id, r.position').fetchall()
        return [release_from_row(row) for row in rows]

    def count_attempt(self, release_ids: Sequence[int]) -> None:
        """Count one more publication attempt of these releases."""
        self.connection.executemany('UPDATE releases SET attempts = attempts + 1 WHERE id = ?',
                                    [(release_id,) for release_id in release_ids])

    def mark_sent(self, release_ids: Sequence[int], now_ns: int) -> None:
        """Mark releases acknowledged by the downlink consumer."""
        self.connection.executemany(
            'UPDATE releases SET sent_ns = ? WHERE id = ? AND sent_ns IS NULL',
            [(now_ns, release_id) for release_id in release_ids])

    def pass_summary(self) -> tuple[int, int, int, int] | None:
        """(pass id, budget, used bytes, products) of the latest pass, or None."""
        return self.connection.execute(
            'SELECT id, budget_bytes, used_bytes, products FROM passes ORDER BY id DESC '
            'LIMIT 1').fetchone()
