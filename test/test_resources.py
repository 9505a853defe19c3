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

"""The one /proc memory reader (evaluation.resources.process_memory_mb)."""
import os
import subprocess
import sys

import pytest

from vad4space_ros.evaluation.resources import peak_rss_mb, process_memory_mb, rss_mb


def test_reads_this_process_and_another_one() -> None:
    assert 0 < rss_mb() <= peak_rss_mb()
    assert process_memory_mb(os.getpid(), 'VmRSS') == pytest.approx(rss_mb(), rel=0.2)
    child = subprocess.Popen(
        [sys.executable, '-c', 'import time; b = bytearray(40 * 2**20); print("ready", '
         'flush=True); time.sleep(30)'], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'ready'
        assert process_memory_mb(child.pid, 'VmRSS') > 40
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    with pytest.raises(OSError):
        process_memory_mb(child.pid)  # reaped: /proc/<pid> is gone


PEAK_SCRIPT = """
from vad4space_ros.evaluation.resources import peak_rss_mb, reset_peak_rss
reset_peak_rss()
before = peak_rss_mb()
buffer = bytearray(b'\\x01') * (64 * 1024 * 1024)  # written, so every page is resident
grown = peak_rss_mb()
del buffer
reset_peak_rss()
print(before, grown, peak_rss_mb())
"""


def test_peak_grows_with_a_large_buffer_and_resets() -> None:
    # In a fresh process: a long-lived one (this pytest run) can serve the buffer from pages it
    # already holds, and then its resident memory does not grow (seen in a CI run).
    result = subprocess.run([sys.executable, '-c', PEAK_SCRIPT], capture_output=True,
                            text=True, timeout=120, check=True)
    before, grown, after_reset = map(float, result.stdout.split())
    assert grown - before > 50
    assert after_reset < before + 50


def test_unknown_field_is_a_key_error() -> None:
    with pytest.raises(KeyError, match='VmNothing'):
        process_memory_mb('self', 'VmNothing')
