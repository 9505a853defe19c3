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

"""The paper's three evaluation settings (VAD4Space §III-C), seeded and reproducible.

Every setting returns a :class:`Split` of train / test / calibration samples built from a
dataset's own split labels (``train``, ``val``, ``test``):

* **Setting 1 (balanced test, the dataset's own protocol)**: train = normal samples of
  ``train``; calibration = normal samples of ``val`` (threshold calibration needs no
  anomalies); test = every sample of ``test``. LROC: train ``none`` / test all classes;
  Mastcam: ``train_typical`` / ``test_typical`` + ``test_novel``.
* **Setting 2 (5% positives)**: as setting 1, but the test set keeps all its normal samples
  and only ``k = round(r * n_normal / (1 - r))`` randomly drawn anomalies, so anomalies make up
  ``r`` (default 5%) of the test set up to rounding (e.g. LROC 28 of 561 = 4.99%).
* **Setting 3 (5% positives + contamination)**: the test set of setting 2 (identical for the
  same seed) and a training set whose anomalies make up ``r`` of it: ``round(r * n / (1 - r))``
  anomalies are added to the ``n`` normal training samples. They come from the anomalies of
  the ``train`` and ``val`` splits (LROC has them); a dataset without any (Mastcam) takes them
  from the test anomalies NOT chosen for the test set, so no anomaly is both trained on and
  tested. When that pool is too small (full-size Mastcam: 408 left, 490 needed) the normal
  training samples are subsampled until the ratio holds; ``Split.notes`` says so. Calibration
  samples stay normal-only in every setting.

Randomness: the test draw uses ``SeedSequence([seed, 0])``, the contamination draw
``SeedSequence([seed, 1])``, over samples sorted by path, so the same seed gives the same
splits whatever the input order; test and train lists are returned shuffled by
``SeedSequence([seed, 2])`` and ``([seed, 3])`` (a replayed stream then interleaves normal and
anomalous frames; settings 2 and 3 of one seed give the same test list in the same order).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import logging
from typing import Sequence

import numpy as np

from vad4space_ros.data.samples import ANOMALY, Dataset, NORMAL, Sample

SETTINGS = (1, 2, 3)
DEFAULT_ANOMALY_RATIO = 0.05

logger = logging.getLogger(__name__)


@dataclass
class Split:
    """Train, test and calibration samples of one setting."""

    setting: int
    seed: int
    anomaly_ratio: float
    train: list[Sample]
    test: list[Sample]
    calibration: list[Sample]
    notes: list[str] = field(default_factory=list)

    def part(self, name: str) -> list[Sample]:
        """Return the samples of ``train``, ``test`` or ``calibration``."""
        if name not in ('train', 'test', 'calibration'):
            raise ValueError(f'unknown split part {name!r}: expected train, test or calibration')
        return getattr(self, name)


def anomaly_count(n_normal: int, ratio: float) -> int:
    """Return how many anomalies make up ``ratio`` of a set with ``n_normal`` normals."""
    return int(round(ratio * n_normal / (1.0 - ratio)))


def _by_path(samples: Sequence[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: str(s.path))


def _draw(rng: np.random.Generator, pool: list[Sample], count: int) -> list[Sample]:
    if count >= len(pool):
        return list(pool)
    return [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))]


def _mix(rng: np.random.Generator, normals: list[Sample], pool: list[Sample], ratio: float,
         what: str, notes: list[str]) -> tuple[list[Sample], list[Sample]]:
    """Return (normals, anomalies) with anomalies = ``ratio`` of the total, up to rounding."""
    needed = anomaly_count(len(normals), ratio)
    if needed > len(pool):
        kept = len(normals)
        while kept > 0 and anomaly_count(kept, ratio) > len(pool):
            kept -= 1
        normals = _draw(rng, normals, kept)
        needed = anomaly_count(kept, ratio)
        note = (f'{what}: only {len(pool)} anomalies available, so the normal samples were '
                f'subsampled to {kept} to keep the anomaly ratio at {ratio:.0%}')
        notes.append(note)
        logger.warning(note)
    return normals, _draw(rng, pool, needed)


def make_setting(dataset: Dataset | Sequence[Sample], setting: int, seed: int = 0,
                 anomaly_ratio: float = DEFAULT_ANOMALY_RATIO) -> Split:
    """Build setting 1, 2 or 3 from a dataset's samples (see the module docstring)."""
    if setting not in SETTINGS:
        raise ValueError(f'unknown setting {setting}: expected one of {SETTINGS}')
    if not 0.0 < anomaly_ratio < 1.0:
        raise ValueError(f'anomaly_ratio must lie in (0, 1), got {anomaly_ratio}')
    samples = _by_path(dataset.samples if isinstance(dataset, Dataset) else dataset)

    def pick(split: str, label: int) -> list[Sample]:
        return [s for s in samples if s.split == split and s.label == label]

    train = pick('train', NORMAL)
    calibration = pick('val', NORMAL)
    test_normals, test_anomalies = pick('test', NORMAL), pick('test', ANOMALY)
    if not train:
        raise ValueError('the dataset has no normal training samples')
    if not test_normals or not test_anomalies:
        raise ValueError('the dataset needs normal and anomalous test samples')
    notes: list[str] = []
    if not calibration:
        notes.append('no normal validation samples: calibration set is empty')
    test = test_normals + test_anomalies
    if setting >= 2:
        test_rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
        normals, chosen = _mix(test_rng, test_normals, test_anomalies, anomaly_ratio,
                               'test set', notes)
        test = normals + chosen
        if setting == 3:
            pool = pick('train', ANOMALY) + pick('val', ANOMALY)
            if not pool:
                chosen_paths = {s.path for s in chosen}
                pool = [s for s in test_anomalies if s.path not in chosen_paths]
                notes.append('contamination drawn from test anomalies not used in the test set '
                             '(the dataset has no training anomalies)')
            train_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
            kept, contamination = _mix(train_rng, train, pool, anomaly_ratio, 'training set',
                                       notes)
            train = kept + contamination
    test_order = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    train_order = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    test = [test[i] for i in test_order.permutation(len(test))]
    train = [train[i] for i in train_order.permutation(len(train))]
    return Split(setting, seed, anomaly_ratio, train, test, calibration, notes)
