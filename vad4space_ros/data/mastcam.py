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

"""Mastcam multispectral novelty tiles (Zenodo record 3732485, Kerner et al. 2020).

Published layout (archives ``train_typical.zip``, ``validation_typical.zip``,
``test_typical.zip``, ``test_novel.zip``)::

    train_typical/*.npy  validation_typical/*.npy  test_typical/*.npy
    test_novel/all/*.npy                  every novel tile once (the evaluation set, 430 tiles)
    test_novel/<class>/*.npy              the same tiles sorted by class (a few in two classes)

Class folders of the real archive: ``bedrock``, ``broken-rock``, ``drill-hole``, ``drt``,
``dump-pile``, ``float``, ``meteorite``, ``veins`` (the paper's eight classes) plus ``scuff``,
``other`` and ``edge_cases``. A tile's category is its class folder name; a tile filed under two
classes gets both joined with ``|``; a tile of ``all/`` in no class folder is ``unknown``.
File names look like ``mcam00006_MR_0_sol0003_4.npy``.

Tiles are ``64x64x6`` arrays (the real files hold float64 values of 8-bit DN, 0..255) from the
six narrow-band filters of the Mastcam right-eye M-100 camera, in increasing wavelength:
R1 447 nm, R2 527 nm, R3 805 nm, R4 908 nm, R5 937 nm, R6 1013 nm (Bell et al. 2017). The
band order is the filter order R1..R6; no file in the archive states it, so it is an assumption
of this module (the paper only says "six narrow-band filters spanning roughly 400-1100 nm").

RGB view: the right eye has no narrow-band red filter in this set, so the view is the usual
false-colour composite of the three shortest wavelengths: R = R3 (805 nm, near-infrared),
G = R2 (527 nm, green), B = R1 (447 nm, blue), i.e. array bands ``(2, 1, 0)``. Values are
scaled from DN to ``uint8`` by clipping to 0..255. Tiles whose values all lie in ``[0, 1]``
are taken as already normalised and multiplied by 255. :func:`.files.normalise_tile` gives all
six bands as float32 in ``[0, 1]`` (DN / 255) for multispectral methods. Reading a tile (and
these constants: ``TILE_SHAPE``, ``BAND_WAVELENGTHS_NM``, ``RGB_BANDS``) lives in :mod:`.files`.
"""
from __future__ import annotations

from pathlib import Path

from vad4space_ros.data.files import BANDS_SUFFIX, DatasetError
from vad4space_ros.data.samples import (
    ANOMALY, Dataset, find_layout_root, keep_readable, list_files, NORMAL, Sample)

TYPICAL_FOLDERS = {'train': 'train_typical', 'val': 'validation_typical',
                   'test': 'test_typical'}
NOVEL_FOLDER = 'test_novel'
CANONICAL_NOVEL_FOLDER = 'all'
TYPICAL_CATEGORY = 'typical'
UNKNOWN_CATEGORY = 'unknown'
# The paper's eight novelty classes, by their folder names in the real archive.
NOVEL_CLASSES = ('drill-hole', 'drt', 'dump-pile', 'broken-rock', 'meteorite', 'veins',
                 'float', 'bedrock')


def find_root(root: Path | str) -> Path:
    """Return the folder holding the Mastcam split folders: ``root`` or one level below."""
    names = list(TYPICAL_FOLDERS.values()) + [NOVEL_FOLDER]
    return find_layout_root(root, names, str(names), 'a Mastcam')


def _novel_samples(novel_root: Path) -> list[Sample]:
    class_dirs = [d for d in sorted(novel_root.iterdir())
                  if d.is_dir() and d.name != CANONICAL_NOVEL_FOLDER]
    classes_by_name: dict[str, list[str]] = {}
    first_path: dict[str, Path] = {}
    for class_dir in class_dirs:
        for path in list_files(class_dir, (BANDS_SUFFIX,)):
            classes_by_name.setdefault(path.name, []).append(class_dir.name)
            first_path.setdefault(path.name, path)
    canonical = novel_root / CANONICAL_NOVEL_FOLDER
    if canonical.is_dir():
        paths = list_files(canonical, (BANDS_SUFFIX,))
    else:  # no all/: every class-folder tile once, at its first class folder.
        paths = [first_path[name] for name in sorted(first_path)]
    return [Sample(path, ANOMALY,
                   '|'.join(sorted(set(classes_by_name.get(path.name, [])))) or UNKNOWN_CATEGORY,
                   'test')
            for path in paths]


def load_mastcam(root: Path | str, verify: bool = True) -> Dataset:
    """Load every tile under ``root``; unreadable files are skipped and reported.

    Typical tiles get label 0 and category ``typical`` with splits train/val/test; novel tiles
    (``test_novel/all``) get label 1, split ``test`` and their class folder(s) as category.
    """
    base = find_root(root)
    missing = [name for name in list(TYPICAL_FOLDERS.values()) + [NOVEL_FOLDER]
               if not (base / name).is_dir()]
    if missing:
        raise DatasetError(f'Mastcam root {base} lacks the folders {missing}')
    samples: list[Sample] = []
    for split, folder in TYPICAL_FOLDERS.items():
        samples.extend(Sample(path, NORMAL, TYPICAL_CATEGORY, split)
                       for path in list_files(base / folder, (BANDS_SUFFIX,)))
    samples.extend(_novel_samples(base / NOVEL_FOLDER))
    skipped: list[tuple[Path, str]] = []
    if verify:
        samples = keep_readable(samples, skipped)
    return Dataset('mastcam', base, samples, skipped)
