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

"""SYNTHETIC Mastcam-like tiles (64x64x6, DN 0..255, bands R1..R6 = 447..1013 nm).

Surfaces are mixtures of reflectance spectra (rough shapes of Gale crater materials, not
measured spectra) shaded by a fractal relief, scaled to 8-bit DN with per-tile exposure and
sensor noise, rounded to integers like the real tiles.

* ``typical``: dusty soil, sand and pebbles or a rocky surface with loose rocks and shadows.
* Novel classes (folder names of the real archive) differ in morphology and/or spectrum:
  ``veins`` bright thin lines (Ca-sulfate-like: bright, NIR drop), ``meteorite`` a smooth dark
  boulder with specular glint and a NIR reflectance rising with wavelength (iron-like),
  ``drill-hole`` a dark hole with grey tailings, ``drt`` a brushed (dust-free, striated) disc,
  ``dump-pile`` a smooth mound of grey powder, ``broken-rock`` faceted fresh rock with cracks,
  ``float`` a lone rock of another lithology (pyroxene-like 908-937 nm dip) with a cast
  shadow, ``bedrock`` a laminated outcrop.
* Subtle anomalies: ``SUBTLE_FRACTION`` of the ``veins`` and ``meteorite`` tiles differ only
  in 908/937/1013 nm: a subtle vein leaves the RGB-view bands (447/527/805 nm) untouched and
  lowers the NIR bands along its lines; a subtle meteorite is a rock-coloured boulder of
  ordinary size with the meteorite's rising NIR slope. Only a 6-band method can see them.
* ``subtlety`` ``s`` in [0, 1] (``None`` = 0, the exact files of earlier versions) makes every
  novelty harder without changing a random draw: its size (radius, line width, outcrop cover)
  scales by ``1 - 0.5 s`` and its contrast to the terrain under it by ``1 - s`` (the tile is
  blended back towards the terrain before the novelty was added, reflectance and relief).
* ``spectral_only``: the novelty keeps only its band *ratios*: the visible bands (447/527/805 nm,
  the RGB view) and the relief are the terrain's, the NIR bands take the novelty's NIR/805 nm
  ratios. Any class can so be made invisible to an RGB method (compare the fused 6-band one).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

from vad4space_ros.data.procedural import check_subtlety, fractal_noise

SIZE = 64
SPECTRA = {  # reflectance at 447, 527, 805, 908, 937, 1013 nm
    'soil': (0.075, 0.12, 0.30, 0.31, 0.305, 0.30),
    'dust': (0.09, 0.15, 0.36, 0.37, 0.365, 0.36),
    'sand': (0.055, 0.075, 0.16, 0.15, 0.145, 0.15),
    'rock': (0.065, 0.095, 0.20, 0.195, 0.19, 0.195),
    'vein': (0.30, 0.38, 0.52, 0.50, 0.44, 0.40),
    'meteorite': (0.08, 0.09, 0.14, 0.17, 0.19, 0.22),
    'tailings': (0.11, 0.14, 0.21, 0.21, 0.205, 0.20),
    'fresh_rock': (0.09, 0.11, 0.17, 0.16, 0.15, 0.16),
    'float': (0.06, 0.085, 0.15, 0.12, 0.115, 0.13),
    'mudstone': (0.10, 0.15, 0.28, 0.27, 0.26, 0.27),
    'mudstone_light': (0.16, 0.22, 0.34, 0.33, 0.32, 0.325),
}
SUBTLE_FRACTION = {'veins': 0.4, 'meteorite': 0.5}
VISIBLE = slice(0, 3)
NIR = slice(3, 6)
_Y, _X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)


def _spectrum(rng: np.random.Generator, name: str, jitter: float = 0.03) -> np.ndarray:
    return np.asarray(SPECTRA[name]) * (1.0 + rng.normal(0.0, jitter, 6))


def _paint(cube: np.ndarray, weight: np.ndarray, spectrum: np.ndarray) -> None:
    """Blend ``spectrum`` into ``cube`` with per-pixel ``weight`` in [0, 1].

    Only the bounding box of the non-zero weights is touched (outside it the blend is the
    identity), so painting a small rock costs its size, not the window's.
    """
    w = np.clip(weight, 0.0, 1.0)
    rows, cols = np.flatnonzero(w.any(axis=1)), np.flatnonzero(w.any(axis=0))
    if rows.size == 0:
        return
    box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    part = w[box][..., None]
    cube[box] *= 1.0 - part
    cube[box] += part * spectrum


def _blob(rng: np.random.Generator, cy: float, cx: float, radius: float,
          roughness: float = 0.25) -> np.ndarray:
    """Return a soft-edged irregular blob mask centred at (cy, cx).

    The mask is zero beyond ``radius * (1 + sum |wobble amplitudes|)`` from the centre, so it
    is evaluated only in that box (the whole window when the wobble can fold the outline).
    """
    terms = [(rng.normal(0, roughness / k), k, rng.uniform(0, 6.3)) for k in range(2, 6)]
    amplitude = sum(abs(term[0]) for term in terms)
    box = np.s_[:, :]
    if amplitude < 1.0:
        reach = radius * (1.0 + amplitude) + 1.0
        box = np.s_[max(0, int(cy - reach)):max(0, int(cy + reach) + 2),
                    max(0, int(cx - reach)):max(0, int(cx + reach) + 2)]
    y, x = _Y[box], _X[box]
    angle = np.arctan2(y - cy, x - cx)
    wobble = sum(a * np.cos(k * angle + phase) for a, k, phase in terms)
    rr = np.hypot(y - cy, x - cx) / (radius * (1.0 + wobble))
    mask = np.zeros((SIZE, SIZE))
    mask[box] = np.clip((1.0 - rr) * radius, 0.0, 1.0)
    return mask


def _typical(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return a typical surface (reflectance cube) and its relief (height field)."""
    height = fractal_noise(rng, SIZE, rng.uniform(2.2, 3.0)) * rng.uniform(0.6, 1.6)
    cube = np.broadcast_to(_spectrum(rng, 'soil'), (SIZE, SIZE, 6)).copy()
    _paint(cube, 0.5 + 0.6 * fractal_noise(rng, SIZE, 2.5), _spectrum(rng, 'dust'))
    _paint(cube, fractal_noise(rng, SIZE, 3.0) - rng.uniform(0.3, 1.5), _spectrum(rng, 'sand'))
    rocky = rng.random() < 0.4
    for _ in range(rng.integers(8, 30) if rocky else rng.integers(2, 12)):
        cy, cx = rng.uniform(0, SIZE, 2)
        radius = rng.uniform(1.0, 9.0 if rocky else 4.0)
        mask = _blob(rng, cy, cx, radius)
        _paint(cube, mask, _spectrum(rng, 'rock', 0.05))
        height += mask * radius * rng.uniform(0.3, 0.7)
    return cube, height


