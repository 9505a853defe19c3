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

"""Gallery: the RX map of NIR-only thin veins, default (1-px Gaussian) against line-integrated.

Takes a 6-band fused model fitted with ``--spectral-line-length L`` and draws, for SYNTHETIC
generated 64x64 tiles with veins visible only in the NIR bands (``render_tile(...,
spectral_only=True)``) and for typical tiles: the RGB view, the NIR/805 nm ratio, the RX map of
the same branch with the default map (1-px Gaussian, no lines) and the model's own
line-integrated map. Each map is divided by the 99.8% quantile of its tile scores over
``--typical`` typical tiles (about the best of a frame's 475 tiles), so a value above 1 is a
tile that could top a normal frame; the panel titles give that ratio for the tile's score.
Prints the ratios; writes one PNG. A minute on 2 cores.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from vad4space_ros.data.synthetic_mars import render_tile
from vad4space_ros.deploy.loading import load_model
from vad4space_ros.deploy.spectral import bands_to_rgb, FusedDetector, SpectralRX

TAIL_QUANTILE = 0.998  # about the best of 475 typical tiles


def main() -> int:
    """Render the tiles, score both maps, print the ratios and write the gallery."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', type=Path, required=True,
                        help='6-band fused model fitted with --spectral-line-length')
    parser.add_argument('--veins', type=int, default=6)
    parser.add_argument('--typical', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=43)
    parser.add_argument('--output', type=Path, default=Path(__file__).resolve().parent
                        / 'results' / 'line_map_gallery.png')
    args = parser.parse_args()
    model = load_model(args.model)
    if not isinstance(model, FusedDetector) or not model.config.line_length:
        parser.error(f'{args.model} is not a fused model with a line-integrated RX map')
    lines = model.spectral
    default = SpectralRX(lines.mean, lines.inverse_covariance,
                         replace(lines.config, smoothing=1.0, line_length=0))
    rng = np.random.default_rng(args.seed)
    typical = [render_tile(rng, 'typical').astype(np.uint8) for _ in range(args.typical)]
    veins = [render_tile(rng, 'veins', spectral_only=True).astype(np.uint8)
             for _ in range(args.veins)]
    shown = veins + typical[:2]
    rows = {}
    for name, rx in (('default map', default), (f'lines of {lines.config.line_length} px', lines)):
        tail = float(np.quantile(rx.scores(typical), TAIL_QUANTILE))
        rows[name] = ([m / tail for m in rx.anomaly_maps(shown)], rx.scores(shown) / tail)
        print(f'{name}: vein score / typical {TAIL_QUANTILE:.1%} quantile: '
              + ' '.join(f'{r:.2f}' for r in rows[name][1][:args.veins]))
    write_gallery(shown, rows, args.veins, args.output)
    print(f'wrote {args.output}')
    return 0


def write_gallery(tiles: list[np.ndarray], rows: dict[str, tuple[list[np.ndarray], np.ndarray]],
                  veins: int, output: Path) -> None:
    """Draw RGB view, NIR ratio and each map row for every tile; one PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(2 + len(rows), len(tiles), figsize=(1.6 * len(tiles), 7.0))
    for column, tile in enumerate(tiles):
        cube = tile.astype(np.float32)
        kind = 'NIR-only vein' if column < veins else 'typical'
        axes[0, column].imshow(bands_to_rgb(tile))
        axes[0, column].set_title(kind, fontsize=7)
        axes[1, column].imshow(cube[..., 3:].mean(axis=-1) / np.maximum(cube[..., 2], 1.0),
                               cmap='gray')
        for row, (name, (maps, ratios)) in enumerate(rows.items(), start=2):
            axes[row, column].imshow(maps[column], cmap='inferno', vmin=0.0, vmax=1.5)
            axes[row, column].set_title(f'{ratios[column]:.2f}', fontsize=7)
    for row, label in enumerate(['RGB view', 'NIR / 805 nm', *rows]):
        axes[row, 0].set_ylabel(label, fontsize=7)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("SYNTHETIC tiles: RX map / typical tiles' 99.8% score quantile", fontsize=8)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=80)
    plt.close(figure)


if __name__ == '__main__':
    raise SystemExit(main())
