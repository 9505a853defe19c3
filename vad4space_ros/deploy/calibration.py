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

"""Anomaly threshold and score scale from held-out *normal* images only.

Training data is normal-only, so anomalib's F1AdaptiveThreshold (which needs anomalies in the
validation set) does not apply. Instead, with raw scores ``s`` of held-out normal images:

- ``threshold`` = the ``1 - false_alarm_rate`` quantile of ``s`` (default 5% false alarms),
- ``center`` = the median of ``s``,
- calibrated score = ``0.5 * (raw - center) / (threshold - center)``.

So a typical normal image scores about 0, the threshold maps to 0.5 and clear anomalies exceed
1. The map is linear (ranking is preserved, no clipping); is_anomaly means score >= 0.5.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CALIBRATED_THRESHOLD = 0.5


@dataclass(frozen=True)
class Calibration:
    """Raw-score threshold and centre from normal scores."""

    threshold: float
    center: float
    false_alarm_rate: float
    sample_count: int

    @classmethod
    def from_normal_scores(cls, raw_scores: np.ndarray,
                           false_alarm_rate: float = 0.05) -> 'Calibration':
        """Fit the threshold to a target false-alarm rate on normal scores."""
        scores = np.asarray(raw_scores, dtype=np.float64)
        if scores.size < 2 or not np.isfinite(scores).all():
            raise ValueError('calibration needs at least 2 finite normal scores')
        if not 0.0 < false_alarm_rate < 1.0:
            raise ValueError('false_alarm_rate must be in (0, 1)')
        threshold = float(np.quantile(scores, 1.0 - false_alarm_rate))
        center = float(np.median(scores))
        if threshold <= center:
            spread = float(np.std(scores)) or max(abs(center), 1.0) * 1e-6
            threshold = center + spread
        return cls(threshold, center, false_alarm_rate, int(scores.size))

    def normalise(self, raw_score: float | np.ndarray) -> float | np.ndarray:
        """Map raw scores onto the calibrated scale (threshold -> 0.5)."""
        return 0.5 * (raw_score - self.center) / (self.threshold - self.center)

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return asdict(self)