def _shade(rng: np.random.Generator, cube: np.ndarray, height: np.ndarray) -> np.ndarray:
    azimuth = rng.uniform(-np.pi, np.pi)
    elevation = np.radians(rng.uniform(25.0, 70.0))
    grad_y, grad_x = np.gradient(height)
    norm = np.sqrt(grad_x ** 2 + grad_y ** 2 + 1.0)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                    np.sin(elevation)])
    light = np.clip((-grad_x * sun[0] - grad_y * sun[1] + sun[2]) / norm, 0.0, None)
    return cube * (0.25 + 0.75 * light / sun[2])[..., None]


def _expose(rng: np.random.Generator, radiance: np.ndarray) -> np.ndarray:
    """Return ``radiance`` as integer DN in 0..255: one exposure, Gaussian sensor noise."""
    dn = radiance * rng.uniform(450.0, 650.0) + rng.normal(0.0, 1.2, radiance.shape)
    return np.clip(np.rint(dn), 0, 255)


def _line_mask(rng: np.random.Generator, width: float) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    offset = rng.uniform(-20, 20)
    bend = rng.uniform(-0.01, 0.01)
    along = (_X - 32) * np.cos(angle) + (_Y - 32) * np.sin(angle)
    across = -(_X - 32) * np.sin(angle) + (_Y - 32) * np.cos(angle) - offset - bend * along ** 2
    return np.clip(width / 2 + 0.5 - np.abs(across), 0.0, 1.0)


