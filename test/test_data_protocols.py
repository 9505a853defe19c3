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

"""The three evaluation settings: ratios, contamination, disjointness, determinism."""
from pathlib import Path

import pytest

from vad4space_ros.data import lroc, Sample
from vad4space_ros.data.protocols import anomaly_count, make_setting


def _lroc_like() -> list[Sample]:
    """Return samples with the real LROC split sizes (settings need no files)."""
    return [Sample(Path(f'/lroc/{split}/{category}/{i}.jpg'), int(category != 'none'),
                   category, split)
            for split, per_class in lroc.REAL_COUNTS.items()
            for category, count in per_class.items() for i in range(count)]


def _mastcam_like(train: int = 9302, novel: int = 430) -> list[Sample]:
    samples = [Sample(Path(f'/m/{split}/{i}.npy'), 0, 'typical', split)
               for split, count in (('train', train), ('val', 1000), ('test', 426))
               for i in range(count)]
    return samples + [Sample(Path(f'/m/test_novel/all/{i}.npy'), 1, 'veins', 'test')
                      for i in range(novel)]


def _ratio(samples):
    return sum(s.label for s in samples) / len(samples)


def test_setting_1_is_the_dataset_split():
    split = make_setting(_lroc_like(), 1, seed=0)
    assert len(split.train) == 2656 and _ratio(split.train) == 0
    assert {s.split for s in split.train} == {'train'}
    assert len(split.calibration) == 440 and _ratio(split.calibration) == 0
    assert len(split.test) == 89 + 157 + 533 and {s.split for s in split.test} == {'test'}


@pytest.mark.parametrize('setting', [2, 3])
def test_test_set_has_five_percent_anomalies_and_all_normals(setting):
    split = make_setting(_lroc_like(), setting, seed=3)
    normals = [s for s in split.test if s.label == 0]
    anomalies = [s for s in split.test if s.label == 1]
    assert len(normals) == 533
    assert len(anomalies) == anomaly_count(533, 0.05) == 28
    assert abs(_ratio(split.test) - 0.05) < 0.5 / len(split.test)
    assert {s.split for s in split.test} == {'test'}


def test_setting_3_contaminates_only_training_with_five_percent():
    samples = _lroc_like()
    split = make_setting(samples, 3, seed=1)
    assert len([s for s in split.train if s.label == 0]) == 2656
    assert sum(s.label for s in split.train) == anomaly_count(2656, 0.05) == 140
    assert {s.split for s in split.train if s.label} <= {'train', 'val'}
    assert _ratio(split.calibration) == 0
    assert not {s.path for s in split.train} & {s.path for s in split.test}
    assert not {s.path for s in split.calibration} & {s.path for s in split.train + split.test}
    assert [s.path for s in make_setting(samples, 2, seed=1).test] == [
        s.path for s in split.test]


def test_mastcam_contamination_comes_from_unused_novel_tiles_and_keeps_the_ratio():
    split = make_setting(_mastcam_like(), 3, seed=0)
    test_anomalies = {s.path for s in split.test if s.label}
    train_anomalies = {s.path for s in split.train if s.label}
    assert len(test_anomalies) == anomaly_count(426, 0.05) == 22
    assert not test_anomalies & train_anomalies
    assert len(train_anomalies) == 430 - 22
    train_normals = sum(1 for s in split.train if s.label == 0)
    assert train_normals < 9302 and anomaly_count(train_normals, 0.05) == 408
    assert abs(_ratio(split.train) - 0.05) < 0.5 / len(split.train)
    assert any('subsampled' in note for note in split.notes)


def test_small_mastcam_needs_no_subsampling():
    split = make_setting(_mastcam_like(train=200, novel=80), 3, seed=0)
    assert sum(1 for s in split.train if s.label == 0) == 200
    assert sum(s.label for s in split.train) == anomaly_count(200, 0.05) == 11
    assert not any('subsampled' in note for note in split.notes)


def test_same_seed_same_split_any_input_order_and_seeds_differ():
    samples = _lroc_like()
    first = make_setting(samples, 3, seed=7)
    again = make_setting(list(reversed(samples)), 3, seed=7)
    other = make_setting(samples, 3, seed=8)
    assert [s.path for s in first.test] == [s.path for s in again.test]
    assert [s.path for s in first.train] == [s.path for s in again.train]
    chosen = {s.path for s in first.test if s.label}
    assert chosen != {s.path for s in other.test if s.label}
    assert {s.path for s in first.train if s.label} != {s.path for s in other.train if s.label}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='unknown setting'):
        make_setting(_lroc_like(), 4)
    with pytest.raises(ValueError, match='anomaly_ratio'):
        make_setting(_lroc_like(), 2, anomaly_ratio=1.5)
    with pytest.raises(ValueError, match='no normal training samples'):
        make_setting([s for s in _lroc_like() if s.split != 'train'], 1)
