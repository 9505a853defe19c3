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

"""Contamination-robust fitting: trimming rules, leave-one-out screening, a contaminated fit."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
import torch

from vad4space_ros.data.synthetic_lunar import render_chip
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.training.fitting import fit_detector, FitConfig
from vad4space_ros.training.robust import (
    leave_one_out_scores, robust_z, RobustConfig, rule_scale, select_outliers)


def test_mad_rule_drops_only_scores_far_above_the_median():
    """Median + 3.5 robust sigmas: three planted high scores go, the bulk stays."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(10.0, 1.0, 60), [30.0, 25.0, 40.0]])
    dropped, cutoff = select_outliers(scores, RobustConfig())
    assert dropped == [60, 61, 62]
    assert cutoff == 25.0
    z, median, spread = robust_z(scores)
    assert abs(median - np.median(scores)) < 1e-12
    assert z[62] > 3.5 > z[:60].max()
    assert 0.7 < spread < 1.4  # 1.4826 * MAD estimates the bulk's sigma of 1


def test_mad_rule_on_log_scale_keeps_the_skewed_tail_of_clean_scores():
    """Right-skewed clean distances: raw MADs cut into their tail, log MADs only real outliers."""
    extra = {'raw': 0, 'log': 0}
    for seed in range(20):
        clean = np.random.default_rng(seed).lognormal(0.0, 0.3, 200)  # skewness about 0.9
        scores = np.concatenate([clean, np.array([4.0, 6.0]) * np.median(clean)])
        for name, config in (('raw', RobustConfig(log_scores=False)), ('log', RobustConfig())):
            dropped, _ = select_outliers(scores, config)
            assert {200, 201} <= set(dropped), (seed, name)
            extra[name] += len(dropped) - 2
    assert extra['raw'] >= 15 and extra['log'] <= 2, extra
    assert np.allclose(rule_scale(scores, RobustConfig()), np.log(scores))
    # Scores that are not all positive (e.g. a method's raw scores) keep their own scale.
    shifted = scores - 2.0
    assert np.array_equal(rule_scale(shifted, RobustConfig()), shifted)


def test_mad_rule_is_capped_and_fraction_rule_drops_a_fixed_share():
    """``max_drop_fraction`` caps the MAD rule; ``rule='fraction'`` drops round(f * n)."""
    scores = np.concatenate([np.zeros(15) + np.arange(15) * 0.01, np.full(5, 100.0)])
    capped, _ = select_outliers(scores, RobustConfig(max_drop_fraction=0.1))
    assert len(capped) == 2 and set(capped) <= set(range(15, 20))
    fixed, _ = select_outliers(np.arange(40.0), RobustConfig(rule='fraction', trim_fraction=0.1))
    assert fixed == [36, 37, 38, 39]
    clean, cutoff = select_outliers(np.arange(40.0), RobustConfig())
    assert clean == [] and cutoff == float('inf')


def test_bad_robust_options_are_rejected():
    """Unknown screens/rules and impossible fractions raise ValueError."""
    for options in ({'screen': 'magic'}, {'rule': 'median'}, {'max_drop_fraction': 1.0},
                    {'folds': 1}):
        with pytest.raises(ValueError):
            RobustConfig(**options)


def test_leave_one_out_needs_k_neighbours_against_look_alike_outliers():
    """Two identical outliers vouch for each other at k=1 but not at k=3."""
    rng = np.random.default_rng(1)
    features = torch.from_numpy(rng.normal(0.0, 1.0, (30, 16, 8)).astype(np.float32))
    features[[7, 19], 3] = torch.full((8,), 9.0)  # one far-off patch, shared by two images
    k1 = leave_one_out_scores(features, neighbours=1)
    k3 = leave_one_out_scores(features, neighbours=3)
    assert set(np.argsort(-k3)[:2]) == {7, 19}
    assert not {7, 19} & set(np.argsort(-k1)[:2])
    dropped, _ = select_outliers(k3, RobustConfig())
    assert set(dropped) == {7, 19}


@pytest.fixture(scope='module')
def contaminated() -> dict[str, list]:
    """30 normal + 5 fresh-crater training chips; the test craters are those five, mirrored.

    Recurring anomalies (the same kind of feature seen again) are what poisons a memory bank:
    without screening, PatchCore's bank holds the crater patches and finds near matches.
    """
    rng = np.random.default_rng(11)
    normal = [render_chip(rng, 'none') for _ in range(30)]
    craters = [render_chip(rng, 'ejecta') for _ in range(5)]
    order = np.random.default_rng(3).permutation(35)
    train = [(normal + craters)[i] for i in order]
    mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in craters]
    mirrored += [np.ascontiguousarray(c[::-1]) for c in craters]
    injected = {int(np.flatnonzero(order == 30 + j)[0]) for j in range(5)}
    return {'train': train, 'injected': injected,
            'calibration': [render_chip(rng, 'none') for _ in range(8)],
            'test': [render_chip(rng, 'none') for _ in range(16)] + mirrored,
            'labels': [0] * 16 + [1] * 10}


def test_robust_patchcore_drops_injected_anomalies_and_recovers_auroc(
        backbone, contaminated, tmp_path):
    """Screening drops mostly the injected craters; PatchCore's AUROC rises by >= 0.05."""
    data = contaminated
    results = {}
    for robust in (None, RobustConfig()):
        config = FitConfig('patchcore', backbone=backbone, input_size=(96, 96), progress=False,
                           robust=robust)
        detector = fit_detector(data['train'], config, data['calibration'])
        results[robust is not None] = (detector, roc_auc_score(
            data['labels'], detector.raw_scores(data['test'])))
    robust_detector, robust_auroc = results[True]
    _, plain_auroc = results[False]
    record = robust_detector.metadata['robust']
    dropped = set(record['dropped_indices'])
    assert len(dropped & data['injected']) >= 4, (dropped, data['injected'])
    assert len(dropped - data['injected']) <= 2, (dropped, data['injected'])
    assert record['dropped_count'] == len(dropped)
    assert record['rule'] == 'mad' and record['screen'] == 'features'
    assert robust_detector.metadata['train_count'] == 35 - len(dropped)
    assert 'robust' not in results[False][0].metadata
    assert robust_auroc >= plain_auroc + 0.05, (plain_auroc, robust_auroc)
    reloaded = load_model(robust_detector.save(tmp_path / 'robust.safetensors'))
    assert reloaded.metadata['robust'] == record


@pytest.mark.slow
def test_method_screen_scores_each_image_out_of_fold(backbone):
    """``screen='method'``: PaDiM fitted on the other folds ranks the two craters highest."""
    from vad4space_ros.training.robust import out_of_fold_scores
    rng = np.random.default_rng(4)
    images = [render_chip(rng, 'none') for _ in range(16)] + [
        render_chip(rng, 'ejecta') for _ in range(2)]
    config = FitConfig('padim', backbone=backbone, input_size=(64, 64), progress=False)
    scores = out_of_fold_scores(images, config, folds=3, fit=fit_detector)
    assert set(np.argsort(-scores)[:2]) == {16, 17}, scores
