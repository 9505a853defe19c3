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

"""Image metrics against cases worked out by hand and against direct counts."""
import numpy as np
import pytest

from vad4space_ros.evaluation.metrics import confusion_at, image_metrics

# Four samples, worked by hand. Sorted by score: 0.8 (A), 0.4 (N), 0.35 (A), 0.1 (N).
# Pairs (anomaly, normal) ranked correctly: (0.8 > 0.4), (0.8 > 0.1), (0.35 > 0.1) but not
# (0.35 < 0.4): AUROC = 3/4. Average precision: recall steps 0.5 at precision 1 and 0.5 at
# precision 2/3 -> 0.5 * 1 + 0.5 * 2/3 = 5/6. Best F1: threshold 0.35 (P 2/3, R 1) -> 0.8.
FOUR_LABELS = [0, 0, 1, 1]
FOUR_SCORES = [0.1, 0.4, 0.35, 0.8]


def test_four_sample_case_by_hand():
    result = image_metrics(FOUR_LABELS, FOUR_SCORES, threshold=0.5)
    assert result['img_auroc'] == pytest.approx(0.75)
    assert result['auc_pr'] == pytest.approx(5 / 6)
    assert result['oracle_threshold'] == pytest.approx(0.35)
    assert result['img_f1_oracle'] == pytest.approx(0.8)
    assert result['img_acc_oracle'] == pytest.approx(0.75)
    # At 0.5 only the 0.8 anomaly is flagged: tp 1, fn 1, tn 2, fp 0.
    assert (result['tp'], result['fp'], result['tn'], result['fn']) == (1, 0, 2, 1)
    assert result['img_f1'] == pytest.approx(2 / 3)
    assert result['img_acc'] == pytest.approx(0.75)
    assert (result['n'], result['n_anomalies'], result['n_normal']) == (4, 2, 2)


def test_perfect_separation_scores_one():
    result = image_metrics([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.9], threshold=0.5)
    assert result['img_auroc'] == 1.0
    assert result['auc_pr'] == 1.0
    assert result['img_f1'] == 1.0 and result['img_acc'] == 1.0
    assert result['img_f1_oracle'] == 1.0


def test_reversed_scores_give_zero_auroc():
    result = image_metrics([0, 0, 0, 1, 1], [0.9, 0.8, 0.7, 0.2, 0.1])
    assert result['img_auroc'] == 0.0
    # The lowest-ranked anomalies: precision 1/4 at recall 1/2, 2/5 at recall 1.
    assert result['auc_pr'] == pytest.approx(0.5 * 1 / 4 + 0.5 * 2 / 5)


def test_f1_at_threshold_matches_direct_count():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 200)
    scores = rng.normal(labels * 0.8, 1.0)
    for threshold in (-0.5, 0.0, 0.4, 1.3):
        result = image_metrics(labels, scores, threshold=threshold)
        predicted = scores >= threshold
        tp = np.sum(predicted & (labels == 1))
        fp = np.sum(predicted & (labels == 0))
        fn = np.sum(~predicted & (labels == 1))
        assert result['img_f1'] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert result['img_acc'] == pytest.approx(np.mean(predicted == (labels == 1)))
    oracle = image_metrics(labels, scores)
    best = max(confusion_at(labels, scores, t)['f1'] for t in np.unique(scores))
    assert oracle['img_f1_oracle'] == pytest.approx(best)
    assert oracle['img_f1'] is None and oracle['threshold'] is None


def test_curves_span_the_unit_square():
    curves = image_metrics(FOUR_LABELS, FOUR_SCORES)['curves']
    assert curves['roc_fpr'][0] == 0.0 and curves['roc_fpr'][-1] == 1.0
    assert curves['roc_tpr'][-1] == 1.0
    assert len(curves['pr_precision']) == len(curves['pr_recall'])
    assert min(curves['pr_recall']) == 0.0 and max(curves['pr_recall']) == 1.0


@pytest.mark.parametrize('labels', [[0, 0, 0], [1, 1]])
def test_one_class_is_a_clear_error(labels):
    with pytest.raises(ValueError, match='need both normal'):
        image_metrics(labels, np.linspace(0, 1, len(labels)))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match='labels but'):
        image_metrics([0, 1], [0.1])
    with pytest.raises(ValueError, match='finite'):
        image_metrics([0, 1], [0.1, float('nan')])
    with pytest.raises(ValueError, match='0 \\(normal\\) or 1'):
        image_metrics([0, 2], [0.1, 0.2])
