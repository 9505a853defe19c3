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

"""Stamp matching, completion rule and result document of the evaluator (ROS-free)."""
import json
import math

import pytest

from vad4space_ros.data.labels import GroundTruth
from vad4space_ros.deploy.records import DetectionRecord
from vad4space_ros.evaluation.matching import (
    CompletionWatch, evaluate, StampMatcher, summary_line, summary_values, write_result)
from vad4space_ros.evaluation.metrics import image_metrics


def _record(stamp_ns: int, score: float, latency_ms: float = 5.0) -> DetectionRecord:
    return DetectionRecord(stamp_ns=stamp_ns, frame_id='camera', score=score,
                           raw_score=score * 10, threshold=0.5, is_anomaly=score >= 0.5,
                           method='padim', model_id='m', latency_ms=latency_ms)


def _matcher(labels: dict[int, int], scores: dict[int, float]) -> StampMatcher:
    matcher = StampMatcher()
    for stamp, label in labels.items():
        matcher.add_label(stamp, GroundTruth(label, 'c', f'{stamp}.jpg'))
    for stamp, score in scores.items():
        matcher.add_detection(_record(stamp, score))
    return matcher


def test_matching_counts_unmatched_and_keeps_the_first_duplicate() -> None:
    matcher = _matcher({1: 0, 2: 1, 3: 0, 4: 1}, {1: 0.2, 2: 0.9, 3: 0.4, 5: 0.7})
    matcher.add_detection(_record(2, 0.1))  # sent again: the first record stays
    matcher.add_label(1, GroundTruth(1))
    result = evaluate(matcher, malformed=2, expected=4)
    assert result['counts'] == {
        'labels': 4, 'detections': 4, 'matched': 3, 'labels_without_detection': 1,
        'detections_without_label': 1, 'duplicate_labels': 1, 'duplicate_detections': 1,
        'malformed': 2, 'expected': 4}
    assert result['unmatched_label_stamps'] == [4]
    assert result['unmatched_detection_stamps'] == [5]
    assert result['complete'] is False
    assert result['metrics'] == image_metrics([0, 1, 0], [0.2, 0.9, 0.4], 0.5)
    assert result['decisions']['tp'] == 1 and result['decisions']['tn'] == 2
    assert [frame['score'] for frame in result['frames']] == [0.2, 0.9, 0.4]
    assert result['model'] == {'methods': ['padim'], 'model_ids': ['m'], 'thresholds': [0.5]}
    assert 'img-AUROC 1.0000' in summary_line(result)
    assert summary_values(result)['img_auroc'] == '1.0000'


def test_single_class_gives_an_error_not_metrics() -> None:
    result = evaluate(_matcher({1: 0, 2: 0}, {1: 0.1, 2: 0.2}), include_frames=False,
                      expected=2)
    assert result['metrics'] is None and result['error']
    assert result['complete'] is True and 'frames' not in result
    assert 'no metrics' in summary_line(result)


def test_completion_by_expected_count_quiet_replay_or_timeout() -> None:
    watch = CompletionWatch(100.0, quiet_period=2.0, timeout=60.0)
    assert watch.reason_to_finish(10, 101.0) is None  # nothing expected yet, no replay end
    assert watch.replay_finished('done', 3, 101.0) is True
    assert watch.replay_finished('done', 9, 101.5) is False  # the first announcement counts
    assert watch.expected == 3
    assert watch.reason_to_finish(3, 101.1) == 'all 3 expected frames matched'
    watch.activity(102.0)
    assert watch.reason_to_finish(2, 103.9) is None
    assert watch.reason_to_finish(2, 104.0) == 'replay done and quiet for 2.0 s'
    late = CompletionWatch(0.0, expected_count=5, timeout=10.0)
    assert late.reason_to_finish(4, 9.9) is None
    assert late.reason_to_finish(4, 10.0) == 'timeout after 10.0 s'


def test_result_is_written_atomically_and_nan_is_refused(tmp_path) -> None:
    path = tmp_path / 'out' / 'metrics.json'
    result = evaluate(_matcher({1: 0, 2: 1}, {1: 0.1, 2: 0.9}))
    write_result(result, path)
    assert json.loads(path.read_text())['counts']['matched'] == 2
    with pytest.raises(ValueError):
        write_result({'bad': math.nan}, path)
    assert json.loads(path.read_text())['counts']['matched'] == 2  # old file intact
    assert [p.name for p in path.parent.iterdir()] == ['metrics.json']  # no partial left
