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

"""The synthetic benchmark generators: layout, determinism, class signal, CLI."""
import numpy as np
import pytest

from vad4space_ros.cli import main
from vad4space_ros.data import load_bands, load_dataset, load_rgb, mastcam, synthetic
from vad4space_ros.data.synthetic_frames import mars_frame, mars_terrain_frame, terrain_tiles
from vad4space_ros.data.synthetic_lunar import render_chip
from vad4space_ros.data.synthetic_mars import (
    _typical, _veins, NIR, render_terrain, render_tile, SUBTLE_FRACTION, VISIBLE)


@pytest.mark.parametrize('dataset', ['lroc', 'mastcam'])
def test_generated_tree_loads_with_the_real_layout_loader(tmp_path, dataset):
    report = synthetic.generate(dataset, tmp_path / dataset, seed=1, size='tiny',
                                progress=False)
    loaded = load_dataset(dataset, tmp_path / dataset)
    assert loaded.skipped == []
    assert 'SYNTHETIC' in (tmp_path / dataset / 'SYNTHETIC.md').read_text()
    if dataset == 'lroc':
        expected = {(split, category): count
                    for split, counts in synthetic.LROC_TINY_COUNTS.items()
                    for category, count in counts.items()}
        assert loaded.counts() == expected and report.files == sum(expected.values())
        assert load_rgb(loaded.samples[0]).shape == (227, 227, 3)
    else:
        novel = loaded.select(label=1)
        assert len(novel) == 2 * len(mastcam.NOVEL_CLASSES)
        assert {s.category for s in novel} == set(mastcam.NOVEL_CLASSES)
        assert all(s.path.parent.name == 'all' for s in novel)
        assert len(loaded.select(split='train')) == synthetic.MASTCAM_TINY_TYPICAL['train']
        bands = load_bands(loaded.samples[0])
        assert bands.shape == (64, 64, 6) and 0.0 <= bands.min() and bands.max() <= 1.0


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        synthetic.generate('mastcam', tmp_path / name, seed=seed, size='tiny', progress=False)
    files = sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a').rglob('*.npy'))
    assert all((tmp_path / 'a' / f).read_bytes() == (tmp_path / 'b' / f).read_bytes()
               for f in files)
    assert any((tmp_path / 'a' / f).read_bytes() != (tmp_path / 'c' / f).read_bytes()
               for f in files)


def test_refuses_to_write_into_a_non_empty_folder(tmp_path):
    (tmp_path / 'keep.txt').write_text('user data')
    with pytest.raises(ValueError, match='not empty'):
        synthetic.generate('lroc', tmp_path, size='tiny', progress=False)
    assert (tmp_path / 'keep.txt').read_text() == 'user data'


def _bright_fraction(chip: np.ndarray) -> float:
    return float(np.mean(chip > np.median(chip) + 40))


def test_fresh_craters_carry_bright_ejecta_that_old_craters_lack():
    def mean_bright(category):
        return np.mean([_bright_fraction(render_chip(synthetic.file_rng(0, 'x', category, i),
                                                     category)) for i in range(12)])
    assert mean_bright('ejecta') > 2 * max(mean_bright('none'), mean_bright('oldcrater'), 1e-3)


def test_subtle_veins_change_only_the_nir_bands():
    """A subtle vein leaves the RGB-view bands untouched and darkens 908-1013 nm."""
    rng = np.random.default_rng(0)
    cube, height = _typical(rng)
    before = cube.copy()
    _veins(rng, cube, height, subtle=True)
    assert np.array_equal(cube[..., VISIBLE], before[..., VISIBLE])
    change = cube[..., NIR] / before[..., NIR]
    assert change.min() < 0.85 and np.mean(change < 0.99) > 0.01
    obvious = before.copy()
    _veins(np.random.default_rng(0), obvious, height.copy(), subtle=False)
    assert not np.array_equal(obvious[..., VISIBLE], before[..., VISIBLE])
    assert 0 < SUBTLE_FRACTION['veins'] < 1 and 0 < SUBTLE_FRACTION['meteorite'] < 1


def test_every_novel_class_changes_the_typical_surface():
    for category in mastcam.NOVEL_CLASSES:
        typical = render_tile(synthetic.file_rng(0, 'same', 'key', 1), 'typical')
        novel = render_tile(synthetic.file_rng(0, 'same', 'key', 1), category)
        assert novel.shape == (64, 64, 6) and novel.min() >= 0 and novel.max() <= 255
        assert np.mean(np.abs(novel - typical) > 5) > 0.005, category


def test_cli_generate_reports_what_it_wrote(tmp_path, capsys):
    assert main(['data', 'generate', 'lroc', '--root', str(tmp_path / 'g'), '--size', 'tiny',
                 '--seed', '2']) == 0
    assert 'SYNTHETIC lroc' in capsys.readouterr().out
    assert len(load_dataset('lroc', tmp_path / 'g').samples) == 59


@pytest.mark.parametrize('novel', ['dump-pile', 'float', 'bedrock'])
def test_terrain_novelty_changes_only_its_box(novel):
    plain, _ = render_terrain(np.random.default_rng(5), 200, 300)
    with_novelty, corner = render_terrain(np.random.default_rng(5), 200, 300, novel)
    changed = np.any(plain != with_novelty, axis=-1)
    y, x = corner
    inside = np.zeros_like(changed)
    inside[max(y - 1, 0):y + 65, max(x - 1, 0):x + 65] = True   # + 1 px: shading slopes
    assert not changed[~inside].any()
    assert changed[y:y + 64, x:x + 64].sum() > 100   # a float rock: ~200 px


def _grid_line_contrast(frames: list[np.ndarray]) -> float:
    """Mean pixel step across 64-px grid lines over the mean step elsewhere (rows and columns)."""
    on, off = [], []
    for frame in frames:
        for axis in (0, 1):
            steps = np.abs(np.diff(frame.astype(np.float64), axis=axis)).mean(
                axis=tuple(a for a in (0, 1, 2) if a != axis))
            grid = np.arange(1, frame.shape[axis]) % 64 == 0
            on.append(steps[grid].mean())
            off.append(steps[~grid].mean())
    return float(np.mean(on) / np.mean(off))


def test_terrain_frames_have_no_seams_where_tile_mosaics_do():
    rng = np.random.default_rng(0)
    terrain = [mars_terrain_frame(rng, 256, 320)[0] for _ in range(3)]
    mosaic = [mars_frame(rng, 256, 320)[0] for _ in range(3)]
    assert 0.9 < _grid_line_contrast(terrain) < 1.1
    assert _grid_line_contrast(mosaic) > 1.5


def test_terrain_tiles_are_cut_from_several_normal_frames():
    tiles = list(terrain_tiles(np.random.default_rng(2), 5, per_frame=2, shape=(128, 192)))
    assert len(tiles) == 5
    assert all(t.shape == (64, 64, 6) and t.dtype == np.uint8 for t in tiles)
    means = [t.mean() for t in tiles]
    assert len(set(means)) == 5
