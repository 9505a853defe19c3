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

"""Image-level anomaly-detection metrics (scikit-learn), as reported in the paper's tables.

All metrics treat label 1 = anomaly as the positive class and higher scores as more anomalous.

- ``img_auroc``: area under the ROC curve, :func:`sklearn.metrics.roc_auc_score`.
- ``auc_pr``: area under the precision-recall curve computed as **average precision**
  (:func:`sklearn.metrics.average_precision_score`, the step-wise sum
  ``sum_n (R_n - R_{n-1}) P_n``), not the trapezoidal ``auc(recall, precision)``, which is
  optimistic for PR curves. Chance level is the anomaly ratio (0.05 in settings 2 and 3).
- ``img_f1`` / ``img_acc`` (+ precision, recall, confusion counts) at the **deployable**
  threshold: ``score >= threshold`` where ``threshold`` is fixed beforehand — for calibrated
  scores 0.5, the threshold fitted on held-out *normal* images only (see
  :mod:`.calibration`). These keys are ``None`` when no threshold is given.
- ``img_f1_oracle`` / ``img_acc_oracle`` at the **oracle** threshold: the score threshold with
  the best F1 over the test set's own precision-recall curve. This is what anomalib's
  ``F1AdaptiveThreshold`` (and so the paper's img-F1) reports; it looks at the test labels, so
  it is an upper bound, not an operating point a deployed detector could choose.

``curves`` holds the ROC (fpr, tpr) and PR (precision, recall) points for plotting.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _as_arrays(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    label_array = np.asarray(labels).reshape(-1)
    score_array = np.asarray(scores, dtype=np.float64).reshape(-1)
    if label_array.shape != score_array.shape:
        raise ValueError(f'{label_array.size} labels but {score_array.size} scores')
    if label_array.size == 0:
        raise ValueError('no samples to evaluate')
    if not np.isin(label_array, (0, 1)).all():
        raise ValueError('labels must be 0 (normal) or 1 (anomaly)')
    if not np.isfinite(score_array).all():
        raise ValueError('scores must be finite (found NaN or infinity)')
    label_array = label_array.astype(np.int64)
    present = np.unique(label_array)
    if present.size < 2:
        kind = 'normal' if present[0] == 0 else 'anomalous'
        raise ValueError(f'all {label_array.size} samples are {kind}: AUROC, AUC-PR and F1 '
                         'need both normal (0) and anomalous (1) samples')
    return label_array, score_array


def confusion_at(labels: Sequence[int], scores: Sequence[float],
                 threshold: float) -> dict[str, Any]:
    """Return counts, F1, accuracy, precision and recall of ``score >= threshold``."""
    label_array = np.asarray(labels).reshape(-1).astype(bool)
    predicted = np.asarray(scores, dtype=np.float64).reshape(-1) >= threshold
    tp = int(np.sum(predicted & label_array))
    fp = int(np.sum(predicted & ~label_array))
    fn = int(np.sum(~predicted & label_array))
    tn = int(np.sum(~predicted & ~label_array))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {'threshold': float(threshold), 'f1': f1, 'acc': (tp + tn) / label_array.size,
            'precision': precision, 'recall': recall, 'tp': tp, 'fp': fp, 'tn': tn, 'fn': fn}


def oracle_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the score threshold with the best F1 over the precision-recall curve."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    # The last PR point (precision 1, recall 0) has no threshold.
    denominator = precision[:-1] + recall[:-1]
    f1 = np.divide(2 * precision[:-1] * recall[:-1], denominator,
                   out=np.zeros_like(denominator), where=denominator > 0)
    return float(thresholds[int(np.argmax(f1))])


def image_metrics(labels: Sequence[int], scores: Sequence[float],
                  threshold: float | None = None) -> dict[str, Any]:
    """Return the image-level metrics of the module docstring for one test set.

    ``labels``: 0 normal / 1 anomaly; ``scores``: higher = more anomalous (e.g. calibrated
    scores); ``threshold``: the deployable decision threshold on the same scale (0.5 for
    calibrated scores) or None. Raise ValueError unless both classes are present.
    """
    from sklearn.metrics import (average_precision_score, precision_recall_curve,
                                 roc_auc_score, roc_curve)

    label_array, score_array = _as_arrays(labels, scores)
    fpr, tpr, _ = roc_curve(label_array, score_array)
    precision, recall, _ = precision_recall_curve(label_array, score_array)
    oracle = confusion_at(label_array, score_array, oracle_threshold(label_array, score_array))
    result: dict[str, Any] = {
        'n': int(label_array.size),
        'n_anomalies': int(label_array.sum()),
        'n_normal': int(label_array.size - label_array.sum()),
        'anomaly_ratio': float(label_array.mean()),
        'img_auroc': float(roc_auc_score(label_array, score_array)),
        'auc_pr': float(average_precision_score(label_array, score_array)),
        'threshold': None, 'img_f1': None, 'img_acc': None, 'img_precision': None,
        'img_recall': None, 'tp': None, 'fp': None, 'tn': None, 'fn': None,
        'oracle_threshold': oracle['threshold'],
        'img_f1_oracle': oracle['f1'],
        'img_acc_oracle': oracle['acc'],
        'curves': {'roc_fpr': fpr.tolist(), 'roc_tpr': tpr.tolist(),
                   'pr_precision': precision.tolist(), 'pr_recall': recall.tolist()},
    }
    if threshold is not None:
        at = confusion_at(label_array, score_array, threshold)
        result.update({'threshold': at['threshold'], 'img_f1': at['f1'], 'img_acc': at['acc'],
                       'img_precision': at['precision'], 'img_recall': at['recall'],
                       'tp': at['tp'], 'fp': at['fp'], 'tn': at['tn'], 'fn': at['fn']})
    return result
