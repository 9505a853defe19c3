"""SQLite (WAL) store of the downlink queue: items, passes and the release outbox.

Durability: ``journal_mode=WAL``. ``synchronous=FULL`` (default) fsyncs the WAL at every
commit, so a committed acceptance or release survives a process kill *and* a power loss.
``NORMAL`` skips that fsync: still safe against a killed process (committed pages are in the
WAL file, which the OS keeps), but the last commits can roll back on power loss or an OS crash,
so an item the node counted as accepted could vanish; use it only where that is acceptable.

Only one process may write a store: :meth:`DownlinkStore.connect` takes an exclusive ``flock`` on
``<database>.lock`` (released by the OS when the process dies, even on SIGKILL). Readers
(``vad4space queue show``) open the database read-only and need no lock.

Tables: ``items`` (one row per accepted detection with its record as JSON; ``state``
queued/released/evicted/expired; ``missing`` lists products whose image never arrived),
``products`` (the captured bytes: frame or region crops and the heatmap thumbnail, stored in the
transaction that accepts the item), ``passes`` (one row per bandwidth pass) and ``releases`` (the
outbox: one row per released product, ``UNIQUE(item_id, product)`` so no product can be released
twice; ``sent_ns`` is set once the downlink consumer acknowledged it).

Start-up faults. A new database is built under a temporary name and renamed into place once its
schema is committed, so a database file the node did not finish creating never exists; an
existing 0-byte file is therefore refused (it was not created by this code). A damaged file
(corrupt, truncated, foreign) is refused *before anything is written to it*, so it stays as it
was for inspection or recovery. SQLite keeps the newest commits in ``<database>-wal`` until a
checkpoint: losing or damaging that file loses committed items, so back up the database, its
``-wal`` file and the policy in ``config/`` together (or ``sqlite3 q.db ".backup copy.db"``).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
import fcntl
import hashlib
import os
from pathlib import Path
import sqlite3

import numpy as np

from vad4space_ros.downlink.schema import (
    APPLICATION_ID, EVICTED, EXPIRED, FRAME, FULL_PRODUCT, HEATMAP, MIGRATION_1_TO_2, QUEUED,
    RELEASED, SCHEMA, SCHEMA_VERSION, SYNCHRONOUS_MODES, THUMBNAIL)


WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the -wal file keeps after a checkpoint


class StoreError(ValueError):
    """The database cannot be used as a downlink store (corrupt, foreign, read-only, locked)."""


@dataclass(frozen=True)
class StoredItem:
    """A queued item as the ranking needs it."""

    item_id: int
    frame_id: str
    stamp_ns: int
    score: float
    is_anomaly: bool
    embedding: np.ndarray
    product_bytes: int
    thumbnail_bytes: int
    thumbnail_sent: bool
    accepted_ns: int


@dataclass(frozen=True)
class Release:
    """One row of the outbox joined with its item."""

    release_id: int
    item_id: int
    pass_id: int
    position: int
    product: str
    size: int
    priority: float
    attempts: int
    frame_id: str
    stamp_ns: int
    score: float
    is_anomaly: bool
    model_id: str
    method: str
    record_json: str
    missing: str


@dataclass(frozen=True)
class StoredPart:
    """One captured product part: a frame, a region crop or a heatmap thumbnail (encoded)."""

    kind: str
    part: int
    image_format: str
    box: tuple[int, int, int, int]  # x, y, width, height in frame pixels
    region_score: float | None
    data: bytes

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes (pairs an image message with its description)."""
        return hashlib.sha256(self.data).hexdigest()


def encode_embedding(embedding: np.ndarray) -> bytes:
    """Store embeddings as float16 (half the space; cosine similarity is unaffected)."""
    return np.asarray(embedding, dtype=np.float16).ravel().tobytes()


def decode_embedding(blob: bytes) -> np.ndarray:
    """Inverse of :func:`encode_embedding` (float32)."""
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


