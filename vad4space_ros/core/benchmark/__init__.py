"""The paper's benchmark report: fit, score, tabulate and plot every method and setting.

:func:`run_benchmark` (in :mod:`.runner`) does the work; :mod:`.resources` measures footprint,
latency and peak memory; :mod:`.report` writes the tables and files; :mod:`.paper` holds the
paper's reference numbers (real data) printed beside ours.
"""
from vad4space_ros.core.benchmark.runner import (
    BenchmarkResult, FitOptions, load_results, ResourceOptions, run_benchmark)

__all__ = ['BenchmarkResult', 'FitOptions', 'ResourceOptions', 'load_results', 'run_benchmark']
