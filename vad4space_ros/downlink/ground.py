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

"""The ground side of the downlink (ROS-free): products into a folder, and a contact sheet.

Each released product part arrives as two messages (see :mod:`vad4space_ros.nodes.downlink_node`):
its description (``~/downlink``: release_id, part, kind, sha256, record, ...) and, unless it is a
record-only product, its bytes (``~/downlink/image``, ``sensor_msgs/CompressedImage`` with the
frame's header). :class:`GroundFolder` pairs them by (frame, stamp, sha256), checks the hash and
writes ``<release_id>-<part>-<kind>.<png|jpg>`` and its JSON sidecar ``....json`` atomically
(image first, sidecar last: a sidecar means the product is complete). The product key
``release_id.part`` is the idempotency key: repeats (``attempt`` > 1 after an interrupted
transmission) are ignored, also across restarts of the receiver (it re-reads the sidecars).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
import hashlib
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from vad4space_ros.atomic_files import (
    atomic_output, atomic_write_bytes, atomic_write_text)
from vad4space_ros.downlink.products import decode_image
from vad4space_ros.downlink.schema import RECORD_ONLY

EXTENSIONS = {'png': 'png', 'jpeg': 'jpg'}
PENDING_LIMIT = 1000


@dataclass(frozen=True)
class Arrival:
    """What :meth:`GroundFolder.receive_description` / ``receive_image`` did."""

    written: tuple[Path, ...] = ()
    repeat: bool = False
    rejected: str = ''


def product_key(description: dict[str, Any]) -> str:
    """Return the idempotency key of a product part: ``<release_id>.<part>``."""
    return f'{description["release_id"]}.{description["part"]}'


def file_stem(description: dict[str, Any]) -> str:
    """Return the file name (without extension) of a product part."""
    return f'{int(description["release_id"]):06d}-{description["part"]}-{description["kind"]}'


class GroundFolder:
    """Write received products into ``folder``, each exactly once."""

    def __init__(self, folder: str | os.PathLike) -> None:
        """Create the folder if needed and remember the products already in it."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.received: set[str] = set()
        self._written_images: set[tuple[str, int, str]] = set()
        for sidecar in self.folder.glob('*.json'):
            try:
                description = json.loads(sidecar.read_text())
                self.received.add(product_key(description))
            except (OSError, ValueError, KeyError):
                continue  # not ours, or unreadable: ignored (never overwritten: names differ)
            if description.get('sha256'):
                self._written_images.add(_image_key(description))
        self._descriptions: OrderedDict[tuple[str, int, str], dict] = OrderedDict()
        self._images: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()

    def receive_description(self, description: dict[str, Any]) -> Arrival:
        """Take a product description; write the product when its bytes are here."""
        if product_key(description) in self.received:
            return Arrival(repeat=True)
        if description['kind'] == RECORD_ONLY:
            return Arrival(self._write(description, None))
        key = _image_key(description)
        data = self._images.pop(key, None)
        if data is None:
            _remember(self._descriptions, key, description)
            return Arrival()
        return Arrival(self._write(description, data))

    def receive_image(self, frame_id: str, stamp_ns: int, data: bytes) -> Arrival:
        """Take the bytes of a product part; write it when its description is here."""
        key = (frame_id, stamp_ns, hashlib.sha256(data).hexdigest())
        description = self._descriptions.pop(key, None)
        if description is None:
            if key in self._written_images:
                return Arrival(repeat=True)
            _remember(self._images, key, data)
            return Arrival()
        if product_key(description) in self.received:
            return Arrival(repeat=True)
        return Arrival(self._write(description, data))

    def _write(self, description: dict[str, Any], data: bytes | None) -> tuple[Path, ...]:
        stem = file_stem(description)
        written = []
        sidecar = dict(description)
        if data is not None:
            image_path = self.folder / f'{stem}.{EXTENSIONS.get(description["format"], "bin")}'
            written.append(atomic_write_bytes(image_path, data))
            sidecar['file'] = image_path.name
            self._written_images.add(_image_key(description))
        written.append(atomic_write_text(self.folder / f'{stem}.json',
                                         json.dumps(sidecar, indent=1, sort_keys=True)))
        self.received.add(product_key(description))
        return tuple(written)

    @property
    def pending(self) -> int:
        """Return how many halves (descriptions or images) wait for their partner."""
        return len(self._descriptions) + len(self._images)


def _image_key(description: dict[str, Any]) -> tuple[str, int, str]:
    return description['frame_id'], int(description['stamp_ns']), description['sha256']


