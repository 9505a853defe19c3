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
