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

"""The downlink queue: accept detections, keep them bounded, rank them, release them in passes.

Delivery semantics ("nothing lost, nothing sent twice")
------------------------------------------------------
- **Accepted** = the item's row is committed (``accept`` returns only after COMMIT). A detection
  the node received but had not committed when it died was never accepted; a detection
  delivered again after a restart (same frame_id and stamp) is recognised as a duplicate.
- **Released** = the item's product is in the outbox (``releases`` table). A pass is ONE
  transaction that records the pass, inserts its products into the outbox in order and marks
  fully released items ``released``. A crash before COMMIT releases nothing (the items stay
  queued for the next pass); after COMMIT everything is released. ``UNIQUE(item_id, product)``
  makes releasing a product twice impossible: **every accepted item is released exactly once**
  (or evicted/expired, also exactly once and recorded).
- **Sent** = the downlink consumer acknowledged the message. The node publishes outbox rows
  (reliable QoS), waits until every matched subscription acknowledged them (DDS reliable
  acknowledgement) and only then commits ``sent_ns``. Rows not acknowledged (no consumer, ack
  timeout, crash) stay in the outbox and are published again later, with ``attempt`` > 1.
  Exactly-once *transmission* over a link that can fail between "consumer received" and
  "sender recorded it" is impossible; we choose at-least-once with an idempotency key: every
  message carries its ``release_id`` (unique, never reused), so a consumer drops repeats.
  A repeat can only happen for products whose previous attempt was interrupted (flagged by
  ``attempt`` > 1); products with ``attempt`` = 1 are never sent again.

Products
--------
``accept`` stores the record and its captured bytes (:mod:`.products`: frame or region crops,
heatmap thumbnail) in ONE transaction, so an accepted item always has the products that were
captured with it. An image that arrives after its detection is attached later (``attach``) while
the item is still queued; an item released without its image goes home as its record alone,
marked ``missing`` (counted in :meth:`DownlinkQueue.summary`), never silently. Sizes in the
capacity limits and the knapsack are the stored byte lengths.

Capacity and ageing
-------------------
The full ranking is: the ``ranking_window`` highest-scored queued items in redundancy-aware
priority order, then the remaining items by score (newest first on ties). When the queue holds
more than ``capacity_items`` items or ``capacity_bytes`` bytes, items are evicted from the
**tail** of that ranking (lowest priority first; among equal scores beyond the window, the
oldest first) in the same transaction that accepted the new item (which may itself be the one
evicted). Items queued longer than ``ttl_s`` expire (checked periodically and before a pass).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
import math
import os
import time

from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.downlink.policy import DownlinkPolicy
from vad4space_ros.downlink.products import ProductPart, record_json
from vad4space_ros.downlink.ranking import NO_MATCH, rank
from vad4space_ros.downlink.schema import (
    EVICTED, FRAME, FULL_PRODUCT, HEATMAP, REGION, RELEASED, THUMBNAIL)
from vad4space_ros.downlink.selection import knapsack, Option
from vad4space_ros.downlink.store import DownlinkStore
from vad4space_ros.downlink.stored_rows import Release, StoredItem, StoredPart

# Tiny value per full product so that free budget still carries zero-priority items.
FILL_VALUE = 1e-9
ACCEPTED, DUPLICATE, BELOW_MIN_SCORE = 'accepted', 'duplicate', 'below_min_score'


@dataclass(frozen=True)
class RankedItem:
    """A queued item with its place in the ranking and why it is there."""

    rank: int
    item: StoredItem
    priority: float
    redundancy: float
    similarity: float
    similar_to: int | None
    similar_released: bool
    in_window: bool

    @property
    def reason(self) -> str:
        """Human-readable explanation of the priority."""
        kind = 'anomaly' if self.item.is_anomaly else 'normal'
        text = f'{kind} (score {self.item.score:.3f})'
        if not self.in_window:
            return text + '; beyond the ranking window (priority = score)'
        if self.redundancy > 0 and self.similar_to is not None:
            what = 'released item' if self.similar_released else 'item'
            text += (f'; near-duplicate of {what} {self.similar_to} (cos {self.similarity:.3f},'
                     f' priority -{100 * (1 - self.priority / max(self.item.score, 1e-12)):.0f}%)')
        if self.item.thumbnail_sent:
            text += '; thumbnail already sent'
        return text


@dataclass(frozen=True)
class AcceptResult:
    """Outcome of :meth:`DownlinkQueue.accept`."""

    status: str
    item_id: int | None
    evicted: tuple[int, ...] = ()


@dataclass(frozen=True)
class PassResult:
    """Outcome of :meth:`DownlinkQueue.run_pass`."""

    pass_id: int
    budget_bytes: int
    used_bytes: int
    products: tuple[Release, ...]
    expired: tuple[int, ...]


def kind_group(kind: str) -> str:
    """Return the product a part kind provides: ``frame`` (frame or regions) or ``heatmap``."""
    return HEATMAP if kind == HEATMAP else FRAME


class DownlinkQueue:
    """Persistent prioritized downlink queue (one writer process per database)."""

    def __init__(self, store: DownlinkStore, policy: DownlinkPolicy,
                 clock: Callable[[], int] = time.time_ns) -> None:
        """Use an open store; ``clock`` returns wall-clock nanoseconds (for ageing)."""
        self.store = store
        self.policy = policy
        self.clock = clock
        self.queued_count, self.queued_bytes = store.queued_totals()

    @classmethod
    def connect(cls, path: str | os.PathLike, policy: DownlinkPolicy,
                synchronous: str = 'FULL',
                clock: Callable[[], int] = time.time_ns) -> 'DownlinkQueue':
        """Open (or create) the queue database and record the policy in it."""
        store = DownlinkStore.connect(path, synchronous)
        with store.transaction():
            store.set_meta('policy', policy.to_json())
        return cls(store, policy, clock)

    def close(self) -> None:
        """Close the database."""
        self.store.close()

    # --- intake -----------------------------------------------------------------------------
    def accept(self, record: DetectionRecord,
               parts: Sequence[ProductPart] = ()) -> AcceptResult:
        """Queue a detection and its captured parts durably (one transaction), evict if full.

        Raises sqlite3.Error (for example a full disk) with nothing stored and nothing that was
        accepted before lost.
        """
        return self.accept_many([(record, parts)])[0]

    def accept_many(self, batch: Sequence[tuple[DetectionRecord, Sequence[ProductPart]]]
                    ) -> list[AcceptResult]:
        """Accept several detections in ONE transaction (one fsync: group commit).

        All or nothing: on sqlite3.Error none of them is stored (the caller may retry them one
        by one).
        """
        counts = self.queued_count, self.queued_bytes
        try:
            with self.store.transaction():
                results = [self._accept(record, parts) for record, parts in batch]
        except BaseException:
            self.queued_count, self.queued_bytes = counts
            raise
        return results

    def _accept(self, record: DetectionRecord, parts: Sequence[ProductPart]) -> AcceptResult:
        """Insert one detection inside the caller's transaction."""
        if record.score < self.policy.min_score:
            return AcceptResult(BELOW_MIN_SCORE, None)
        item_id = self.store.insert_item(
            record.frame_id, record.stamp_ns, float(record.score), record.is_anomaly,
            record.method, record.model_id, record.embedding, record_json(record), self.clock())
        if item_id is None:
            return AcceptResult(DUPLICATE, None)
        size, _ = self._store_parts(item_id, parts, [FRAME, HEATMAP])
        self.queued_count, self.queued_bytes, evicted = self._evict_over_capacity(
            self.queued_count + 1, self.queued_bytes + size)
        return AcceptResult(ACCEPTED, item_id, evicted)

    def attach(self, frame_id: str, stamp_ns: int,
               parts: Sequence[ProductPart]) -> str | None:
        """Add late parts to a queued item (kinds it still lacks).

        Return what it still lacks afterwards ('' = complete), or None if it is not queued.
        """
        with self.store.transaction():
            item_id = self.store.queued_item_id(frame_id, stamp_ns)
            if item_id is None:
                return None
            missing = [kind for kind in self.store.missing(item_id).split(',') if kind]
            self._store_parts(item_id, [p for p in parts if kind_group(p.kind) in missing],
                              missing)
            still_missing = self.store.missing(item_id)
            count, total, _ = self._evict_over_capacity(*self.store.queued_totals())
        self.queued_count, self.queued_bytes = count, total
        return still_missing

    def _store_parts(self, item_id: int, parts: Sequence[ProductPart],
                     missing: list[str]) -> tuple[int, int]:
        for part in parts:
            self.store.insert_part(item_id, part.kind, part.part, part.image_format, part.box,
                                   part.region_score, part.data)
        still_missing = [kind for kind in missing
                         if kind not in {kind_group(part.kind) for part in parts}]
        return self.store.set_sizes(item_id, ','.join(still_missing))

    def release_parts(self, release: Release) -> list[StoredPart]:
        """Return the stored parts a release carries: frame or crops, or the heatmap."""
        kinds = (FRAME, REGION) if release.product == FULL_PRODUCT else (HEATMAP,)
        return self.store.parts(release.item_id, kinds)

    def item_parts(self, item_id: int) -> list[StoredPart]:
        """Every stored part of an item."""
        return self.store.parts(item_id, (FRAME, REGION, HEATMAP))

    def _evict_over_capacity(self, count: int, total: int) -> tuple[int, int, tuple[int, ...]]:
        """Evict from the tail of the ranking until within capacity (inside a transaction)."""
        evicted = []
        while count > self.policy.capacity_items or total > self.policy.capacity_bytes:
            if count > self.policy.ranking_window:
                victim = self.store.bottom_queued(1)[0]
            else:
                victim = self.ranked()[-1].item
            self.store.set_state([victim.item_id], EVICTED, self.clock())
            evicted.append(victim.item_id)
            count -= 1
            total -= victim.product_bytes
        return count, total, tuple(evicted)

    def expire(self) -> list[int]:
        """Expire items older than ``ttl_s``; return their ids."""
        if self.policy.ttl_s <= 0:
            return []
        with self.store.transaction():
            expired = self._expire()
        if expired:
            self.queued_count, self.queued_bytes = self.store.queued_totals()
        return expired

    def _expire(self) -> list[int]:
        if self.policy.ttl_s <= 0:
            return []
        now = self.clock()
        return self.store.expire_before(now - int(self.policy.ttl_s * 1e9), now)

    # --- ranking ----------------------------------------------------------------------------
    def ranked(self, limit: int | None = None) -> list[RankedItem]:
        """Return the queue in rank order (the window, then the rest by score), up to ``limit``."""
        window = self.store.top_queued(self.policy.ranking_window)
        memory_size = self.policy.released_memory
        memory = self.store.released_embeddings(memory_size)
        memory_ids = self.store.released_item_ids(memory_size)
        ranking = rank([item.score for item in window], [item.embedding for item in window],
                       memory, self.policy.redundancy_weight, self.policy.similarity_floor)
        result = []
        for position, index in enumerate(ranking.order):
            if limit is not None and position >= limit:
                return result
            match = int(ranking.similar_to[index])
            released = match >= ranking.memory_offset
            similar_to = (None if match == NO_MATCH else
                          memory_ids[match - ranking.memory_offset] if released
                          else window[match].item_id)
            result.append(RankedItem(
                position + 1, window[index], float(ranking.priority[index]),
                float(ranking.redundancy[index]), float(ranking.similarity[index]), similar_to,
                released, True))
        if len(window) == self.policy.ranking_window:
            remaining = None if limit is None else limit - len(result)
            rest = self.store.top_queued(-1 if remaining is None else remaining,
                                         offset=len(window))
            result.extend(RankedItem(len(result) + k + 1, item, max(item.score, 0.0), 0.0,
                                     math.nan, None, False, False)
                          for k, item in enumerate(rest))
        return result

    # --- passes and the outbox --------------------------------------------------------------
    def run_pass(self, budget_bytes: int) -> PassResult:
        """Release the best set of products that fits ``budget_bytes`` (one transaction).

        Rounds of: rank the window, knapsack over its full products (value = priority), release
        them; the next round ranks what is left (items beyond the window move up). When no
        further full product fits, the rest of the budget goes to thumbnails of the window's
        items (knapsack, value = priority) if ``send_thumbnails``. Products are released in
        rank order within a round.
        """
        if budget_bytes < 0:
            raise ValueError(f'pass budget must be >= 0 bytes, got {budget_bytes}')
        with self.store.transaction():
            expired = self._expire()
            now = self.clock()
            pass_id = self.store.insert_pass(budget_bytes, now)
            remaining, position = budget_bytes, 0
            while remaining > 0:
                window = self.ranked(self.policy.ranking_window)
                chosen = knapsack([Option(e.item.product_bytes, e.priority + FILL_VALUE)
                                   for e in window], remaining, self.policy.max_knapsack_buckets)
                product = FULL_PRODUCT
                if not chosen and self.policy.send_thumbnails:
                    window = [e for e in window
                              if not e.item.thumbnail_sent and e.item.thumbnail_bytes > 0]
                    chosen = knapsack([Option(e.item.thumbnail_bytes, e.priority)
                                       for e in window], remaining,
                                      self.policy.max_knapsack_buckets)
                    product = THUMBNAIL
                for index in chosen:
                    entry = window[index]
                    size = (entry.item.product_bytes if product == FULL_PRODUCT
                            else entry.item.thumbnail_bytes)
                    self.store.insert_release(entry.item.item_id, pass_id, position, product,
                                              size, entry.priority)
                    if product == FULL_PRODUCT:
                        self.store.set_state([entry.item.item_id], RELEASED, now)
                    position += 1
                    remaining -= size
                if product == THUMBNAIL or not chosen:
                    break
            self.store.finish_pass(pass_id, budget_bytes - remaining, position)
            products = tuple(r for r in self.store.outbox() if r.pass_id == pass_id)
        self.queued_count, self.queued_bytes = self.store.queued_totals()
        return PassResult(pass_id, budget_bytes, budget_bytes - remaining, products,
                          tuple(expired))

    def outbox(self, limit: int = -1) -> list[Release]:
        """Released products not yet acknowledged, in release order."""
        return self.store.outbox(limit)

    def begin_publication(self, releases: Sequence[Release]) -> list[Release]:
        """Count a publication attempt (committed first); return the releases to publish."""
        with self.store.transaction():
            self.store.count_attempt([r.release_id for r in releases])
        return [replace(r, attempts=r.attempts + 1) for r in releases]

    def confirm_sent(self, releases: Sequence[Release]) -> None:
        """Record that the consumer acknowledged these releases."""
        with self.store.transaction():
            self.store.mark_sent([r.release_id for r in releases], self.clock())

    def summary(self) -> dict[str, int]:
        """Return counts per item state, the outbox size and the last pass."""
        counts = self.store.count_by_state()
        last = self.store.pass_summary() or (0, 0, 0, 0)
        missing = self.store.count_missing()
        return {**counts, 'queued_bytes': self.queued_bytes,
                'without_frame': missing[FRAME], 'without_heatmap': missing[HEATMAP],
                'outbox': self.store.outbox_size(), 'last_pass_id': last[0],
                'last_pass_budget_bytes': last[1], 'last_pass_used_bytes': last[2],
                'last_pass_products': last[3]}
