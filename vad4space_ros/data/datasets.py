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
