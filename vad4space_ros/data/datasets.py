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

"""Load a benchmark dataset by name from its published layout (LROC or Mastcam)."""
from __future__ import annotations

from pathlib import Path

from vad4space_ros.data.lroc import load_lroc
from vad4space_ros.data.mastcam import load_mastcam
from vad4space_ros.data.samples import Dataset


def load_dataset(name: str, root: Path | str, verify: bool = True) -> Dataset:
    """Load the benchmark ``name`` (``lroc`` or ``mastcam``) from its published layout."""
    if name == 'lroc':
        return load_lroc(root, verify=verify)
    if name == 'mastcam':
        return load_mastcam(root, verify=verify)
    raise ValueError(f"unknown dataset {name!r}: expected 'lroc' or 'mastcam'")
