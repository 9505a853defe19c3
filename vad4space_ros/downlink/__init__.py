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

"""Prioritized, bandwidth-budgeted, redundancy-aware and crash-safe downlink queue (ROS-free).

- :mod:`.policy`: every policy knob with its default and description (the node declares them as
  ROS parameters; ``config/downlink.yaml`` sets them).
- :mod:`.schema`: states, product kinds, the tables and their migration.
- :mod:`.database`: opening the database file: creation, writer lock, checks, migration, WAL.
- :mod:`.store`: the SQLite (WAL) store: items, products, passes and the release outbox.
- :mod:`.stored_rows`: its rows as Python values (items, releases, product parts).
- :mod:`.ranking`: priority = calibrated score with DEMUD-like redundancy suppression.
- :mod:`.selection`: 0/1 (multiple-choice) knapsack that picks what a pass carries.
- :mod:`.downlink_queue`: :class:`DownlinkQueue` ties them together (accept, evict, expire,
  pass) and documents the delivery semantics.
- :mod:`.products`: capture of the product bytes (frame or region crops, heatmap thumbnail).
- :mod:`.image_matching`: pairing detection records with images arriving in any order.
- :mod:`.intake`: the intake thread (capture and group commit off the ROS executor).
- :mod:`.ground`: the ground side: receiving products into a folder, the contact sheet.
"""
