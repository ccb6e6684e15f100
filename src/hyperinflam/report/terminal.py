"""The study results in the terminal (rich tables), read from ``StudyResults`` only.

Tables: the founding paper's marker table (clinical reference §10.1: mean ± SEM at the start of
anakinra and 7 days later, % change, p-values), baseline characteristics, flow counts,
co-therapy and safety. No statistic is computed here (docs/results-format.md).
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hyperinflam.report.views import (
    SUMMARY_SECTIONS,
    ResultsIndex,
    cohort_size,
    fmt_count,
    flow_steps,
    get_path,
    marker_rows,
    summary_table,
)
from hyperinflam.study.results import StudyResults

SECTION_TITLES = {
    "baseline": "Baseline characteristics",
    "cotherapy": "Co-therapy",
    "safety": "Safety after the first anakinra dose",
    "phenotype": "Phenotype at the index time",
}


def _short_labels() -> dict[str, str]:
    """Short variable names for narrow terminals (vocabulary/variables.csv ``short_label``)."""
    from hyperinflam.vocabulary import load

    return {name: v.short_label for name, v in load().variables.items()}


def marker_table(results: StudyResults, idx: ResultsIndex | None = None) -> Table:
    """The paper-style marker table as a rich Table."""
    rows = marker_rows(results, idx)
    t = Table(title="Inflammatory markers: start of anakinra (baseline) and day 7",
              box=box.SIMPLE_HEAVY, title_justify="left", header_style="bold")
    t.add_column("Marker (unit)")
    t.add_column("n", justify="right")
    t.add_column("Baseline\nmean ± SEM", justify="right")
    t.add_column("Day 7\nmean ± SEM", justify="right")
    t.add_column("% change\nof means", justify="right")
    t.add_column("Median %\nper patient", justify="right")
    t.add_column("p\npaired t", justify="right")
    t.add_column("p\nWilcoxon", justify="right")
    short = _short_labels()
    for row in rows:
        c = row.cells
        name = short.get(row.variable, row.label)
        marker = f"{name} ({row.unit_display})" if row.unit_display else name
        t.add_row(Text(marker), c["n"], c["baseline"], c["day7"], c["pct_change_of_means"],
                  c["median_pct_change"], c["p_t_test"], c["p_wilcoxon"])
    t.caption = ("Mean ± SEM of patients with both values; two-sided tests. "
                 "Methods: see the report.")
    return t


def section_table(results: StudyResults, section: str, idx: ResultsIndex | None = None) -> Table | None:
    """A characteristics-style section (baseline, cotherapy, safety, phenotype), None if empty."""
    st = summary_table(results, section, idx)
    if not st.lines:
        return None
    n = cohort_size(results, idx)
    t = Table(title=SECTION_TITLES.get(section, section.title()), box=box.SIMPLE_HEAVY,
              title_justify="left", header_style="bold", min_width=60)
    t.add_column("Characteristic")
    for g in st.groups:
        head = "Cohort" if g == "cohort" else g
        if g == "cohort" and n is not None:
            head += f" (n = {fmt_count(n)})"
        t.add_column(head, justify="right")
    for line in st.lines:
        label = ("  " + line.label) if line.indent else line.label
        t.add_row(Text(label, style="bold" if line.heading else ""), *map(Text, line.cells))
    return t


def flow_table(results: StudyResults, idx: ResultsIndex | None = None) -> Table | None:
    main, per_marker = flow_steps(results, idx)
    if not main and not per_marker:
        return None
    t = Table(title="Patient flow", box=box.SIMPLE_HEAVY, title_justify="left", header_style="bold",
              min_width=60)
    t.add_column("Step")
    t.add_column("Count", justify="right")
    for s in main:
        t.add_row(Text(s.label), fmt_count(s.count))
    for s in per_marker:
        t.add_row(Text("  " + s.label), fmt_count(s.count))
    return t


def render_terminal(results: StudyResults, console: Console) -> None:
    """Print the study results to a rich ``console``: title, flow, baseline characteristics,
    the marker table, co-therapy, safety (and phenotype when present)."""
    idx = ResultsIndex(results)
    title = get_path(results.definition, "study", "title") or get_path(
        results.definition, "study", "id") or "Study results"
    console.print(Text(str(title), style="bold"))
    ref = get_path(results.definition, "study", "reference")
    if ref:
        console.print(Text(f"Reproduces: {ref}", style="dim"))
    for t in (flow_table(results, idx), section_table(results, "baseline", idx),
              marker_table(results, idx)):
        if t is not None:
            console.print(t)
    for section in SUMMARY_SECTIONS[1:]:
        t = section_table(results, section, idx)
        if t is not None:
            console.print(t)