def _match_visible(feature: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Return ``background`` in the visible bands with ``feature``'s NIR/805 nm ratios."""
    result = background.copy()
    result[NIR] = feature[NIR] / feature[2] * background[2]
    return result


def _veins(rng, cube, height, subtle, scale=1.0):
    spectrum = _spectrum(rng, 'vein')
    mask = np.clip(sum(_line_mask(rng, rng.uniform(1.0, 3.0) * scale)
                       for _ in range(rng.integers(1, 4))), 0, 1)
    if subtle:  # keep the visible bands, give the NIR bands the vein's NIR/805 nm shape
        soil = np.asarray(SPECTRA['soil'])
        gain = (spectrum[NIR] / spectrum[2]) / (soil[NIR] / soil[2])
        cube[..., NIR] *= 1.0 + mask[..., None] * (gain - 1.0)
        return
    _paint(cube, mask, spectrum)
    height += 0.4 * mask


def _meteorite(rng, cube, height, subtle, scale=1.0):
    cy, cx = rng.uniform(20, 44, 2)
    radius = (rng.uniform(6.0, 10.0) if subtle else rng.uniform(10.0, 18.0)) * scale
    mask = _blob(rng, cy, cx, radius, roughness=0.08)
    spectrum = _spectrum(rng, 'meteorite', 0.02)
    if subtle:
        spectrum = _match_visible(spectrum, _spectrum(rng, 'rock', 0.02))
    _paint(cube, mask, spectrum)
    dome = np.sqrt(np.clip(1.0 - (np.hypot(_Y - cy, _X - cx) / radius) ** 2, 0, None))
    height += dome * radius * 0.8
    if not subtle:
        glint = np.exp(-((_Y - cy + radius / 3) ** 2 + (_X - cx - radius / 3) ** 2) / 4.0)
        cube += (glint * mask)[..., None] * 0.15


def _drill_hole(rng, cube, height, subtle, scale=1.0):
    cy, cx = rng.uniform(22, 42, 2)
    radius = rng.uniform(2.5, 4.5) * scale
    dist = np.hypot(_Y - cy, _X - cx)
    tailings = np.clip((rng.uniform(2.5, 4.0) * radius - dist) / 2.0, 0, 1) * (
        0.6 + 0.4 * fractal_noise(rng, SIZE, 1.5).clip(-1, 1))
    _paint(cube, tailings, _spectrum(rng, 'tailings'))
    _paint(cube, np.clip(radius + 0.5 - dist, 0, 1), np.full(6, 0.015))
    height -= np.clip(radius - dist, 0, None) * 1.5


def _drt(rng, cube, height, subtle, scale=1.0):
    cy, cx = rng.uniform(24, 40, 2)
    radius = rng.uniform(11.0, 18.0) * scale
    dist = np.hypot(_Y - cy, _X - cx)
    disc = np.clip(radius + 0.5 - dist, 0, 1)
    brushed = _spectrum(rng, 'rock') * 1.05
    _paint(cube, disc, brushed)
    striae = 1.0 + 0.08 * np.sin(dist * rng.uniform(1.2, 2.0) + rng.uniform(0, 6.3))
    cube *= np.where(disc[..., None] > 0, striae[..., None], 1.0)
    height *= 1.0 - 0.7 * disc


def _dump_pile(rng, cube, height, subtle, scale=1.0):
    cy, cx = rng.uniform(22, 42, 2)
    radius = rng.uniform(8.0, 15.0) * scale
    dist = np.hypot(_Y - cy, _X - cx) / radius
    cone = np.clip(1.0 - dist, 0, None)
    _paint(cube, np.clip(cone * 4, 0, 1), _spectrum(rng, 'tailings', 0.02))
    height[:] = gaussian_filter(height, 1.0) * (1 - np.clip(cone * 4, 0, 1)) + cone * radius * 0.6


def _broken_rock(rng, cube, height, subtle, scale=1.0):
    cy, cx = rng.uniform(22, 42, 2)
    mask = _blob(rng, cy, cx, rng.uniform(12.0, 20.0) * scale, roughness=0.3)
    seeds = rng.uniform(0, SIZE, (rng.integers(5, 10), 2))
    distances = np.stack([np.hypot(_Y - sy, _X - sx) for sy, sx in seeds])
    order = np.sort(distances, axis=0)
    facet = np.argmin(distances, axis=0)
    tilt = rng.normal(0, 0.8, (len(seeds), 2))
    _paint(cube, mask, _spectrum(rng, 'fresh_rock'))
    height += mask * (8.0 + tilt[facet, 0] * (_Y - cy) / 4 + tilt[facet, 1] * (_X - cx) / 4)
    cracks = np.clip(1.5 - (order[1] - order[0]), 0, 1) * mask
    _paint(cube, cracks, np.full(6, 0.03))


def _float_rock(rng, cube, height, subtle, scale=1.0):
    cy, cx = rng.uniform(20, 44, 2)
    radius = rng.uniform(6.0, 13.0) * scale
    mask = _blob(rng, cy, cx, radius, roughness=0.35)
    shift = rng.uniform(0.3, 0.6) * radius
    direction = rng.uniform(-np.pi, np.pi)
    shadow = np.roll(mask, (int(shift * np.sin(direction)), int(shift * np.cos(direction))),
                     axis=(0, 1))
    cube *= (1.0 - 0.6 * np.clip(shadow - mask, 0, 1))[..., None]
    _paint(cube, mask, _spectrum(rng, 'float'))
    height += mask * radius * 0.6


def _bedrock(rng, cube, height, subtle, scale=1.0):
    angle = rng.uniform(0, np.pi)
    across = -(_X - 32) * np.sin(angle) + (_Y - 32) * np.cos(angle)
    layers = 0.5 + 0.5 * np.sin(across * rng.uniform(0.6, 1.6) + 2.0 * fractal_noise(
        rng, SIZE, 3.0))
    cover = np.clip(1.3 - 2.0 * (1.0 - scale) + 0.8 * fractal_noise(rng, SIZE, 3.0), 0, 1)
    _paint(cube, cover * layers, _spectrum(rng, 'mudstone_light'))
    _paint(cube, cover * (1 - layers), _spectrum(rng, 'mudstone'))
    height += cover * np.floor(across / rng.uniform(4.0, 8.0)) * 0.6


NOVELTIES: dict[str, Callable] = {
    'veins': _veins, 'meteorite': _meteorite, 'drill-hole': _drill_hole, 'drt': _drt,
    'dump-pile': _dump_pile, 'broken-rock': _broken_rock, 'float': _float_rock,
    'bedrock': _bedrock,
}


def render_tile(rng: np.random.Generator, category: str, subtlety: float | None = None,
                spectral_only: bool = False) -> np.ndarray:
    """Render one tile of ``category`` (``typical`` or a novel class) as 64x64x6 DN values.

    ``subtlety`` and ``spectral_only`` make a novelty harder to see (module docstring); typical
    tiles ignore them.
    """
    subtlety = check_subtlety(subtlety)
    cube, height = _typical(rng)
    if category != 'typical':
        if category not in NOVELTIES:
            raise ValueError(f'unknown Mastcam category {category!r}')
        subtle = rng.random() < SUBTLE_FRACTION.get(category, 0.0)
        terrain, relief = cube.copy(), height.copy()
        NOVELTIES[category](rng, cube, height, subtle, 1.0 - 0.5 * subtlety)
        if subtlety:
            cube = terrain + (1.0 - subtlety) * (cube - terrain)
            height = relief + (1.0 - subtlety) * (height - relief)
        if spectral_only:
            ratios = cube[..., NIR] / np.maximum(cube[..., 2:3], 1e-6)
            cube = np.concatenate([terrain[..., VISIBLE], ratios * terrain[..., 2:3]], axis=-1)
            height = relief
    return _expose(rng, _shade(rng, cube, height))


def _field(rng: np.random.Generator, height: int, width: int, beta: float) -> np.ndarray:
    """Return an ``height x width`` crop of a square fractal field (std 1 over the square)."""
    return fractal_noise(rng, max(height, width), beta)[:height, :width]


def _feather(side: int, ramp: float = 8.0) -> np.ndarray:
    """Return a ``side x side`` weight, 1 inside and falling linearly to 0 over ``ramp`` px."""
    edge = np.minimum(np.arange(side), np.arange(side)[::-1]) + 0.5
    along = np.clip(edge / ramp, 0.0, 1.0)
    return np.minimum.outer(along, along)


def render_terrain(rng: np.random.Generator, height: int, width: int,
                   novel: str | None = None) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Render continuous ``height x width x 6`` DN terrain and the novelty's top-left (y, x).

    One continuous surface, not a mosaic of tiles: the materials and rocks of ``typical`` tiles,
    with dust, sand and rocky patches that span many tiles, one sun and one exposure per frame.
    The relief's amplitude grows with the frame side (factor ``(side / 64) ** ((beta - 2) / 2)``)
    so that its local slopes, which set the shading, match a 64-px tile's within about 20%.
    ``novel`` (a class of :data:`NOVELTIES`, never the NIR-only subtle variant) is rendered into
    a 64x64 window at a random pixel position and feathered into the terrain over 8 px, before
    shading; None = no novelty. The novelty draws from a stream of its own, so the same ``rng``
    state renders the same terrain with and without it.
    """
    if novel is not None and novel not in NOVELTIES:
        raise ValueError(f'unknown Mastcam category {novel!r}')
    if height < SIZE or width < SIZE:
        raise ValueError(f'terrain must be at least {SIZE}x{SIZE}')
    novelty_rng = rng.spawn(1)[0]
    pad_h, pad_w = height + 2 * SIZE, width + 2 * SIZE  # margin: windows never leave the array
    beta = rng.uniform(2.2, 3.0)
    relief = _field(rng, pad_h, pad_w, beta) * rng.uniform(0.6, 1.6) * (
        max(pad_h, pad_w) / SIZE) ** ((beta - 2.0) / 2.0)
    cube = np.broadcast_to(_spectrum(rng, 'soil'), (pad_h, pad_w, 6)).copy()
    _paint(cube, 0.5 + 0.6 * _field(rng, pad_h, pad_w, 2.5), _spectrum(rng, 'dust'))
    _paint(cube, _field(rng, pad_h, pad_w, 3.0) - rng.uniform(0.3, 1.5),
           _spectrum(rng, 'sand'))
    rocky = _field(rng, pad_h, pad_w, 3.0) > 0.25  # about 40% of the area, as for tiles
    # Rocks per 64x64 area: 19 in rocky patches, 7 elsewhere (a tile's mean counts).
    for _ in range(rng.poisson(19.0 * pad_h * pad_w / SIZE ** 2)):
        y, x = int(rng.integers(pad_h - SIZE)), int(rng.integers(pad_w - SIZE))
        centre_y, centre_x = rng.uniform(24.0, 40.0, 2)
        is_rocky = rocky[y + int(centre_y), x + int(centre_x)]
        if not is_rocky and rng.random() >= 7.0 / 19.0:
            continue
        radius = rng.uniform(1.0, 9.0 if is_rocky else 4.0)
        mask = _blob(rng, centre_y, centre_x, radius)
        _paint(cube[y:y + SIZE, x:x + SIZE], mask, _spectrum(rng, 'rock', 0.05))
        relief[y:y + SIZE, x:x + SIZE] += mask * radius * rng.uniform(0.3, 0.7)
    corner = None
    if novel is not None:
        corner = (int(novelty_rng.integers(height - SIZE + 1)),
                  int(novelty_rng.integers(width - SIZE + 1)))
        top, left = corner[0] + SIZE, corner[1] + SIZE
        window = np.s_[top:top + SIZE, left:left + SIZE]
        terrain, relief_before = cube[window].copy(), relief[window].copy()
        NOVELTIES[novel](novelty_rng, cube[window], relief[window], False, 1.0)
        weight = _feather(SIZE)
        cube[window] = terrain + weight[..., None] * (cube[window] - terrain)
        relief[window] = relief_before + weight * (relief[window] - relief_before)
    return _expose(rng, _shade(rng, cube, relief)[SIZE:SIZE + height, SIZE:SIZE + width]), corner


def save_tile_as(dtype: np.dtype) -> Callable[[np.ndarray, Path], None]:
    """Return a writer that saves tiles as ``.npy`` of ``dtype``."""
    def save(tile: np.ndarray, path: Path) -> None:
        np.save(path, tile.astype(dtype), allow_pickle=False)
    return save