def _remember(cache: OrderedDict, key: Any, value: Any) -> None:
    cache[key] = value
    while len(cache) > PENDING_LIMIT:
        cache.popitem(last=False)


# --- report ----------------------------------------------------------------------------------
def read_products(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Return the sidecars of a ground folder grouped per detection, best score first.

    Each entry: frame_id, stamp_ns, score, is_anomaly, model_id, missing, parts (sidecars).
    """
    items: dict[tuple[str, int], dict[str, Any]] = {}
    for sidecar in sorted(Path(folder).glob('*.json')):
        try:
            description = json.loads(sidecar.read_text())
            key = (description['frame_id'], int(description['stamp_ns']))
        except (OSError, ValueError, KeyError):
            continue
        item = items.setdefault(key, {
            'frame_id': key[0], 'stamp_ns': key[1], 'score': float(description['score']),
            'is_anomaly': description.get('is_anomaly') == 'true',
            'model_id': description.get('model_id', ''),
            'missing': description.get('missing', ''), 'parts': []})
        item['parts'].append(description)
    ranked = sorted(items.values(), key=lambda item: (-item['score'], item['stamp_ns']))
    for item in ranked:
        item['parts'].sort(key=lambda part: (part['kind'] == 'heatmap', int(part['release_id']),
                                             int(part['part'])))
    return ranked


def contact_sheet(folder: str | os.PathLike, items: list[dict[str, Any]],
                  tile: int = 160, columns: int = 6) -> Image.Image:
    """Draw one tile per detection (its first image, else its heatmap), ranked by score."""
    label_height = 30
    rows = max(1, -(-len(items) // columns))
    sheet = Image.new('RGB', (columns * tile, rows * (tile + label_height)), 'white')
    draw = ImageDraw.Draw(sheet)
    for index, item in enumerate(items):
        left, top = (index % columns) * tile, (index // columns) * (tile + label_height)
        files = [part['file'] for part in item['parts'] if part.get('file')]
        if files:
            try:
                pixels = decode_image((Path(folder) / files[0]).read_bytes())
                thumb = Image.fromarray(np.ascontiguousarray(pixels))
                thumb.thumbnail((tile - 4, tile - 4))
                sheet.paste(thumb, (left + (tile - thumb.width) // 2,
                                    top + (tile - thumb.height) // 2))
            except (OSError, ValueError):
                draw.text((left + 8, top + tile // 2), 'unreadable image', fill='red')
        else:
            draw.text((left + 8, top + tile // 2), 'record only (no image)', fill='gray')
        colour = 'red' if item['is_anomaly'] else 'black'
        draw.text((left + 4, top + tile + 2),
                  f'#{index + 1} {item["score"]:.3f} {item["frame_id"]}'[:26], fill=colour)
        draw.text((left + 4, top + tile + 15), f'{len(files)} file(s)'
                  + (f', missing {item["missing"]}' if item['missing'] else ''), fill='gray')
    return sheet


def write_report(folder: str | os.PathLike) -> tuple[Path, Path, int]:
    """Write ``contact_sheet.png`` and ``index.html`` into the folder; return them and a count."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'no ground folder at {folder}')
    items = read_products(folder)
    sheet_path = folder / 'contact_sheet.png'
    with atomic_output(sheet_path) as temporary:
        contact_sheet(folder, items).save(temporary, format='PNG')
    rows = []
    for rank, item in enumerate(items, start=1):
        images = ' '.join(
            f'<a href="{html.escape(part["file"])}"><img src="{html.escape(part["file"])}" '
            f'height="96" title="{html.escape(part["kind"])}"></a>'
            for part in item['parts'] if part.get('file'))
        rows.append(
            f'<tr><td>{rank}</td><td>{html.escape(item["frame_id"])}</td>'
            f'<td>{item["stamp_ns"]}</td><td>{item["score"]:.4f}</td>'
            f'<td>{"anomaly" if item["is_anomaly"] else "normal"}</td>'
            f'<td>{html.escape(item["model_id"])}</td><td>{html.escape(item["missing"])}</td>'
            f'<td>{images}</td></tr>')
    page = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>vad4space ground report'
            '</title></head><body><h1>Received products, best score first</h1>'
            f'<p>{len(items)} detection(s) from {folder}</p><img src="contact_sheet.png">'
            '<table border="1"><tr><th>rank</th><th>frame</th><th>stamp_ns</th><th>score</th>'
            '<th>decision</th><th>model</th><th>missing</th><th>products</th></tr>'
            + ''.join(rows) + '</table></body></html>')
    html_path = atomic_write_text(folder / 'index.html', page)
    return sheet_path, html_path, len(items)
