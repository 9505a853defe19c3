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

"""Time budgets and progress with estimated time left for every fit.

:class:`FitClock` is a Lightning callback. It logs one line at most every ``interval`` seconds
(``fit padim: epoch 1/1, batch 40/133, 0:00:31 elapsed, ~0:01:12 left``) so a long fit shows
its progress and an estimate of the time left even where no progress bar is drawn (benchmark
cells, background runs). With a ``budget`` (seconds) it stops a trainable method after the batch
that exceeds it: training ends early with the weights reached so far, and :meth:`record` says so
(it goes into the model metadata and the benchmark results). Memory-bank methods (PaDiM,
PatchCore) have one pass over the data and are never cut short: stopping them would leave a
model of part of the training set, so their budget only shows in the record as exceeded.
"""
from __future__ import annotations

import datetime
import logging
import time
from typing import Any

import lightning

logger = logging.getLogger(__name__)


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class FitClock(lightning.Callback):
    """Log fit progress with time left; stop a trainable fit once ``budget`` s have passed."""

    def __init__(self, label: str, budget: float | None = None, interval: float = 10.0,
                 trainable: bool = True) -> None:
        if budget is not None and budget <= 0:
            raise ValueError(f'time budget must be positive seconds, got {budget}')
        self.label = label
        self.budget = budget
        self.interval = interval
        self.trainable = trainable
        self.started = time.perf_counter()
        self.last_log = 0.0
        self.stopped_early = False
        self.batches_done = 0
        self.batches_per_epoch = 1

    def elapsed(self) -> float:
        """Return the seconds since the fit started."""
        return time.perf_counter() - self.started

    def on_train_start(self, trainer: lightning.Trainer, _module: Any) -> None:
        """Start the clock when training starts."""
        self.started = time.perf_counter()
        self.last_log = self.started

    def on_train_batch_end(self, trainer: lightning.Trainer, _module: Any, _outputs: Any,
                           _batch: Any, batch_index: int) -> None:
        """Log progress now and then; request a stop when the budget is spent."""
        batches = max(int(trainer.num_training_batches), 1)
        done = trainer.current_epoch * batches + batch_index + 1
        self.batches_done, self.batches_per_epoch = done, batches
        total = max(int(trainer.max_epochs or 1), 1) * batches
        elapsed = self.elapsed()
        if time.perf_counter() - self.last_log >= self.interval or done == total:
            self.last_log = time.perf_counter()
            left = elapsed / done * (total - done)
            budget = f', budget {_clock(self.budget)}' if self.budget else ''
            logger.info('fit %s: epoch %d/%d, batch %d/%d, %s elapsed, ~%s left%s', self.label,
                        trainer.current_epoch + 1, trainer.max_epochs, batch_index + 1, batches,
                        _clock(elapsed), _clock(left), budget)
        if self.trainable and self.budget is not None and elapsed > self.budget:
            if not self.stopped_early:
                logger.warning('fit %s: time budget of %.0f s spent after %d of %d batches; '
                               'stopping with the weights reached', self.label, self.budget,
                               done, total)
            self.stopped_early = True
            trainer.should_stop = True

    def record(self) -> dict[str, Any]:
        """Return the metadata entry: budget, seconds, whether and where the fit was cut."""
        seconds = self.elapsed()
        return {'time_budget_s': self.budget, 'train_seconds': round(seconds, 1),
                'stopped_early': self.stopped_early,
                'epochs_completed': round(self.batches_done / self.batches_per_epoch, 2),
                'budget_exceeded': self.budget is not None and seconds > self.budget}
