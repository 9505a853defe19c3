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

"""Code style: ament_flake8 (flake8 with the ROS 2 configuration, max line length 99)."""
from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
CHECKED = ['vad4space_ros', 'launch', 'test', 'benchmarks', 'setup.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8() -> None:
    paths = [str(PACKAGE_ROOT / name) for name in CHECKED if (PACKAGE_ROOT / name).exists()]
    rc, errors = main_with_errors(argv=paths)
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
