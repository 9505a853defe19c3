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

"""Schema of the downlink queue database: states, product kinds, tables and migrations."""
from __future__ import annotations

APPLICATION_ID = 0x56344453  # 'V4DS': marks a database as a vad4space downlink store
SCHEMA_VERSION = 2
SYNCHRONOUS_MODES = ('FULL', 'NORMAL')
QUEUED, RELEASED, EVICTED, EXPIRED = 'queued', 'released', 'evicted', 'expired'
FULL_PRODUCT, THUMBNAIL = 'full', 'thumbnail'
FRAME, REGION, HEATMAP = 'frame', 'region', 'heatmap'  # kinds of captured product parts
RECORD_ONLY = 'record'  # what a full product whose image never arrived is sent as

PRODUCTS_SCHEMA = f"""
CREATE TABLE products (
    item_id INTEGER NOT NULL REFERENCES items (id),
    kind TEXT NOT NULL CHECK (kind IN ('{FRAME}', '{REGION}', '{HEATMAP}')),
    part INTEGER NOT NULL,
    format TEXT NOT NULL,
    x INTEGER NOT NULL,
    y INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    region_score REAL,
    data BLOB NOT NULL,
    PRIMARY KEY (item_id, kind, part)
);
"""
# Schema 1 (records and estimated sizes only) -> 2 (captured products).
MIGRATION_1_TO_2 = ("ALTER TABLE items ADD COLUMN record_json TEXT NOT NULL DEFAULT '{}';"
                    "ALTER TABLE items ADD COLUMN missing TEXT NOT NULL DEFAULT 'frame,heatmap';"
                    + PRODUCTS_SCHEMA)

SCHEMA = f"""
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    frame_id TEXT NOT NULL,
    stamp_ns INTEGER NOT NULL,
    score REAL NOT NULL,
    is_anomaly INTEGER NOT NULL,
    method TEXT NOT NULL,
    model_id TEXT NOT NULL,
    embedding BLOB NOT NULL,
    product_bytes INTEGER NOT NULL,
    thumbnail_bytes INTEGER NOT NULL,
    accepted_ns INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT '{QUEUED}'
        CHECK (state IN ('{QUEUED}', '{RELEASED}', '{EVICTED}', '{EXPIRED}')),
    state_ns INTEGER,
    record_json TEXT NOT NULL DEFAULT '{{}}',
    missing TEXT NOT NULL DEFAULT '',
    UNIQUE (frame_id, stamp_ns)
);
CREATE INDEX items_by_state_score ON items (state, score);
CREATE INDEX items_by_state_age ON items (state, accepted_ns);
CREATE TABLE passes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    budget_bytes INTEGER NOT NULL,
    used_bytes INTEGER NOT NULL,
    products INTEGER NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE TABLE releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items (id),
    pass_id INTEGER NOT NULL REFERENCES passes (id),
    position INTEGER NOT NULL,
    product TEXT NOT NULL CHECK (product IN ('{FULL_PRODUCT}', '{THUMBNAIL}')),
    bytes INTEGER NOT NULL,
    priority REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_ns INTEGER,
    UNIQUE (item_id, product)
);
CREATE INDEX releases_unsent ON releases (pass_id, position) WHERE sent_ns IS NULL;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
{PRODUCTS_SCHEMA}"""
