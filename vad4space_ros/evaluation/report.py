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

"""Benchmark tables in the paper's form (Tables I-III) and the result files.

Cells show ``ours (paper)``; the paper's numbers are on the REAL datasets, ours on whatever root
was benchmarked (the generated stand-ins here), so they sit side by side for orientation only.
Columns: ROC = img-AUROC, F1 / ACC = at the calibrated threshold (normal-only calibration, the
deployable operating point), F1* / ACC* = at the oracle F1-optimal threshold (the paper's and
anomalib's F1AdaptiveThreshold definition), PR = AUC-PR as average precision.

With robust fitting (``--robust``) a robust table lists, per method, settings 2 and 3 without and
with the mode, each with its change from setting 2 to 3 (the goal: a loss of at most 0.03
AUROC, while setting 2 is not made worse), and the training images the screening dropped
(anomalous/total).
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
import csv
import json
from pathlib import Path
from typing import Any, Iterator

from vad4space_ros.evaluation.paper import paper_metric, PAPER_RESOURCES

CSV_FIELDS = (
    'dataset', 'method', 'setting', 'n', 'n_anomalies', 'anomaly_ratio', 'img_auroc', 'auc_pr',
    'img_f1', 'img_acc', 'img_precision', 'img_recall', 'tp', 'fp', 'tn', 'fn',
    'img_f1_oracle', 'img_acc_oracle', 'oracle_threshold', 'threshold', 'train_count',
    'train_anomalies', 'calibration_count', 'epochs', 'fit_seconds', 'time_budget_s',
    'stopped_early', 'epochs_completed', 'model_file', 'model_id')
ROBUST_FIELDS = CSV_FIELDS + ('robust_screen', 'robust_rule', 'dropped_count',
                              'dropped_anomalies')
SCORE_FIELDS = ('dataset', 'method', 'setting', 'path', 'category', 'label', 'raw_score',
                'score')
# (column title, result key, paper key or None)
METRIC_COLUMNS = (('ROC', 'img_auroc', 'img_auroc'), ('F1', 'img_f1', None),
                  ('F1*', 'img_f1_oracle', 'img_f1_oracle'), ('PR', 'auc_pr', 'auc_pr'))
ACC_COLUMNS = (('ACC', 'img_acc', None), ('ACC*', 'img_acc_oracle', 'img_acc_oracle'))


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """Yield a rich Progress (disabled = invisible) with bar, counts and elapsed time."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    with Progress(TextColumn('{task.description}'), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), disable=not enabled) as bar:
        yield bar


def _cell(value: float | None, paper: float | None = None) -> str:
    if value is None:
        return '-'
    return f'{value:.2f}' + (f' ({paper:.2f})' if paper is not None else '')


def metric_table(result: Any,
                 settings: list[int] | None = None) -> tuple[str, list[str], list[list[str]]]:
    """Return (title, headers, rows) of the Table I/II layout (all or some settings)."""
    settings = settings or result.config['settings']
    headers = ['Method']
    layout = []
    for setting in settings:
        columns = METRIC_COLUMNS + (ACC_COLUMNS if setting == 1 and result.dataset == 'lroc'
                                    else ())
        headers += [f'S{setting} {title}' for title, _, _ in columns]
        layout += [(setting, key, paper_key) for _, key, paper_key in columns]
    rows = []
    for method in result.config['methods']:
        found = {r['setting']: r for r in result.rows if r['method'] == method}
        cells = [method]
        for setting, key, paper_key in layout:
            value = found.get(setting, {}).get(key)
            paper = paper_metric(result.dataset, method, setting, paper_key) if paper_key \
                else None
            cells.append(_cell(value, paper))
        rows.append(cells)
    kind = 'SYNTHETIC generated benchmark' if result.synthetic else f'data at {result.root}'
    table_number = 'I' if result.dataset == 'lroc' else 'II'
    title = (f'{result.dataset.upper()} (Table {table_number} layout), seed {result.seed}: '
             f'ours on the {kind} (paper, real data). S1 full/balanced test, S2 5% anomalies, '
             'S3 5% anomalies + 5% contaminated training.')
    return title, headers, rows


def resource_table(result: Any) -> tuple[str, list[str], list[list[str]]]:
    """Return (title, headers, rows) of the Table III layout for a result."""
    headers = ['Method', 'Artifact MB', 'Params+buffers MB', 'Peak mem/image MB',
               'Model RSS MB', 'Latency median ms', 'Latency mean ms']
    rows = []
    for method, figures in result.resources.items():
        paper = PAPER_RESOURCES.get(method, {})
        rows.append([method, f'{figures["artifact_mb"]:.1f}',
                     f'{figures["state_mb"]:.1f} ({paper.get("footprint_mb", 0):.1f})',
                     f'{figures["peak_memory_mb"]:.1f} ({paper.get("peak_memory_mb", 0):.0f})',
                     f'{figures["model_rss_mb"]:.0f}',
                     f'{figures["latency_ms_median"]:.1f} ({paper.get("latency_ms", 0):.0f})',
                     f'{figures["latency_ms_mean"]:.1f}'])
    first = next(iter(result.resources.values()), {})
    size = result.config['fit']['input_size']
    title = (f'{result.dataset.upper()} resources (Table III layout), {size}x{size} input, batch '
             f'1, {first.get("threads", "?")} torch thread(s), mean over '
             f'{first.get("images", "?")} images after {first.get("warmup", "?")} warm-up '
             'calls; (paper) = i5-9600K, real data.')
    return title, headers, rows


