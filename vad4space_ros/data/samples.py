"""The common sample type of both benchmarks and how to read a sample's pixels.

A :class:`Sample` names one file with its ground truth (``label`` 0 = normal, 1 = anomaly), its
class folder (``category``) and the dataset split it came from (``split``: ``train``, ``val`` or
``test``). :func:`load_rgb` gives every sample as an ``HxWx3 uint8`` RGB array, the input the
pretrained backbones expect: LROC's grayscale JPEGs become three identical channels and Mastcam's
6-band ``.npy`` tiles become the documented RGB view (see :mod:`.mastcam`). :func:`load_bands`
gives all bands as ``float32`` in ``[0, 1]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

NORMAL = 0
ANOMALY = 1
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp')
BANDS_SUFFIX = '.npy'

logger = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset root has the wrong layout or a file cannot be read."""


@dataclass(frozen=True)
class Sample:
    """One benchmark file with its ground truth."""

    path: Path
    label: int
    category: str
    split: str

    @property
    def is_anomaly(self) -> bool:
        """Return True when the sample is an anomaly (label 1)."""
        return self.label == ANOMALY


@dataclass
class Dataset:
    """All samples found under one dataset root, plus the files that were skipped."""

    name: str
    root: Path
    samples: list[Sample]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def select(self, split: str | None = None, label: int | None = None) -> list[Sample]:
        """Return the samples of one split and/or label, in loader order."""
        return [s for s in self.samples
                if (split is None or s.split == split) and (label is None or s.label == label)]

    def counts(self) -> dict[tuple[str, str], int]:
        """Return the number of samples per (split, category)."""
        result: dict[tuple[str, str], int] = {}
        for sample in self.samples:
            key = (sample.split, sample.category)
            result[key] = result.get(key, 0) + 1
        return result


SampleOrPath = Union[Sample, Path, str]


def _path_of(sample_or_path: SampleOrPath) -> Path:
    return sample_or_path.path if isinstance(sample_or_path, Sample) else Path(sample_or_path)


def load_rgb(sample_or_path: SampleOrPath) -> np.ndarray:
    """Read a sample as an ``HxWx3 uint8`` RGB array; raise DatasetError when unreadable."""
    path = _path_of(sample_or_path)
    if path.suffix.lower() == BANDS_SUFFIX:
        from vad4space_ros.data import mastcam
        return mastcam.rgb_view(mastcam.read_tile(path))
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise DatasetError(f'cannot read image {path}: {error}') from error


def load_bands(sample_or_path: SampleOrPath) -> np.ndarray:
    """Read all bands of a sample as ``HxWxC float32`` in ``[0, 1]``.

    Mastcam tiles give their six filters (see :data:`.mastcam.BAND_WAVELENGTHS_NM`); images give
    one band (grayscale) or three (colour).
    """
    path = _path_of(sample_or_path)
    if path.suffix.lower() == BANDS_SUFFIX:
        from vad4space_ros.data import mastcam
        return mastcam.normalise_tile(mastcam.read_tile(path))
    rgb = load_rgb(path).astype(np.float32) / 255.0
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return rgb[..., :1].copy()
    return rgb


def is_readable(path: Path) -> str | None:
    """Check a file cheaply (header only); return None when fine, else the reason."""
    try:
        if path.suffix.lower() == BANDS_SUFFIX:
            from vad4space_ros.data import mastcam
            mastcam.check_tile_header(path)
        else:
            with Image.open(path) as image:
                image.verify()
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError) as error:
        return str(error) or type(error).__name__
    return None


def keep_readable(
        samples: Iterable[Sample], skipped: list[tuple[Path, str]]) -> list[Sample]:
    """Return the samples whose files pass :func:`is_readable`; report the others in skipped."""
    kept = []
    for sample in samples:
        reason = is_readable(sample.path)
        if reason is None:
            kept.append(sample)
        else:
            skipped.append((sample.path, reason))
            logger.warning('skipping unreadable file %s: %s', sample.path, reason)
    return kept


def iter_rgb(
        samples: Iterable[Sample],
        skipped: list[tuple[Path, str]] | None = None) -> Iterator[tuple[Sample, np.ndarray]]:
    """Yield ``(sample, rgb)`` pairs, skipping (and reporting) files that cannot be read."""
    for sample in samples:
        try:
            yield sample, load_rgb(sample)
        except DatasetError as error:
            logger.warning('skipping %s', error)
            if skipped is not None:
                skipped.append((sample.path, str(error)))


def list_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Return the regular files of ``folder`` with one of ``suffixes``, sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith('.'))


def find_layout_root(root: Path | str, folders: Sequence[str], expected: str,
                     layout: str) -> Path:
    """Return the folder holding any of ``folders``: ``root`` itself or its one such child.

    ``layout`` names the dataset in the error (e.g. 'an LROC'), ``expected`` describes the
    folders it should hold.
    """
    base = require_root(root)

    def holds(folder: Path) -> bool:
        return any((folder / name).is_dir() for name in folders)

    if holds(base):
        return base
    nested = [child for child in sorted(base.iterdir()) if child.is_dir() and holds(child)]
    if len(nested) == 1:
        return nested[0]
    found = sorted(p.name for p in base.iterdir())[:20]
    raise DatasetError(f'{base} is not {layout} dataset root: expected {expected} '
                       f'(found: {found or "nothing"})')


def require_root(root: Path | str) -> Path:
    """Return ``root`` as a Path; raise FileNotFoundError when it is not a directory."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f'dataset root {path} does not exist or is not a directory')
    return path


def load_dataset(name: str, root: Path | str, verify: bool = True) -> Dataset:
    """Load the benchmark ``name`` (``lroc`` or ``mastcam``) from its published layout."""
    if name == 'lroc':
        from vad4space_ros.data import lroc
        return lroc.load_lroc(root, verify=verify)
    if name == 'mastcam':
        from vad4space_ros.data import mastcam
        return mastcam.load_mastcam(root, verify=verify)
    raise ValueError(f"unknown dataset {name!r}: expected 'lroc' or 'mastcam'")