ITEM_COLUMNS = ('items.id, frame_id, stamp_ns, score, is_anomaly, embedding, product_bytes, '
                'thumbnail_bytes, EXISTS (SELECT 1 FROM releases r WHERE r.item_id = items.id '
                f"AND r.product = '{THUMBNAIL}'), accepted_ns")
RELEASE_COLUMNS = ('r.id, r.item_id, r.pass_id, r.position, r.product, r.bytes, r.priority, '
                   'r.attempts, i.frame_id, i.stamp_ns, i.score, i.is_anomaly, i.model_id, '
                   'i.method, i.record_json, i.missing')
PART_COLUMNS = 'kind, part, format, x, y, width, height, region_score, data'


def _item(row: Sequence) -> StoredItem:
    return StoredItem(int(row[0]), row[1], int(row[2]), float(row[3]), bool(row[4]),
                      decode_embedding(row[5]), int(row[6]), int(row[7]), bool(row[8]),
                      int(row[9]))


def _release(row: Sequence) -> Release:
    return Release(*row[:10], float(row[10]), bool(row[11]), *row[12:16])


def _part(row: Sequence) -> StoredPart:
    return StoredPart(row[0], int(row[1]), row[2], (int(row[3]), int(row[4]), int(row[5]),
                                                    int(row[6])), row[7], bytes(row[8]))


