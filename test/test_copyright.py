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

"""ament_copyright: every source file carries the copyright notice and the Apache-2.0 header."""
from pathlib import Path

import pytest

ament_copyright = pytest.importorskip(
    'ament_copyright.main', reason='ament_copyright is installed by scripts/setup_env.sh from '
    "Debian's python3-ament-copyright (needs apt)")

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright() -> None:
    """Run ament_copyright over the package, tests, benchmarks and launch files."""
    paths = [str(PACKAGE_ROOT / name)
             for name in ('vad4space_ros', 'test', 'benchmarks', 'launch', 'setup.py')]
    assert ament_copyright.main(argv=paths) == 0, 'Found copyright/license header errors'