def class_table(result: Any) -> tuple[str, list[str], list[list[str]]]:
    """Return (title, headers, rows): AUROC per anomaly class against normals, per setting."""
    classes = sorted({name for row in result.rows for name in row.get('class_auroc', {})})
    headers = ['Method', 'Setting', 'ROC'] + classes
    rows = []
    for row in result.rows:
        values = row.get('class_auroc', {})
        counts = row.get('class_counts', {})
        rows.append([row['method'], str(row['setting']), _cell(row['img_auroc'])] + [
            f'{_cell(values.get(name))} n={counts[name]}' if name in counts else '-'
            for name in classes])
    kind = 'SYNTHETIC generated benchmark' if result.synthetic else f'data at {result.root}'
    title = (f'{result.dataset.upper()} img-AUROC per anomaly class (that class against all '
             f'normal test images; n = its test images), seed {result.seed}, on the {kind}.')
    return title, headers, rows


def robust_table(result: Any) -> tuple[str, list[str], list[list[str]]]:
    """Return (title, headers, rows) comparing settings 2/3 without and with robust fitting."""
    headers = ['Method', 'S2', 'S3', 'Δ', 'S2 rob', 'S3 rob', 'Δ rob', 'drop S2', 'drop S3']
    rows = []
    for method in result.config['methods']:
        plain = {r['setting']: r['img_auroc'] for r in result.rows if r['method'] == method}
        robust = {r['setting']: r for r in result.robust_rows if r['method'] == method}
        if not robust:
            continue
        cells = [method]
        for values in (plain, {s: r['img_auroc'] for s, r in robust.items()}):
            cells += [f'{values[s]:.3f}' if s in values else '-' for s in (2, 3)]
            cells.append(f'{values[3] - values[2]:+.3f}' if {2, 3} <= set(values) else '-')
        cells += [f'{robust[s]["dropped_anomalies"]}/{robust[s]["dropped_count"]}'
                  if s in robust else '-' for s in (2, 3)]
        rows.append(cells)
    config = result.config['fit']['robust'] or {}
    kind = 'SYNTHETIC generated benchmark' if result.synthetic else f'data at {result.root}'
    title = (f'{result.dataset.upper()} contamination-robust fitting, seed {result.seed}: '
             f'img-AUROC on the {kind}, without and with (rob) --robust '
             f'({config.get("screen")} screen, {config.get("rule")} rule); Δ = S3 − S2; drop = '
             'anomalous/total training images the screening removed.')
    return title, headers, rows


def _cell_status(record: dict[str, Any] | None) -> tuple[str, str]:
    """Return the (AUROC, fit time) cells of one benchmark cell record."""
    if record is None:
        return '-', 'not run'
    budget = record.get('time_budget_s')
    if record['status'] in ('timeout', 'failed'):
        return record['status'], f'> {budget:.0f} s budget' if record['status'] == 'timeout' \
            else record.get('error', '')[:60]
    note = {'stopped': f' (stopped at budget, {record.get("epochs_completed")} ep)',
            'over_budget': f' (over {budget:.0f} s budget)'}.get(record['status'], '')
    if record.get('fit_reused'):
        fit = f'fit reused ({record["fit_seconds"]:.0f} s){note}'
        return _cell(record['img_auroc']), f'{fit}, cell {record["seconds"]:.0f} s'
    return _cell(record['img_auroc']), f'{record["fit_seconds"]:.0f} s{note}'