class DownlinkStore:
    """Connection to one downlink database; all writes go through :meth:`transaction`."""

    def __init__(self, connection: sqlite3.Connection, path: Path, lock_handle=None) -> None:
        """Wrap an open connection (use :meth:`connect` or :meth:`connect_read_only`)."""
        self.connection = connection
        self.path = path
        self._lock_handle = lock_handle

    @classmethod
    def connect(cls, path: str | os.PathLike, synchronous: str = 'FULL') -> 'DownlinkStore':
        """Open (creating if needed) a store for writing; raise StoreError if unusable."""
        if synchronous not in SYNCHRONOUS_MODES:
            raise StoreError(
                f'synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}')
        path = Path(path).expanduser()
        if not path.parent.is_dir():
            raise StoreError(f'directory of database {path} does not exist')
        if path.exists() and not path.is_file():
            raise StoreError(f'database path {path} is not a file')
        lock_handle = cls._lock(path)
        try:
            if not path.exists():
                cls._create(path)
            elif path.stat().st_size == 0:
                raise StoreError(
                    f'database {path} is an empty (0-byte) file that this node did not create '
                    '(new databases are built under a temporary name and renamed); refusing to '
                    'use it as a new queue: delete it to start empty, or restore the backup')
            connection = sqlite3.connect(str(path), isolation_level=None, timeout=5.0,
                                         check_same_thread=False)
            store = cls(connection, path, lock_handle)
            store._prepare(synchronous)
        except sqlite3.Error as error:
            lock_handle.close()
            raise StoreError(f'database {path} is not usable: {error} (the file was left '
                             'unchanged)') from None
        except StoreError:
            lock_handle.close()
            raise
        return store

    @staticmethod
    def _create(path: Path) -> None:
        """Build an empty store beside ``path`` and rename it into place once committed."""
        building = path.with_name(f'.{path.name}.creating')
        for leftover in (building, Path(f'{building}-wal'), Path(f'{building}-shm')):
            leftover.unlink(missing_ok=True)
        connection = sqlite3.connect(str(building), isolation_level=None)
        try:
            connection.execute('PRAGMA journal_mode=WAL')
            connection.execute('BEGIN IMMEDIATE')
            for statement in SCHEMA.split(';'):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f'PRAGMA application_id={APPLICATION_ID}')
            connection.execute(f'PRAGMA user_version={SCHEMA_VERSION}')
            connection.execute('COMMIT')
        finally:
            connection.close()  # checkpoints the WAL into the file and removes it
        with open(building, 'rb') as handle:
            os.fsync(handle.fileno())
        building.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @staticmethod
    def _lock(path: Path):
        lock_path = path.with_name(path.name + '.lock')
        try:
            handle = open(lock_path, 'a+')
        except OSError as error:
            raise StoreError(f'cannot create lock file {lock_path}: {error}') from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StoreError(f'database {path} is in use by another downlink process '
                             f'(lock {lock_path} is held)') from None
        return handle

    def _prepare(self, synchronous: str) -> None:
        """Check the file is ours and intact (before writing anything), migrate, verify writes."""
        execute = self.connection.execute
        application_id = execute('PRAGMA application_id').fetchone()[0]
        tables = execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if application_id != APPLICATION_ID:
            raise StoreError(f'database {self.path} is not a vad4space downlink queue '
                             f'(application_id {application_id:#x}, {tables} foreign tables); '
                             'the file was left unchanged')
        check = execute('PRAGMA quick_check').fetchone()[0]
        if check != 'ok':
            raise StoreError(f'database {self.path} failed its integrity check: {check} (the '
                             'file was left unchanged; restore it from a backup)')
        version = execute('PRAGMA user_version').fetchone()[0]
        if version not in (1, SCHEMA_VERSION):
            raise StoreError(f'database {self.path} has schema version {version}, '
                             f'this version of vad4space reads {SCHEMA_VERSION}')
        if execute('PRAGMA journal_mode=WAL').fetchone()[0].lower() != 'wal':
            raise StoreError(f'database {self.path} cannot use WAL journaling')
        execute(f'PRAGMA synchronous={synchronous}')
        execute(f'PRAGMA journal_size_limit={WAL_SIZE_LIMIT}')
        execute('PRAGMA foreign_keys=ON')
        with self.transaction():  # also proves the file is writable (BEGIN IMMEDIATE + write)
            if version == 1:
                for statement in MIGRATION_1_TO_2.split(';'):
                    if statement.strip():
                        execute(statement)
                execute(f'PRAGMA user_version={SCHEMA_VERSION}')
            execute("INSERT OR REPLACE INTO meta VALUES ('opened_by_pid', ?)", (str(os.getpid()),))

    @classmethod
    def connect_read_only(cls, path: str | os.PathLike) -> 'DownlinkStore':
        """Open an existing store for reading (no lock; safe while a node writes)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f'no downlink database at {path}')
        try:
            connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True, isolation_level=None,
                                         timeout=5.0)
            application_id = connection.execute('PRAGMA application_id').fetchone()[0]
        except sqlite3.Error as error:
            raise StoreError(f'database {path} is not usable: {error}') from None
        if application_id != APPLICATION_ID:
            raise StoreError(f'database {path} is not a vad4space downlink queue')
        return cls(connection, path)

    def close(self) -> None:
        """Close the connection and release the writer lock."""
        self.connection.close()
        if self._lock_handle is not None:
            self._lock_handle.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one IMMEDIATE transaction: committed on success, rolled back on error."""
        self.connection.execute('BEGIN IMMEDIATE')
        try:
            yield self.connection
            self.connection.execute('COMMIT')  # may fail too (disk full): then roll back
        except BaseException:
            if self.connection.in_transaction:
                self.connection.execute('ROLLBACK')
            raise

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
        return [_part(row) for row in rows]

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
        return [_item(row) for row in rows]

    def bottom_queued(self, limit: int) -> list[StoredItem]:
        """Queued items with the lowest scores (ties: oldest first)."""
        rows = self.connection.execute(
            f'SELECT {ITEM_COLUMNS} FROM items WHERE state = ? ORDER BY score ASC, id ASC '
            'LIMIT ?', (QUEUED, limit)).fetchall()
        return [_item(row) for row in rows]

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
        return [_release(row) for row in rows]

    def outbox_size(self) -> int:
        """Return the number of released products not yet acknowledged."""
        return self.connection.execute(
            'SELECT count(*) FROM releases WHERE sent_ns IS NULL').fetchone()[0]

    def releases(self) -> list[Release]:
        """Every released product (sent or not), in release order."""
        rows = self.connection.execute(
            f'SELECT {RELEASE_COLUMNS} FROM releases r JOIN items i ON i.id = r.item_id '
            'ORDER BY r.pass_id, r.position').fetchall()
        return [_release(row) for row in rows]

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
