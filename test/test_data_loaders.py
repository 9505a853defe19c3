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

"""Loaders of the real LROC and Mastcam layouts: counts, labels, pixels, bad input."""
from collections import Counter
import io
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from vad4space_ros.data import DatasetError, load_bands, load_dataset, load_rgb
from vad4space_ros.data import files, lroc, mastcam

MANIFEST = Path(__file__).resolve().parents[2] / 'shared/data/lrocnet/lrocnet_split_manifest.csv'


def _tiny_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 90, np.uint8), mode='L').save(buffer, format='JPEG')
    return buffer.getvalue()


@pytest.mark.skipif(not MANIFEST.exists(), reason='shared LROC manifest not present')
def test_lroc_loader_counts_match_the_real_manifest(tmp_path):
    rows = lroc.read_manifest(MANIFEST)
    jpeg = _tiny_jpeg()
    for split, label, name in rows:
        folder = tmp_path / 'raw_data' / split / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(jpeg)
    dataset = lroc.load_lroc(tmp_path)  # the split folders sit one level down
    counts = Counter((s.split, s.category) for s in dataset.samples)
    assert counts == Counter((split, label) for split, label, _ in rows)
    for split, per_class in lroc.REAL_COUNTS.items():
        for category, count in per_class.items():
            assert counts[(split, category)] == count
    assert lroc.compare_with_manifest(dataset, rows) == {'missing': [], 'unexpected': []}
    assert all(s.label == (s.category != 'none') for s in dataset.samples)
    assert dataset.skipped == []


