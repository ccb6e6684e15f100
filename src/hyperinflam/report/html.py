"""The offline HTML report: one self-contained ``report.html`` (inline CSS, inline SVG, system
fonts; no script, no external style, font or image), rendered with jinja2 from ``StudyResults``.

The report's sections follow the results dataset (:func:`report_sections`): summary; patient
flow (CONSORT-style); patients at PICU admission (the founding paper's Table 1, clinical reference
§10.1); published vs this site (for a study naming a published reference); the index drug's
exposure; the marker table (baseline vs each timepoint, §10.4); the repeated-measures model (two
or more timepoints); figures (per marker a trajectory and waterfalls); the per-patient listing;
co-therapies, safety, PICU stay and survival, criteria at the first dose, and any other section
the results hold; limitations (from the data); methods with the software in footnotes; and the
references, whose § citations name headings of docs/clinical-reference.md. Every word comes from
the study definition and the results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from hyperinflam.report import plots
from hyperinflam.report.views import (
    NOT_STATED,
    ResultsIndex,
    and_join,
    marker_notes,
    cited_sections,
    cohort_size,
    flow,
    fmt_count,
    get_path,
    index_drug,
    limitations,
    listing,
    marker_rows,
    methods_paragraphs,
    mixed_means,
    mixed_rows,
    p_phrase,
    published,
    recognition_view,
    reference_headings,
    software_notes,
    summary_sections,
    summary_table,
    timepoints,
)
from hyperinflam.study import labels as words
from hyperinflam.study.results import StudyResults

REPORT_HTML = "report.html"


@dataclass
class Section:
    """One section of the report: its anchor, heading, kind (the template block that draws it)
    and what that block needs."""

    id: str
    title: str
    kind: str
    data: dict = field(default_factory=dict)


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
    """A plain-language summary built from looked-up values only."""
    d = idx.definition
    drug = index_drug(d)
    n = cohort_size(results, idx)
    main = flow(results, idx)
    stays = next((s.count for s in main.steps if s.variable == "stays"), None)
    labels = [t.label for t in timepoints(d)]
    lead = ""
    if n is not None:
        lead = (f"The study includes {fmt_count(n)} patient{'s' if n != 1 else ''}"
                + (f", from {fmt_count(stays)} PICU stays" if stays is not None else "") + ".")
        if n:
            lead += (f" Markers at the first {drug} dose (baseline) and at "
                     f"{and_join(labels)} (mean ± SEM of the patients with both values):")
    lines = []
    for m in markers:
        c = m.cells
        if m.baseline_mean is None or m.later_mean is None:
            continue
        unit = f" {m.unit_display}" if m.unit_display else ""
        lines.append(f"{m.label}, baseline to {m.comparison_label}: {c['baseline']} → "
                     f"{c['later']}{unit} (n = {c['n']}; {c['pct_change_of_means']} change of "
                     f"means; paired t-test p {p_phrase(c['p_paired_t'])}, Wilcoxon "
                     f"signed-rank test p {p_phrase(c['p_wilcoxon'])})")
    return {"lead": lead, "lines": lines}


def _footnoted(paragraphs: list[str], software: dict[str, str]) -> tuple[list[Markup], list[dict]]:
    """Methods paragraphs (escaped HTML) with a footnote mark after the first mention of each
    test, and the footnotes: each software call once."""
    notes, out = [], []
    remaining = dict(software)
    for para in paragraphs:
        marks = []  # (end of the test's name, footnote number)
        for name in list(remaining):
            pos = para.find(name)
            if pos >= 0:
                notes.append({"n": len(notes) + 1, "name": name, "call": remaining.pop(name)})
                marks.append((pos + len(name), len(notes)))
        html, last = Markup(""), 0
        for end, number in sorted(marks):
            html += escape(para[last:end]) + Markup(f'<sup class="fn">{number}</sup>')
            last = end
        out.append(html + escape(para[last:]))
    return out, notes


def report_sections(results: StudyResults, idx: ResultsIndex | None = None) -> list[Section]:
    """The report's sections, in order, each with what its template block needs. Which sections
    appear follows the results: a section without rows is left out, and a section of the results
    the report does not know is drawn as a characteristics table (so another analysis adds a
    section by adding rows)."""
    idx = idx or ResultsIndex(results)
    d = idx.definition
    drug = index_drug(d)
    markers = marker_rows(results, idx)
    points = timepoints(d)
    out: list[Section] = [Section("summary", "Summary", "summary",
                                  {"summary": _summary(results, idx, markers),
                                   "description": get_path(d, "study", "description") or ""})]
    f = flow(results, idx)
    out.append(Section("flow", "Patient flow", "flow",
                       {"svg": plots.flow_svg(f) if not f.empty else ""}))
    tables = {s: summary_table(results, s, idx) for s in summary_sections(results, idx)}
    if "baseline" in tables and tables["baseline"].lines:
        out.append(Section("baseline", tables["baseline"].title, "table",
                           {"table": tables["baseline"],
                            "note": "Count (% of the patients in the study); continuous "
                                    "characteristics as median (first–third quartile)."}))
    citation, pub = published(results, idx)
    if pub:
        out.append(Section("published", "Published vs this site", "published",
                           {"citation": citation, "lines": pub}))
    if "exposure" in tables and tables["exposure"].lines:
        out.append(Section("exposure", tables["exposure"].title, "table",
                           {"table": tables["exposure"], "note": ""}))
    labels = and_join([t.label for t in points])
    out.append(Section("markers", f"Markers at the first {drug} dose and at {labels}", "markers",
                       {"markers": markers, "several": len(points) > 1,
                        "notes": marker_notes(markers),
                        "later": points[0].label if len(points) == 1 else "timepoint"}))
    mixed = mixed_rows(results, idx)
    if mixed:
        out.append(Section("mixed", "All timepoints together: linear mixed model", "mixed",
                           {"rows": mixed}))
    obs = results.observations
    if obs is None or obs.empty:
        obs = pd.DataFrame(columns=["patient", "variable", "hours_from_index", "value", "unit",
                                    "role"])
    figures = []
    by_marker: dict[str, list] = {}
    for m in markers:
        by_marker.setdefault(m.variable, []).append(m)
    for variable, rows in by_marker.items():
        slug = _slug(variable)
        figures.append({
            "marker": rows[0], "anchor": f"fig-{slug}",
            "trajectory": plots.trajectory_svg(rows[0], obs, d, uid=f"traj-{slug}",
                                               means=mixed_means(results, variable, idx)),
            "waterfall": plots.waterfall_svg(rows, obs, uid=f"wf-{slug}"),
        })
    out.append(Section("figures", "Figures", "figures", {"figures": figures,
                                                         "several": len(points) > 1}))
    lst = listing(results)
    out.append(Section("patients", "Patients one by one", "listing", {"listing": lst}))
    for s, table in tables.items():
        if s in ("baseline", "exposure") or not table.lines:
            continue
        out.append(Section(s, table.title, "table", {"table": table, "note": ""}))
    rec = recognition_view(results, idx)
    if rec is not None and not rec.empty:
        out.append(Section("recognition", rec.title, "recognition", {
            "view": rec,
            "intro": (f"A secondary analysis named in the study definition ([recognition]): how "
                      f"long after a criterion of the hyperinflammatory phenotype group was "
                      f"first met in the PICU stay the first {drug} dose came, and the markers "
                      f"of patients who started early or late (Methods)."),
            "svg": plots.delay_svg(results.patients, d),
            "figure_no": len(figures) + 1,
            "figure_title": f"Hours from recognition to the first {drug} dose, each patient",
            "markers_title": (f"Markers by early or late start of {drug}: baseline and "
                              f"{labels}"),
            "markers_note": ("Patients with both values in each group; change = value at the "
                             "timepoint − baseline, compared between the groups by the "
                             "Mann–Whitney U test (two-sided). Descriptive: the groups are not "
                             "randomised."),
        }))
    out.append(Section("limitations", "Limitations", "limitations",
                       {"sentences": limitations(results, idx)}))
    paragraphs, notes = _footnoted(methods_paragraphs(results), software_notes(results))
    out.append(Section("methods", "Methods", "methods",
                       {"paragraphs": paragraphs, "footnotes": notes}))
    return out


REFERENCE_DOCUMENT = ("hyperinflam clinical reference, docs/clinical-reference.md of the "
                      "repository (also shipped inside the package)")


def _references(results: StudyResults, html_text: str) -> list[dict]:
    """The reference list: the publication the study reproduces (when it names one), then every
    section of the clinical reference the report cites, with its chapter and heading."""
    d = results.definition or {}
    refs = []
    citation = get_path(d, "published", "citation") or get_path(d, "study", "reference")
    if citation:
        refs.append({"label": "Reproduced study", "text": str(citation)})
    headings = reference_headings()
    plain = re.sub(r"<[^>]+>", " ", html_text)
    for section in cited_sections([plain]):
        chapter = section.split(".")[0]
        title = headings.get(section, "")
        if chapter != section and headings.get(chapter):
            title = f"{headings[chapter]}: {title}" if title else headings[chapter]
        refs.append({"label": f"§{section}", "text": f"{title}." if title else ""})
    return refs


def render_html(results: StudyResults) -> str:
    """The report as one HTML string (see the module docstring)."""
    idx = ResultsIndex(results)
    d = results.definition or {}
    p = results.provenance or {}
    sections = report_sections(results, idx)
    n = cohort_size(results, idx)
    context = {
        "title": get_path(d, "study", "title") or get_path(d, "study", "id") or "Study results",
        "study_id": get_path(d, "study", "id") or NOT_STATED,
        "reference": get_path(d, "study", "reference") or "",
        "run_at": p.get("run_time_utc") or p.get("run_at") or NOT_STATED,
        "version": get_path(p, "versions", "hyperinflam") or NOT_STATED,
        "cohort_n": fmt_count(n) if n is not None else None,
        "sections": sections,
        "references": [],
        "reference_document": REFERENCE_DOCUMENT,
        "css": _css(),
        "words": words,
    }
    env = _environment()
    template = env.get_template("report.html.j2")
    first = template.render(**context)
    context["references"] = _references(results, first)
    return template.render(**context)


def write_report(results: StudyResults, out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` (created if needed) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_HTML
    path.write_text(render_html(results), encoding="utf-8")
    return path
