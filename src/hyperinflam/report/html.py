"""The offline HTML report: one self-contained ``report.html`` (inline CSS, inline SVG, system
fonts; no script, no external style, font or image), rendered with jinja2 from ``StudyResults``.

Content: title, reference and summary; patient flow; baseline characteristics (the founding
paper's Table 1 layout, clinical reference §10.1); the marker table (mean ± SEM at the start of
anakinra and at day 7, % change of means, median per-patient % change, paired t-test and
Wilcoxon p-values, §10.4); per marker a trajectory plot and a waterfall plot; co-therapy and
safety tables; methods generated from the definition and provenance.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import jinja2
import pandas as pd

from hyperinflam.report import plots
from hyperinflam.report.views import (
    NOT_STATED,
    SUMMARY_SECTIONS,
    ResultsIndex,
    cohort_size,
    flow_steps,
    fmt_count,
    get_path,
    marker_rows,
    methods_paragraphs,
    summary_table,
)
from hyperinflam.study.results import StudyResults

REPORT_HTML = "report.html"

SECTION_TITLES = {
    "baseline": "Baseline characteristics",
    "cotherapy": "Co-therapy",
    "safety": "Safety after the first anakinra dose",
    "phenotype": "Phenotype at the index time",
}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(files("hyperinflam.report") / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _css() -> str:
    return (files("hyperinflam.report") / "templates" / "report.css").read_text(encoding="utf-8")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _summary(results: StudyResults, idx: ResultsIndex, markers) -> dict:
    """A plain-language summary built from looked-up values only: a lead sentence and one line
    per marker."""
    n = cohort_size(results, idx)
    main, _ = flow_steps(results, idx)
    stays = next((s.count for s in main if s.variable == "stays"), None)
    lead = ""
    if n is not None:
        lead = (f"The cohort comprises {fmt_count(n)} patients"
                + (f", from {fmt_count(stays)} PICU stays" if stays is not None else "") + ". "
                "Markers at the start of anakinra and 7 days later (mean ± SEM):")
    lines = []
    for m in markers:
        c = m.cells
        if m.baseline_mean is None or m.day7_mean is None:
            continue
        unit = f" {m.unit_display}" if m.unit_display else ""
        lines.append(f"{m.label}: {c['baseline']} → {c['day7']}{unit} (n = {c['n']}; "
                     f"{c['pct_change_of_means']} change of means; paired t-test p "
                     f"{_p_phrase(c['p_t_test'])}, Wilcoxon p {_p_phrase(c['p_wilcoxon'])})")
    return {"lead": lead, "lines": lines}


def _p_phrase(p: str) -> str:
    return p if p.startswith("<") else f"= {p}"


def render_html(results: StudyResults) -> str:
    """The report as one HTML string (see the module docstring)."""
    idx = ResultsIndex(results)
    d = results.definition or {}
    markers = marker_rows(results, idx)
    main, per_marker = flow_steps(results, idx)
    for step in per_marker:  # the boxes sit under "analysable per marker": the marker's name
        step.label = step.label.removeprefix("Analysable: ")
    obs = results.observations
    if obs is None or obs.empty:
        obs = pd.DataFrame(columns=["patient", "variable", "hours_from_index", "value", "unit", "role"])
    figures = []
    for m in markers:
        slug = _slug(m.variable)
        figures.append({
            "marker": m,
            "anchor": f"fig-{slug}",
            "trajectory": plots.trajectory_svg(m, obs, d, uid=f"traj-{slug}"),
            "waterfall": plots.waterfall_svg(m, obs, uid=f"wf-{slug}"),
        })
    n = cohort_size(results, idx)
    sections = []
    for s in SUMMARY_SECTIONS:
        table = summary_table(results, s, idx)
        if table.lines:
            sections.append({"id": s, "title": SECTION_TITLES.get(s, s.title()), "table": table})
    p = results.provenance or {}
    context = {
        "title": get_path(d, "study", "title") or get_path(d, "study", "id") or "Study results",
        "study_id": get_path(d, "study", "id") or NOT_STATED,
        "reference": get_path(d, "study", "reference") or NOT_STATED,
        "description": get_path(d, "study", "description") or "",
        "summary": _summary(results, idx, markers),
        "run_at": p.get("run_time_utc") or p.get("run_at") or NOT_STATED,
        "version": get_path(p, "versions", "hyperinflam") or NOT_STATED,
        "cohort_n": fmt_count(n) if n is not None else None,
        "markers": markers,
        "tests_used": list(dict.fromkeys(
            t for m in markers for t in (m.method_t_test, m.method_wilcoxon) if t)),
        "figures": figures,
        "flow_svg": plots.flow_svg(main, per_marker) if (main or per_marker) else "",
        "baseline": next((s for s in sections if s["id"] == "baseline"), None),
        "other_sections": [s for s in sections if s["id"] != "baseline"],
        "methods": methods_paragraphs(results),
        "css": _css(),
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(results: StudyResults, out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` (created if needed) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_HTML
    path.write_text(render_html(results), encoding="utf-8")
    return path
