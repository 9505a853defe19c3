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

"""Opening the downlink database file: creation, the writer lock, checks, migration, WAL.

Durability: ``journal_mode=WAL``. ``synchronous=FULL`` (default) fsyncs the WAL at every
commit, so a committed acceptance or release survives a process kill *and* a power loss.
``NORMAL`` skips that fsync: still safe against a killed process (committed pages are in the
WAL file, which the OS keeps), but the last commits can roll back on power loss or an OS crash,
so an item the node counted as accepted could vanish; use it only where that is acceptable.

Only one process may write a store: :func:`open_for_writing` takes an exclusive ``flock`` on
``<database>.lock`` (released by the OS when the process dies, even on SIGKILL). Readers
(``vad4space queue show``, :func:`open_read_only`) open the database read-only and need no lock.

Start-up faults. A new database is built under a temporary name and renamed into place once its
schema is committed, so a database file the node did not finish creating never exists; an
existing 0-byte file is therefore refused (it was not created by this code). A damaged file
(corrupt, truncated, foreign) is refused *before anything is written to it*, so it stays as it
was for inspection or recovery. SQLite keeps the newest commits in ``<database>-wal`` until a
checkpoint: losing or damaging that file loses committed items, so back up the database, its
``-wal`` file and the policy in ``config/`` together (or ``sqlite3 q.db ".backup copy.db"``).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import fcntl
import os
from pathlib import Path
import sqlite3
from typing import TextIO

from vad4space_ros.downlink.schema import (
    APPLICATION_ID, MIGRATION_1_TO_2, SCHEMA, SCHEMA_VERSION, SYNCHRONOUS_MODES)

WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the -wal file keeps after a checkpoint


class StoreError(ValueError):
    """The database cannot be used as a downlink store (corrupt, foreign, read-only, locked)."""


@contextmanager
def immediate_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a block in one IMMEDIATE transaction: committed on success, rolled back on error."""
    connection.execute('BEGIN IMMEDIATE')
    try:
        yield connection
        connection.execute('COMMIT')  # may fail too (disk full): then roll back
    except BaseException:
        if connection.in_transaction:
            connection.execute('ROLLBACK')
        raise


def open_for_writing(path: Path, synchronous: str = 'FULL'
                     ) -> tuple[sqlite3.Connection, TextIO]:
    """Open (creating if needed) a store for writing; return (connection, writer lock).

    Raise StoreError if it is unusable; the file is then left unchanged.
    """
    if synchronous not in SYNCHRONOUS_MODES:
        raise StoreError(
            f'synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}')
    if not path.parent.is_dir():
        raise StoreError(f'directory of database {path} does not exist')
    if path.exists() and not path.is_file():
        raise StoreError(f'database path {path} is not a file')
    lock_handle = _lock(path)
    try:
        if not path.exists():
            _create(path)
        elif path.stat().st_size == 0:
            raise StoreError(
                f'database {path} is an empty (0-byte) file that this node did not create '
                '(new databases are built under a temporary name and renamed); refusing to '
                'use it as a new queue: delete it to start empty, or restore the backup')
        connection = sqlite3.connect(str(path), isolation_level=None, timeout=5.0,
                                     check_same_thread=False)
        _prepare(connection, path, synchronous)
    except sqlite3.Error as error:
        lock_handle.close()
        raise StoreError(f'database {path} is not usable: {error} (the file was left '
                         'unchanged)') from None
    except StoreError:
        lock_handle.close()
        raise
    return connection, lock_handle


def open_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing store for reading (no lock; safe while a node writes)."""
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
    return connection


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


def _lock(path: Path) -> TextIO:
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


def _prepare(connection: sqlite3.Connection, path: Path, synchronous: str) -> None:
    """Check the file is ours and intact (before writing anything), migrate, verify writes."""
    execute = connection.execute
    application_id = execute('PRAGMA application_id').fetchone()[0]
    tables = execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if application_id != APPLICATION_ID:
        raise StoreError(f'database {path} is not a vad4space downlink queue '
                         f'(application_id {application_id:#x}, {tables} foreign tables); '
                         'the file was left unchanged')
    check = execute('PRAGMA quick_check').fetchone()[0]
    if check != 'ok':
        raise StoreError(f'database {path} failed its integrity check: {check} (the '
                         'file was left unchanged; restore it from a backup)')
    version = execute('PRAGMA user_version').fetchone()[0]
    if version not in (1, SCHEMA_VERSION):
        raise StoreError(f'database {path} has schema version {version}, '
                         f'this version of vad4space reads {SCHEMA_VERSION}')
    if execute('PRAGMA journal_mode=WAL').fetchone()[0].lower() != 'wal':
        raise StoreError(f'database {path} cannot use WAL journaling')
    execute(f'PRAGMA synchronous={synchronous}')
    execute(f'PRAGMA journal_size_limit={WAL_SIZE_LIMIT}')
    execute('PRAGMA foreign_keys=ON')
    with immediate_transaction(connection):  # also proves the file is writable
        if version == 1:
            for statement in MIGRATION_1_TO_2.split(';'):
                if statement.strip():
                    execute(statement)
            execute(f'PRAGMA user_version={SCHEMA_VERSION}')
        execute("INSERT OR REPLACE INTO meta VALUES ('opened_by_pid', ?)", (str(os.getpid()),))