def test_lroc_grayscale_jpeg_gives_three_identical_channels(tmp_path):
    for split in lroc.SPLITS:
        for category in lroc.CLASSES:
            (tmp_path / split / category).mkdir(parents=True)
    gray = np.tile(np.arange(0, 227, dtype=np.uint8), (227, 1))
    path = tmp_path / 'test' / 'ejecta' / 'a.jpg'
    Image.fromarray(gray, mode='L').save(path, quality=95)
    [sample] = lroc.load_lroc(tmp_path).samples
    rgb = load_rgb(sample)
    assert rgb.shape == (227, 227, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    assert np.abs(rgb[..., 0].astype(int) - gray).max() <= 3
    assert (sample.label, sample.category, sample.split) == (1, 'ejecta', 'test')
    assert load_bands(sample).shape == (227, 227, 1)


def test_corrupt_files_are_skipped_and_reported(tmp_path):
    for split in lroc.SPLITS:
        for category in lroc.CLASSES:
            (tmp_path / split / category).mkdir(parents=True)
    (tmp_path / 'train' / 'none' / 'good.jpg').write_bytes(_tiny_jpeg())
    (tmp_path / 'train' / 'none' / 'broken.jpg').write_bytes(b'not a jpeg')
    dataset = lroc.load_lroc(tmp_path)
    assert [s.path.name for s in dataset.samples] == ['good.jpg']
    assert [p.name for p, _ in dataset.skipped] == ['broken.jpg']
    with pytest.raises(DatasetError, match='broken.jpg'):
        load_rgb(tmp_path / 'train' / 'none' / 'broken.jpg')


def test_missing_root_and_wrong_layout_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_dataset('lroc', tmp_path / 'nowhere')
    (tmp_path / 'pictures').mkdir()
    with pytest.raises(DatasetError, match='not an LROC dataset root.*pictures'):
        load_dataset('lroc', tmp_path)
    with pytest.raises(DatasetError, match='not a Mastcam dataset root'):
        load_dataset('mastcam', tmp_path)
    (tmp_path / 'train').mkdir()
    with pytest.raises(DatasetError, match='lacks the class folders'):
        load_dataset('lroc', tmp_path)


def _save_tile(path: Path, value: float, dtype=np.float64) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    tile = np.zeros(files.TILE_SHAPE, dtype)
    tile[..., :] = value + np.arange(6) * 10
    np.save(path, tile)
    return tile


def test_mastcam_layout_labels_and_multilabel_novelties(tmp_path):
    _save_tile(tmp_path / 'train_typical' / 't1.npy', 20)
    _save_tile(tmp_path / 'validation_typical' / 'v1.npy', 20)
    _save_tile(tmp_path / 'test_typical' / 'x1.npy', 20)
    for folder, names in {'all': ['n1.npy', 'n2.npy', 'n3.npy'], 'drill-hole': ['n1.npy'],
                          'dump-pile': ['n1.npy', 'n2.npy'], 'veins': ['n4.npy']}.items():
        for name in names:
            _save_tile(tmp_path / 'test_novel' / folder / name, 50)
    dataset = mastcam.load_mastcam(tmp_path)
    by_name = {s.path.name: s for s in dataset.samples}
    assert set(by_name) == {'t1.npy', 'v1.npy', 'x1.npy', 'n1.npy', 'n2.npy', 'n3.npy'}
    assert (by_name['t1.npy'].split, by_name['v1.npy'].split) == ('train', 'val')
    assert by_name['x1.npy'].label == 0 and by_name['x1.npy'].category == 'typical'
    assert by_name['n1.npy'].category == 'drill-hole|dump-pile'
    assert by_name['n3.npy'].category == 'unknown'
    assert all(by_name[n].label == 1 and by_name[n].split == 'test'
               for n in ('n1.npy', 'n2.npy', 'n3.npy'))
    assert by_name['n1.npy'].path.parent.name == 'all'


def test_mastcam_without_all_folder_counts_each_tile_once(tmp_path):
    for name in mastcam.TYPICAL_FOLDERS.values():
        _save_tile(tmp_path / name / 'a.npy', 20)
    _save_tile(tmp_path / 'test_novel' / 'drt' / 'n1.npy', 50)
    _save_tile(tmp_path / 'test_novel' / 'drill-hole' / 'n1.npy', 50)
    novel = mastcam.load_mastcam(tmp_path).select(label=1)
    assert [(s.path.name, s.category) for s in novel] == [('n1.npy', 'drill-hole|drt')]


def test_mastcam_rgb_view_and_bands_are_documented_scaling(tmp_path):
    path = tmp_path / 'tile.npy'
    tile = _save_tile(path, 100)  # bands hold 100, 110, ..., 150 DN
    rgb = load_rgb(path)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [120, 110, 100]  # R = band 3 (805 nm), G = 527, B = 447
    bands = load_bands(path)
    assert bands.dtype == np.float32 and bands.shape == (64, 64, 6)
    np.testing.assert_allclose(bands[0, 0], (tile[0, 0] / 255.0).astype(np.float32))
    unit = tmp_path / 'unit.npy'
    np.save(unit, tile / 255.0)  # tiles already in [0, 1] are scaled to DN
    assert load_rgb(unit)[0, 0].tolist() == [120, 110, 100]


def test_mastcam_truncated_and_wrong_shape_tiles_are_skipped(tmp_path):
    for name in mastcam.TYPICAL_FOLDERS.values():
        _save_tile(tmp_path / name / 'ok.npy', 20)
    (tmp_path / 'test_novel' / 'all').mkdir(parents=True)
    good = tmp_path / 'train_typical' / 'cut.npy'
    _save_tile(good, 20)
    good.write_bytes(good.read_bytes()[:1000])
    np.save(tmp_path / 'train_typical' / 'flat.npy', np.zeros((64, 64)))
    dataset = mastcam.load_mastcam(tmp_path)
    assert sorted(p.name for p, _ in dataset.skipped) == ['cut.npy', 'flat.npy']
    assert {s.path.name for s in dataset.select(split='train')} == {'ok.npy'}
    with pytest.raises(DatasetError, match='flat.npy'):
        load_rgb(tmp_path / 'train_typical' / 'flat.npy')
