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

"""The detector node's ``/diagnostics`` status: model, threshold, queue, counters and rates."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from vad4space_ros.deploy.frame_scoring import FrameScorer
from vad4space_ros.nodes.frame_queue import NewestFrameQueue


def detector_status(node_name: str, scorer: FrameScorer, threshold: float,
                    queue: NewestFrameQueue, totals: dict[str, int],
                    period: dict[str, float]) -> DiagnosticStatus:
    """Return the status: WARN when frames were rejected or failed in the last period."""
    detector = scorer.detector
    problem = period['period_rejected'] or period['period_failed']
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN if problem else DiagnosticStatus.OK,
        name=f'{node_name}: anomaly detector', hardware_id=detector.model_id,
        message=(f'{period["period_rejected"]} frame(s) rejected, '
                 f'{period["period_failed"]} failed in the last {period["period_s"]:.1f} s'
                 if problem else 'running'))
    pairs = {
        'model_loaded': 'true', 'model_id': detector.model_id, 'method': detector.method,
        'backbone': detector.backbone, 'threshold': repr(threshold),
        'spectral_fusion': str(scorer.fusing).lower(),
        'queue_size': str(queue.capacity), 'queued': str(len(queue)),
    }
    pairs.update({key: str(value) for key, value in totals.items()})
    pairs.update({key: f'{value:.3f}' for key, value in period.items()
                  if not key.startswith('period_')})
    status.values = [KeyValue(key=k, value=v) for k, v in pairs.items()]
    return status
