"""Evaluation: metrics, plots, the paper's benchmark runner and report, resource measurement.

:func:`.runner.run_benchmark` fits, scores and tabulates every method and setting;
:mod:`.resources` measures footprint, latency and peak memory; :mod:`.report` writes the tables
and files; :mod:`.paper` holds the paper's reference numbers (real data) printed beside ours.
"""
