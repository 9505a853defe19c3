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

"""LROC / LROCNet lunar chipouts (Zenodo record 7041842, Dunkel et al. 2022).

Published layout: ``<root>/{train,val,test}/{ejecta,oldcrater,none}/*.jpg``: 227x227 grayscale
JPEG chipouts of LRO NAC images. ``none`` (no salient feature) is the normal class; ``ejecta``
(fresh crater with bright ejecta) and ``oldcrater`` (degraded crater) are the anomalies, as in
the VAD4Space paper. The real split sizes (train 358/594/2656, val 55/118/440, test 89/157/533
for ejecta/oldcrater/none) are listed file by file in the split manifest CSV
(``split,label,filename``) that :func:`read_manifest` reads.
"""
from __future__ import annotations

import csv
from pathlib import Path

from vad4space_ros.data.samples import (
    ANOMALY, Dataset, DatasetError, find_layout_root, IMAGE_SUFFIXES, keep_readable, list_files,
    NORMAL, Sample)

SPLITS = ('train', 'val', 'test')
CLASSES = ('none', 'ejecta', 'oldcrater')
NORMAL_CLASS = 'none'
# File counts of the real dataset per split and class (from the split manifest).
REAL_COUNTS = {
    'train': {'ejecta': 358, 'oldcrater': 594, 'none': 2656},
    'val': {'ejecta': 55, 'oldcrater': 118, 'none': 440},
    'test': {'ejecta': 89, 'oldcrater': 157, 'none': 533},
}


def find_root(root: Path | str) -> Path:
    """Return the folder holding the split folders: ``root`` itself or one level below it."""
    return find_layout_root(
        root, SPLITS, f'{"/".join(SPLITS)} folders each holding {"/".join(CLASSES)}', 'an LROC')


def load_lroc(root: Path | str, verify: bool = True) -> Dataset:
    """Load every chipout under ``root``; unreadable files are skipped and reported.

    ``verify`` opens each file's header (cheap) so corrupt files end up in ``Dataset.skipped``
    instead of failing later. Missing split or class folders raise DatasetError.
    """
    base = find_root(root)
    samples: list[Sample] = []
    problems = []
    for split in SPLITS:
        for category in CLASSES:
            folder = base / split / category
            if not folder.is_dir():
                problems.append(f'{split}/{category}')
                continue
            label = NORMAL if category == NORMAL_CLASS else ANOMALY
            samples.extend(Sample(path, label, category, split)
                           for path in list_files(folder, IMAGE_SUFFIXES))
    if problems:
        raise DatasetError(f'LROC root {base} lacks the class folders {problems}')
    skipped: list[tuple[Path, str]] = []
    if verify:
        samples = keep_readable(samples, skipped)
    return Dataset('lroc', base, samples, skipped)


def read_manifest(path: Path | str) -> list[tuple[str, str, str]]:
    """Read a split manifest CSV with columns ``split,label,filename`` into tuples."""
    rows = []
    with open(path, newline='') as handle:
        reader = csv.DictReader(handle)
        missing = {'split', 'label', 'filename'} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f'manifest {path} lacks the columns {sorted(missing)}')
        for row in reader:
            if row['split'] not in SPLITS or row['label'] not in CLASSES:
                raise DatasetError(f'manifest {path}: unexpected row {row}')
            rows.append((row['split'], row['label'], row['filename']))
    return rows


def compare_with_manifest(
        dataset: Dataset, manifest: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    """Compare a loaded dataset with manifest rows by (split, class, file name).

    Returns ``{'missing': [...], 'unexpected': [...]}`` as ``split/class/name`` strings; both
    empty means the dataset holds exactly the manifest's files.
    """
    have = {f'{s.split}/{s.category}/{s.path.name}' for s in dataset.samples}
    want = {f'{split}/{label}/{name}' for split, label, name in manifest}
    return {'missing': sorted(want - have), 'unexpected': sorted(have - want)}
