"""The study results in the terminal (rich tables), read from ``StudyResults`` only.

Tables, in the report's order: the patient flow with each exclusion and its reason, patients at
PICU admission, published vs this site, the index drug's exposure, the marker table (baseline vs
each timepoint, clinical reference §10.1, §10.4), the mixed model (two or more timepoints), the
other characteristics sections, and the limitations. No statistic is computed here and every
word comes from the results or the study definition (docs/results-format.md), and every such
word reaches rich as :class:`rich.text.Text`, never as markup: a label "day [3]" or a title
"Anakinra [pilot]" prints as written.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hyperinflam.report.views import (
    ResultsIndex,
    and_join,
    marker_notes,
    cohort_size,
    flow,
    fmt_count,
    get_path,
    index_drug,
    limitations,
    marker_rows,
    mixed_rows,
    published,
    recognition_view,
    summary_sections,
    summary_table,
    timepoints,
)
from hyperinflam.study.labels import capitalised
from hyperinflam.study.results import StudyResults


def marker_table(results: StudyResults, idx: ResultsIndex | None = None) -> Table:
    """The marker table as a rich Table (a Timepoint column when the study has several)."""
    idx = idx or ResultsIndex(results)
    d = idx.definition
    points = timepoints(d)
    several = len(points) > 1
    rows = marker_rows(results, idx)
    labels = and_join([t.label for t in points])
    t = Table(title=Text(f"Markers at the first {index_drug(d)} dose (baseline) and at {labels}"),
              box=box.SIMPLE_HEAVY, title_justify="left", header_style="bold")
    t.add_column("Marker (unit)")
    if several:
        t.add_column("Timepoint")
    t.add_column("n", justify="right")
    t.add_column("Baseline\nmean ± SEM", justify="right")
    later = "At the\ntimepoint" if several else capitalised(points[0].label)
    t.add_column(Text(f"{later}\nmean ± SEM"), justify="right")
    t.add_column("% change\nof means", justify="right")
    t.add_column("Median %\nper patient", justify="right")
    t.add_column("p\npaired t", justify="right")
    t.add_column("p\nWilcoxon", justify="right")
    previous = None
    for row in rows:
        c = row.cells
        name = ""
        if row.variable != previous:
            name = f"{row.short_label} ({row.unit_display})" if row.unit_display else row.short_label
        previous = row.variable
        cells = [name] + ([row.comparison_label] if several else []) + [
            c["n"], c["baseline"], c["later"], c["pct_change_of_means"], c["median_pct_change"],
            c["p_paired_t"], c["p_wilcoxon"]]
        t.add_row(*map(Text, cells))
    notes = marker_notes(rows, short=True)
    t.caption = Text("Mean ± SEM of the patients with both values; two-sided tests; – not "
                     "computed. Methods: see the report." + ("\n" + "\n".join(notes) if notes
                                                             else ""))
    t.caption_justify = "left"
    return t


def mixed_table(results: StudyResults, idx: ResultsIndex | None = None) -> Table | None:
    rows = mixed_rows(results, idx)
    if not rows:
        return None
    t = Table(title="All timepoints together: linear mixed model (random intercept per patient)",
              box=box.SIMPLE_HEAVY, title_justify="left", header_style="bold")
    for name, justify in (("Marker (unit)", "left"), ("Timepoint", "left"),
                          ("Patients /\nvalues", "right"), ("Difference from\nbaseline (95% CI)",
                                                            "right"),
                          ("p", "right"), ("p, any change\nover time", "right")):
        t.add_column(name, justify=justify)
    previous = None
    for r in rows:
        c = r.cells
        first = r.variable != previous
        previous = r.variable
        t.add_row(*map(Text, (c["marker"] if first else "", r.timepoint_label,
                              c["n"] if first else "", c["difference"], c["p"],
                              c["p_overall"] if first else "")))
    notes = list(dict.fromkeys(f"{r.label}: {r.error or r.warning}" for r in rows
                               if r.error or r.warning))
    if notes:
        t.caption = Text("\n".join(notes))
        t.caption_justify = "left"
    return t


def section_table(results: StudyResults, section: str,
                  idx: ResultsIndex | None = None) -> Table | None:
    """A characteristics-style section, None if empty."""
    st = summary_table(results, section, idx)
    if not st.lines:
        return None
    n = cohort_size(results, idx)
    t = Table(title=Text(st.title), box=box.SIMPLE_HEAVY, title_justify="left",
              header_style="bold", min_width=60)
    t.add_column("Characteristic")
    for g in st.groups:
        head = "Patients" if g == "cohort" else g
        if g == "cohort" and n is not None:
            head += f" (n = {fmt_count(n)})"
        t.add_column(Text(head), justify="right")
    for line in st.lines:
        label = ("  " + line.label) if line.indent else line.label
        t.add_row(Text(label, style="bold" if line.heading else ""), *map(Text, line.cells))
    if st.notes:
        t.caption = Text("\n".join(st.notes))
        t.caption_justify = "left"
    return t


def flow_table(results: StudyResults, idx: ResultsIndex | None = None) -> Table | None:
    """The flow: each step, the exclusion before it with its reason, the patients analysed."""
    f = flow(results, idx)
    if f.empty:
        return None
    t = Table(title="Patient flow", box=box.SIMPLE_HEAVY, title_justify="left",
              header_style="bold", min_width=60)
    t.add_column("Step")
    t.add_column("n", justify="right")
    for s in f.steps:
        if s.excluded is not None:
            t.add_row(Text(f"  excluded: {s.excluded.label}", style="dim"),
                      Text(fmt_count(s.excluded.count), style="dim"))
        t.add_row(Text(s.label), fmt_count(s.count))
    if f.note is not None:
        t.add_row(Text(f"  {f.note.label}", style="dim"), Text(fmt_count(f.note.count),
                                                                style="dim"))
    for a in f.analysed:
        t.add_row(Text(f"Analysed at {a.label} (baseline and {a.label} values)"), "")
        for m in a.markers:
            excluded = []
            if m.missing_baseline:
                excluded.append(f"{fmt_count(m.missing_baseline)} no baseline")
            if m.missing_timepoint:
                excluded.append(f"{fmt_count(m.missing_timepoint)} no {a.label} value")
            tail = f" (excluded: {', '.join(excluded)})" if excluded else ""
            t.add_row(Text(f"  {m.label}{tail}"), fmt_count(m.analysable))
    return t


def published_table(results: StudyResults, idx: ResultsIndex | None = None) -> Table | None:
    citation, lines = published(results, idx)
    if not lines:
        return None
    t = Table(title="Published vs this site", box=box.SIMPLE_HEAVY, title_justify="left",
              header_style="bold")
    t.add_column("Characteristic")
    t.add_column("Published", justify="right")
    t.add_column("This site", justify="right")
    for line in lines:
        t.add_row(Text(line.label), Text(line.published), Text(line.site))
    t.caption = Text(f"Published: {citation}")
    t.caption_justify = "left"
    return t


def recognition_tables(results: StudyResults, idx: ResultsIndex | None = None) -> list[Table]:
    """The secondary analysis: the delays, then the markers by early or late start."""
    idx = idx or ResultsIndex(results)
    v = recognition_view(results, idx)
    if v is None or v.empty:
        return []
    n = cohort_size(results, idx)
    t = Table(title=Text(v.title), box=box.SIMPLE_HEAVY, title_justify="left",
              header_style="bold", min_width=60)
    t.add_column("Characteristic")
    t.add_column(Text("Patients" + (f" (n = {fmt_count(n)})" if n is not None else "")),
                 justify="right")
    for line in v.table.lines:
        label = ("  " + line.label) if line.indent else line.label
        t.add_row(Text(label, style="bold" if line.heading else ""), *map(Text, line.cells))
    out = [t]
    if v.lines:
        d = idx.definition
        # n and the median per-patient % change of each group (the means are in the report)
        m = Table(title=Text(f"Markers by early or late start of {index_drug(d)}: n, median % "
                             f"change from baseline"),
                  box=box.SIMPLE_HEAVY, title_justify="left", header_style="bold")
        m.add_column("Marker (unit)")
        m.add_column("Timepoint")
        for g in ("early_start", "late_start"):
            m.add_column(Text(v.group_titles[g]), justify="right")
        m.add_column("p, Mann–\nWhitney", justify="right")
        for line in v.lines:
            m.add_row(Text(line.label), Text(line.timepoint_label),
                      Text(f"{line.early.n}: {line.early.median_pct_change}"),
                      Text(f"{line.late.n}: {line.late.median_pct_change}"), Text(line.p))
        if v.notes:
            m.caption = Text("\n".join(f"–: {note}" for note in v.notes))
            m.caption_justify = "left"
        out.append(m)
    elif v.notes:
        t.caption = Text("\n".join(v.notes))
        t.caption_justify = "left"
    return out


def render_terminal(results: StudyResults, console: Console) -> None:
    """Print the study results to a rich ``console`` (see the module docstring)."""
    idx = ResultsIndex(results)
    d = idx.definition
    title = get_path(d, "study", "title") or get_path(d, "study", "id") or "Study results"
    console.print(Text(str(title), style="bold"))
    ref = get_path(d, "study", "reference")
    if ref:
        console.print(Text(f"Reference: {ref}", style="dim"))
    n = cohort_size(results, idx)
    sections = summary_sections(results, idx)
    tables = [flow_table(results, idx)]
    if "baseline" in sections:
        tables.append(section_table(results, "baseline", idx))
    tables.append(published_table(results, idx))
    if "exposure" in sections:
        tables.append(section_table(results, "exposure", idx))
    tables += [marker_table(results, idx), mixed_table(results, idx)]
    tables += [section_table(results, s, idx) for s in sections
               if s not in ("baseline", "exposure")]
    tables += recognition_tables(results, idx)
    for t in tables:
        if t is not None:
            console.print(t)
    if n == 0:
        console.print(Text("No patient met the study's rules: the flow above shows where each "
                           "stay was excluded. Every table says \"no data\" or shows 0.",
                           style="bold"))
    console.print(Text("Limitations", style="bold"))
    for sentence in limitations(results, idx):
        console.print(Text(f"  {sentence}"))