def cell_tables_markdown(records: list[dict[str, Any]]) -> str:
    """Return the tables of a resumable benchmark from its cell records (see cells.py)."""
    parts = []
    for dataset in sorted({r['dataset'] for r in records}):
        mine = [r for r in records if r['dataset'] == dataset]
        settings = sorted({r['setting'] for r in mine})
        methods = list(dict.fromkeys(r['method'] for r in mine))
        found = {(r['method'], r['setting']): r for r in mine}
        headers = ['Method'] + [f'S{s} {name}' for s in settings for name in ('ROC', 'fit')]
        rows = []
        for method in methods:
            cells = [method]
            for setting in settings:
                record = found.get((method, setting))
                roc, seconds = _cell_status(record)
                paper = paper_metric(dataset, method, setting, 'img_auroc')
                cells += [roc + (f' ({paper:.2f})' if paper is not None and record and
                                 'img_auroc' in record else ''), seconds]
            rows.append(cells)
        synthetic = all(r.get('synthetic') for r in mine)
        first = mine[0]
        title = (f'{dataset.upper()} at full split sizes, one cell per method and setting '
                 f'({"SYNTHETIC generated data" if synthetic else "data at " + first["root"]}; '
                 f'(paper, real data)); {_input_sizes(mine)}, seed '
                 f'{first["seed"]}; fit = wall time of fitting incl. calibration.')
        parts.append(_markdown(title, headers, rows))
        scored = [r for r in mine if r.get('class_auroc')]
        if scored:
            parts.append(_markdown(*class_table(_CellResult(dataset, scored, synthetic))))
    return '\n\n'.join(parts) + '\n'


def _input_sizes(records: list[dict[str, Any]]) -> str:
    """Return 'input N px', naming the methods whose cells used another size."""
    sizes = Counter(r['fit']['input_size'] for r in records)
    common = sizes.most_common(1)[0][0]
    others = {}
    for record in records:
        if record['fit']['input_size'] != common:
            others.setdefault(record['method'], record['fit']['input_size'])
    return f'input {common} px' + ''.join(f', {method} {size} px'
                                          for method, size in others.items())


class _CellResult:
    """The fields of a benchmark result that :func:`class_table` reads, from cell records."""

    def __init__(self, dataset: str, rows: list[dict[str, Any]], synthetic: bool) -> None:
        self.dataset = dataset
        self.rows = rows
        self.synthetic = synthetic
        self.root = rows[0]['root']
        self.seed = rows[0]['seed']


def _markdown(title: str, headers: list[str], rows: list[list[str]]) -> str:
    lines = [f'**{title}**', '', '| ' + ' | '.join(headers) + ' |',
             '|' + '|'.join('---' for _ in headers) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def markdown_tables(result: Any) -> str:
    """Return the metric and resource tables as markdown, with the run's notes."""
    parts = [_markdown(*metric_table(result))]
    if any(row.get('class_auroc') for row in result.rows):
        parts.append(_markdown(*class_table(result)))
    if result.robust_rows:
        parts.append(_markdown(*robust_table(result)))
    if result.resources:
        parts.append(_markdown(*resource_table(result)))
    notes = [f'- setting {s}: {note}' for s, items in result.notes.items() for note in items]
    legend = ('ROC = img-AUROC; F1/ACC at the calibrated threshold (normal-only calibration, '
              'deployable); F1*/ACC* at the oracle F1-optimal threshold (uses test labels; '
              "the paper's definition); PR = AUC-PR as average precision.")
    parts.append(legend + ('\n\nNotes:\n' + '\n'.join(notes) if notes else ''))
    return '\n\n'.join(parts) + '\n'


def print_tables(result: Any) -> None:
    """Print the tables with rich."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    # One table per setting keeps each readable in an 80-column terminal.
    tables = [metric_table(result, [setting]) for setting in result.config['settings']]
    tables += [class_table(result)] if any(r.get('class_auroc') for r in result.rows) else []
    tables += [robust_table(result)] if result.robust_rows else []
    tables += [resource_table(result)] if result.resources else []
    for title, headers, rows in tables:
        table = Table(title=title, title_justify='left')
        for header in headers:
            table.add_column(header, justify='left' if header == 'Method' else 'right')
        for row in rows:
            table.add_row(*row)
        console.print(table)


def write_results(result: Any, scores: list[dict[str, Any]]) -> dict[str, str]:
    """Write results.json, results.csv, scores.csv, tables.md (robust.csv); return paths."""
    out = Path(result.out_dir)
    names = ('results.json', 'results.csv', 'scores.csv', 'tables.md') + (
        ('robust.csv',) if result.robust_rows else ())
    files = {name: out / name for name in names}
    payload = {'dataset': result.dataset, 'root': result.root, 'synthetic': result.synthetic,
               'seed': result.seed, 'config': result.config, 'rows': result.rows,
               'resources': result.resources, 'robust_rows': result.robust_rows,
               'notes': {str(k): v for k, v in result.notes.items()},
               'disclaimer': ('SYNTHETIC generated benchmark: not results on the real data'
                              if result.synthetic else '')}
    files['results.json'].write_text(json.dumps(payload, indent=1))
    tables = [('results.csv', CSV_FIELDS, result.rows), ('scores.csv', SCORE_FIELDS, scores)]
    if result.robust_rows:
        tables.append(('robust.csv', ROBUST_FIELDS, result.robust_rows))
    for name, fields, records in tables:
        with files[name].open('w', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction='ignore')
            writer.writeheader()
            writer.writerows(records)
    files['tables.md'].write_text(markdown_tables(result))
    return {name: str(path) for name, path in files.items()}
