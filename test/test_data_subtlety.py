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

"""The generators' subtlety knob and spectral-only novelties (SYNTHETIC data)."""
import numpy as np
import pytest

from vad4space_ros.data import mastcam, synthetic
from vad4space_ros.data.procedural import file_rng
from vad4space_ros.data.synthetic_lunar import render_chip
from vad4space_ros.data.synthetic_mars import NIR, render_tile, VISIBLE


def _chip(category: str, index: int, subtlety: float | None) -> np.ndarray:
    return render_chip(file_rng(0, 'k', category, index), category, subtlety).astype(float)


def test_subtlety_zero_keeps_the_default_files_and_normals_ignore_it():
    for category in ('none', 'ejecta', 'oldcrater'):
        assert np.array_equal(_chip(category, 3, None), _chip(category, 3, 0.0))
    assert np.array_equal(_chip('none', 3, 0.0), _chip('none', 3, 0.9))
    typical = render_tile(file_rng(0, 'k', 'typical', 1), 'typical')
    assert np.array_equal(typical, render_tile(file_rng(0, 'k', 'typical', 1), 'typical', 0.8,
                                               True))


def test_ejecta_fade_as_subtlety_rises():
    def bright(subtlety):
        return np.mean([np.mean(_chip('ejecta', i, subtlety) > 170) for i in range(6)])
    assert bright(0.0) > bright(0.5) > bright(1.0)


def test_old_craters_vanish_at_full_subtlety():
    """An old crater's relief shrinks: the chip's contrast falls towards plain terrain."""
    def spread(subtlety):
        return np.mean([_chip('oldcrater', i, subtlety).std() for i in range(6)])
    assert spread(0.0) > spread(0.6) > spread(1.0)


@pytest.mark.parametrize('category', mastcam.NOVEL_CLASSES)
def test_novelty_contrast_falls_with_subtlety_and_spectral_only_keeps_the_rgb_view(category):
    def tile(subtlety, spectral_only=False):
        return render_tile(file_rng(0, 'k', category, 2), category, subtlety, spectral_only)
    terrain = tile(1.0)  # contrast 0: the terrain under the novelty
    changes = [np.abs(tile(s) - terrain).mean() for s in (0.0, 0.5, 0.9)]
    assert changes[0] > changes[1] > changes[2], changes
    spectral = tile(0.0, spectral_only=True)
    assert np.array_equal(spectral[..., VISIBLE], terrain[..., VISIBLE])
    assert np.abs(spectral[..., NIR] - terrain[..., NIR]).max() > 0


def test_bad_subtlety_and_lroc_spectral_only_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match='subtlety'):
        render_chip(file_rng(0, 'x'), 'ejecta', 1.5)
    with pytest.raises(ValueError, match='only mastcam'):
        synthetic.generate('lroc', tmp_path / 'a', size='tiny', progress=False,
                           spectral_only=True)
    assert not (tmp_path / 'a').exists() or not any((tmp_path / 'a').iterdir())


def test_generated_set_records_its_subtlety(tmp_path):
    synthetic.generate('mastcam', tmp_path, size='tiny', progress=False, subtlety=0.5,
                       spectral_only=True)
    note = (tmp_path / 'SYNTHETIC.md').read_text()
    assert 'subtlety 0.5' in note and 'spectral-only' in note
