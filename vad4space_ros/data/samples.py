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

"""The common sample type of both benchmarks and how to read a sample's pixels.

A :class:`Sample` names one file with its ground truth (``label`` 0 = normal, 1 = anomaly), its
class folder (``category``) and the dataset split it came from (``split``: ``train``, ``val`` or
``test``). :func:`load_rgb` gives every sample as an ``HxWx3 uint8`` RGB array, the input the
pretrained backbones expect: LROC's grayscale JPEGs become three identical channels and Mastcam's
6-band ``.npy`` tiles become the documented RGB view (see :mod:`.mastcam`). :func:`load_bands`
gives all bands as ``float32`` in ``[0, 1]``. The readers live in :mod:`.files` (re-exported
here); loading a whole dataset by name is :func:`.datasets.load_dataset`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import Iterable, Sequence

from vad4space_ros.data.files import (  # re-exported: the readers' long-standing home
    BANDS_SUFFIX, DatasetError, IMAGE_SUFFIXES, is_readable, load_bands, load_rgb)

__all__ = ['ANOMALY', 'BANDS_SUFFIX', 'Dataset', 'DatasetError', 'find_layout_root',
           'IMAGE_SUFFIXES', 'is_readable', 'keep_readable', 'list_files',
           'load_bands', 'load_rgb', 'NORMAL', 'require_root', 'Sample']

NORMAL = 0
ANOMALY = 1

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One benchmark file with its ground truth."""

    path: Path
    label: int
    category: str
    split: str

    @property
    def is_anomaly(self) -> bool:
        """Return True when the sample is an anomaly (label 1)."""
        return self.label == ANOMALY


@dataclass
class Dataset:
    """All samples found under one dataset root, plus the files that were skipped."""

    name: str
    root: Path
    samples: list[Sample]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def select(self, split: str | None = None, label: int | None = None) -> list[Sample]:
        """Return the samples of one split and/or label, in loader order."""
        return [s for s in self.samples
                if (split is None or s.split == split) and (label is None or s.label == label)]

    def counts(self) -> dict[tuple[str, str], int]:
        """Return the number of samples per (split, category)."""
        result: dict[tuple[str, str], int] = {}
        for sample in self.samples:
            key = (sample.split, sample.category)
            result[key] = result.get(key, 0) + 1
        return result


def keep_readable(
        samples: Iterable[Sample], skipped: list[tuple[Path, str]]) -> list[Sample]:
    """Return the samples whose files pass :func:`is_readable`; report the others in skipped."""
    kept = []
    for sample in samples:
        reason = is_readable(sample.path)
        if reason is None:
            kept.append(sample)
        else:
            skipped.append((sample.path, reason))
            logger.warning('skipping unreadable file %s: %s', sample.path, reason)
    return kept


def list_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Return the regular files of ``folder`` with one of ``suffixes``, sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith('.'))


def find_layout_root(root: Path | str, folders: Sequence[str], expected: str,
                     layout: str) -> Path:
    """Return the folder holding any of ``folders``: ``root`` itself or its one such child.

    ``layout`` names the dataset in the error (e.g. 'an LROC'), ``expected`` describes the
    folders it should hold.
    """
    base = require_root(root)

    def holds(folder: Path) -> bool:
        return any((folder / name).is_dir() for name in folders)

    if holds(base):
        return base
    nested = [child for child in sorted(base.iterdir()) if child.is_dir() and holds(child)]
    if len(nested) == 1:
        return nested[0]
    found = sorted(p.name for p in base.iterdir())[:20]
    raise DatasetError(f'{base} is not {layout} dataset root: expected {expected} '
                       f'(found: {found or "nothing"})')


def require_root(root: Path | str) -> Path:
    """Return ``root`` as a Path; raise FileNotFoundError when it is not a directory."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f'dataset root {path} does not exist or is not a directory')
    return path
