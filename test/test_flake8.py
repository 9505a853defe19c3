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

"""Code style: ament_flake8 (flake8 with the ROS 2 configuration, max line length 99).

ament_flake8 runs in its own process: flake8 checks files in a forked multiprocessing pool, and
forking this pytest process, which holds DDS and executor threads from earlier tests, can
deadlock the forked workers.
"""
from pathlib import Path
import subprocess
import sys

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
CHECKED = ['vad4space_ros', 'launch', 'test', 'benchmarks', 'setup.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8() -> None:
    paths = [str(PACKAGE_ROOT / name) for name in CHECKED if (PACKAGE_ROOT / name).exists()]
    command = [sys.executable, '-c', 'import sys; from ament_flake8.main import main; '
               'sys.exit(main(sys.argv[1:]))', *paths]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f'code style errors / warnings:\n{result.stdout[-20000:]}'
