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

"""Docstrings: ament_pep257 with the PEP 257 convention.

Package code must document every public module, class, method and function (``__init__`` is
covered by its class docstring, D107). Test functions are named for what they check, so tests
are also exempt from D103. The imperative-mood rule (D401) is left to test_flake8
(flake8-docstrings), which exempts properties; ament_pep257 does not pass pydocstyle's
property decorators and would flag every noun-phrase property docstring.
"""
from pathlib import Path

from ament_pep257.main import main
import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_CODE = ['vad4space_ros', 'launch', 'benchmarks', 'setup.py']


def existing(names: list[str]) -> list[str]:
    """Return the absolute paths of those names that exist in the package."""
    return [str(PACKAGE_ROOT / name) for name in names if (PACKAGE_ROOT / name).exists()]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257_package_code() -> None:
    rc = main(argv=existing(PACKAGE_CODE)
              + ['--convention', 'pep257', '--add-ignore', 'D107', 'D401'])
    assert rc == 0, 'Found docstring style errors in package code (see output above)'


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257_tests() -> None:
    rc = main(argv=existing(['test'])
              + ['--convention', 'pep257', '--add-ignore', 'D103', 'D107', 'D401'])
    assert rc == 0, 'Found docstring style errors in tests (see output above)'
