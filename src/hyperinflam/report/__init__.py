"""Outputs of a study: the terminal tables, results.csv / observations.csv / results.json, and the
offline HTML report with plots. Every renderer reads ``StudyResults`` (docs/results-format.md)
and computes no statistic."""

from __future__ import annotations

from pathlib import Path

from hyperinflam.report.files import read_results, write_results
from hyperinflam.report.html import render_html, write_report
from hyperinflam.report.terminal import render_terminal
from hyperinflam.study.results import StudyResults


def write_outputs(results: StudyResults, out_dir: str | Path) -> dict[str, Path]:
    """Write every output file into ``out_dir``: results.csv, observations.csv, patients.csv,
    results.json and report.html. Returns their paths by name (``results_csv``,
    ``observations_csv``, ``patients_csv``, ``results_json``, ``report_html``)."""
    paths = write_results(results, out_dir)
    paths["report_html"] = write_report(results, out_dir)
    return paths


__all__ = ["render_terminal", "write_results", "read_results", "write_report", "render_html",
           "write_outputs"]
