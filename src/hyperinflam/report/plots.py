"""Inline SVG figures for the offline report: marker trajectories, waterfalls, the flow diagram.

Every word on a figure (the index drug, the timepoints, the marker and its unit) comes from the
study definition and the results; a panel without data says "no data" and why.

Each function returns one ``<svg>`` element as text, with ``role="img"``, a ``<title>`` and a
``<desc>`` (accessible name and description), no external references (text is drawn as SVG text
in the page's system font stack, never as a linked font or image), and element ids unique to the
figure so several can be inlined in one page.

Everything plotted is read from ``StudyResults``: patient values from ``observations``, group
mean ± SEM (or, with several timepoints, the mixed model's mean ± SE) from ``results`` (clinical
reference §10.4). The one piece of arithmetic is the per-patient % change in the waterfall, a
display of two observed values of one patient (see :func:`waterfall_svg`).
"""

from __future__ import annotations

import io
import math
import re
from html import escape

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from hyperinflam.report.views import (Flow, MarkerRow, Timepoint, and_join, fmt_count, get_path,
                                      index_drug, timepoints)

#: Markers drawn on a logarithmic y axis (values spanning orders of magnitude). Named setting.
LOG_SCALE_MARKERS = frozenset({"ferritin", "scd25", "d_dimer", "triglycerides"})

#: Waterfall bars above this % change are drawn cut at it, with their value written on the bar
#: (one patient's +1000% must not flatten everybody else's bars). Named setting.
WATERFALL_CAP_PCT = 200.0

COLOR_PATIENT = "#8a97a6"
COLOR_BASELINE = "#1f5fa8"
COLOR_DAY7 = "#c0502a"
#: One colour per timepoint after baseline (the first is the founding design's day 7 colour).
TIMEPOINT_COLORS = ("#c0502a", "#2a8c5a", "#8a4fb0", "#b08a1f", "#1f8ab0", "#b01f6a")
TIMEPOINT_MARKERS = ("s", "^", "v", "P", "X", "*")
COLOR_MEAN = "#111111"
COLOR_WINDOW = "#eef2f7"

_RC = {
    "svg.fonttype": "none",  # text stays text: small, selectable, uses the page's fonts
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # for layout metrics only; the page font is used
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "axes.labelcolor": "#222222",
    "xtick.color": "#444444",
    "ytick.color": "#444444",
}


def _svg_text(fig: Figure, *, uid: str, title: str, desc: str) -> str:
    """Serialise a figure to an inline <svg> with title/desc and ids unique to ``uid``."""
    buf = io.StringIO()
    with rc_context({**_RC, "svg.hashsalt": uid}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None,
                                                  "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s(width|height)="[\d.]+pt"', "", svg, count=2)  # scale with the page
    # ids matplotlib derives from content may repeat across figures: prefix them
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    for old in sorted(ids, key=len, reverse=True):
        new = f"{uid}-{old}"
        svg = re.sub(rf'(\bid=")({re.escape(old)})(")', rf"\g<1>{new}\3", svg)
        svg = svg.replace(f'"#{old}"', f'"#{new}"').replace(f"url(#{old})", f"url(#{new})")
    tid, did = f"{uid}-title", f"{uid}-desc"
    svg = svg.replace(
        "<svg ", f'<svg role="img" aria-labelledby="{tid} {did}" class="figure-svg" ', 1)
    head_end = svg.index(">") + 1
    svg = (svg[:head_end] + f'<title id="{tid}">{escape(title)}</title>'
           f'<desc id="{did}">{escape(desc)}</desc>' + svg[head_end:])
    return svg.strip()


def _plain_number(x, _pos=None) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1:
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"
    return f"{x:g}"


def _no_data_svg(title: str, reason: str, *, uid: str, size=None) -> str:
    """A small panel that says "no data" and why (never an empty axis)."""
    import textwrap

    lines = textwrap.wrap(reason, 58)
    height = 54 + 16 * len(lines)
    text = "".join(f'<text x="180" y="{52 + 16 * i}" text-anchor="middle" class="no-data-why">'
                   f'{escape(line)}</text>' for i, line in enumerate(lines))
    return (f'<svg role="img" aria-labelledby="{uid}-title {uid}-desc" class="no-data-svg" '
            f'viewBox="0 0 360 {height}" width="360" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg"><title id="{uid}-title">{escape(title)}</title>'
            f'<desc id="{uid}-desc">No data: {escape(reason)}</desc>'
            f'<rect x="0.5" y="0.5" width="359" height="{height - 1}" rx="4" class="no-data-box"/>'
            f'<text x="180" y="28" text-anchor="middle" class="no-data-head">no data</text>'
            f'{text}</svg>')


def _window_bands(ax, windows: dict, points: list[Timepoint]) -> None:
    b0, b1 = windows.get("baseline_from_hours", -24), windows.get("baseline_to_hours", 12)
    ax.axvspan(float(b0) / 24, float(b1) / 24, color=COLOR_WINDOW, zorder=0, lw=0)
    for t in points:
        ax.axvspan((t.target_hours - t.tolerance_hours) / 24,
                   (t.target_hours + t.tolerance_hours) / 24, color=COLOR_WINDOW, zorder=0, lw=0)


def trajectory_svg(marker: MarkerRow, observations: pd.DataFrame, definition: dict,
                   *, uid: str, means: dict[str, tuple[float, float | None]] | None = None,
                   markers_by_timepoint: dict[str, MarkerRow] | None = None) -> str:
    """Each patient's measured values from day ``trajectory_from_days`` to ``trajectory_to_days``
    as thin lines with points; the values chosen as baseline and at each timepoint marked; the
    baseline and timepoint windows shaded (clinical reference §10.4, §12.1-§12.2).

    Group summary drawn: with one timepoint, the mean ± SEM at baseline and at the timepoint of
    the patients with both values (the marker table's numbers); with several, the mixed model's
    mean ± SE at each (``means``). Log y axis for :data:`LOG_SCALE_MARKERS` when every value is
    positive. A marker without values in the span is a "no data" panel."""
    windows = get_path(definition, "windows", default={}) or {}
    points = timepoints(definition)
    drug = index_drug(definition)
    # the span drawn covers the trajectory span and every window (a value chosen at a timepoint
    # is always shown)
    x_from = min(float(windows.get("trajectory_from_days", -2)),
                 float(windows.get("baseline_from_hours", -24)) / 24.0)
    x_to = max(float(windows.get("trajectory_to_days", 10)),
               max((t.target_hours + t.tolerance_hours) / 24.0 for t in points))
    obs = observations[observations["variable"] == marker.variable].copy()
    obs["days"] = pd.to_numeric(obs["hours_from_index"], errors="coerce") / 24.0
    obs["value"] = pd.to_numeric(obs["value"], errors="coerce")
    obs = obs[(obs["days"] >= x_from) & (obs["days"] <= x_to) & obs["value"].notna()]
    title = (f"{marker.label}: each patient's values from day {x_from:g} to day {x_to:g} after "
             f"the first {drug} dose").replace("-", "\u2212")
    if obs.empty:
        span = f"day {x_from:g} and day {x_to:g}".replace("-", "\u2212")
        return _no_data_svg(title, f"no {marker.label} value between {span} of any patient in "
                                   f"the study", uid=uid)
    log = marker.variable in LOG_SCALE_MARKERS and bool((obs["value"] > 0).all())
    unit = marker.unit_display

    several = len(points) > 1
    fig = Figure(figsize=(7.6, 3.2) if several else (5.2, 3.4), layout="constrained")
    role = obs["role"].fillna("") if "role" in obs else pd.Series("", index=obs.index)
    with rc_context(_RC):
        ax = fig.add_subplot()
        _window_bands(ax, windows, points)
        ax.axvline(0, color="#9aa5b1", lw=0.8, ls="--", zorder=1)
        for _, pts in obs.sort_values("days").groupby("patient", sort=True):
            ax.plot(pts["days"], pts["value"], color=COLOR_PATIENT, lw=0.8, alpha=0.8,
                    marker="o", ms=2.2, zorder=2)
        base = obs[role == "baseline"]
        ax.scatter(base["days"], base["value"], s=16, color=COLOR_BASELINE, zorder=3,
                   label="value used as baseline", edgecolors="white", linewidths=0.4)
        counts = [f"{len(base)} baseline"]
        for i, t in enumerate(points):
            chosen = obs[role == t.name]
            counts.append(f"{len(chosen)} {t.label}")
            ax.scatter(chosen["days"], chosen["value"], s=16,
                       marker=TIMEPOINT_MARKERS[i % len(TIMEPOINT_MARKERS)],
                       color=TIMEPOINT_COLORS[i % len(TIMEPOINT_COLORS)], zorder=3,
                       label=f"value used at {t.label}", edgecolors="white", linewidths=0.4)
        if len(points) == 1 or not means:
            t = points[0]
            summary = [(0.0, marker.baseline_mean, marker.baseline_sem),
                       (t.days, marker.later_mean, marker.later_sem)]
            summary_label = "mean ± SEM (patients with both values)"
        else:
            summary = [(0.0 if name == "baseline" else next(t.days for t in points
                                                              if t.name == name), m, se)
                       for name, (m, se) in means.items()]
            summary_label = "model mean ± SE (mixed model)"
        first = True
        for x, mean, sem in summary:
            if mean is None or (log and mean <= 0):
                continue
            err = None if sem is None else [[min(sem, mean * 0.999) if log else sem], [sem]]
            ax.errorbar([x], [mean], yerr=err, fmt="D", color=COLOR_MEAN, ms=5, capsize=4,
                        lw=1.4, zorder=4, label=summary_label if first else None)
            first = False
        ax.set_xlim(x_from - 0.3, x_to + 0.3)
        step = 1 if x_to - x_from <= 16 else 2 if x_to - x_from <= 32 else 7
        ax.set_xticks(np.arange(math.ceil(x_from / step) * step, math.floor(x_to) + 1, step))
        ax.set_xlabel(f"Days from the first {drug} dose")
        ax.set_ylabel(f"{marker.label} ({unit})" if unit else marker.label)
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(_plain_number))
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3 if several else 2,
                  fontsize=7, frameon=False, borderaxespad=0.2, handletextpad=0.3,
                  columnspacing=1.0)
    n_pat = obs["patient"].nunique()
    desc = (f"{n_pat} patients with values in the span; values used in the analysis are marked "
            f"({', '.join(counts)}). " + ("Logarithmic y axis. " if log else "")
            + "Shaded bands: the baseline and timepoint windows.")
    return _svg_text(fig, uid=uid, title=title, desc=desc)


def _pct_changes(observations: pd.DataFrame, variable: str, timepoint: str) -> pd.Series:
    obs = observations[(observations["variable"] == variable)
                       & observations["role"].isin(["baseline", timepoint])]
    wide = (obs.assign(value=pd.to_numeric(obs["value"], errors="coerce"))
            .pivot_table(index="patient", columns="role", values="value", aggfunc="first"))
    if not {"baseline", timepoint} <= set(wide.columns):
        return pd.Series(dtype=float)
    wide = wide.dropna(subset=["baseline", timepoint])
    wide = wide[wide["baseline"] != 0]
    return (100.0 * (wide[timepoint] - wide["baseline"]) / wide["baseline"]).sort_values(
        ascending=False)


def waterfall_svg(rows: list[MarkerRow], observations: pd.DataFrame, *, uid: str) -> str:
    """Per-patient % change from baseline to each timepoint (one panel per timepoint, one bar per
    patient, sorted), the median per-patient % change from the results table drawn as a line.

    The bar heights are ``100 × (value at the timepoint − baseline) / baseline`` of one
    patient's two observed values (``observations`` rows with those roles): a display of
    patient-level data, like plotting the two points, not a group statistic. Every group
    statistic shown (the median line) is looked up in ``results``."""
    marker = rows[0]
    changes = [_pct_changes(observations, marker.variable, r.comparison) for r in rows]
    what = and_join([r.comparison_label for r in rows])
    title = f"{marker.label}: per-patient % change from baseline to {what}"
    if all(c.empty for c in changes):
        return _no_data_svg(title, f"no patient has a baseline value and a value at {what}",
                            uid=uid)
    k = len(rows)
    fig = Figure(figsize=(3.6, 3.3) if k == 1 else (7.6, 2.6), layout="constrained")
    descs = []
    with rc_context(_RC):
        axes = fig.subplots(1, k, sharey=True, squeeze=False)[0]
        for i, (ax, row, pct) in enumerate(zip(axes, rows, changes)):
            values = pct.to_numpy()
            shown = np.minimum(values, WATERFALL_CAP_PCT)
            colors = [COLOR_DAY7 if v > 0 else COLOR_BASELINE for v in values]
            ax.bar(np.arange(len(pct)), shown, color=colors, width=0.75)
            for j in np.flatnonzero(values > WATERFALL_CAP_PCT):  # cut bars: the true value
                ax.text(j, WATERFALL_CAP_PCT * 0.97, f"+{values[j]:,.0f}%", rotation=90,
                        ha="center", va="top", fontsize=6.5, color="white")
            ax.axhline(0, color="#555555", lw=0.8)
            if row.median_pct_change is not None:
                ax.axhline(row.median_pct_change, color=COLOR_MEAN, lw=1, ls="--",
                           label=f"median {row.cells['median_pct_change']}")
                ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7,
                          frameon=False, borderaxespad=0.2)
            if pct.empty:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", color="#5b6570",
                        transform=ax.transAxes)
            ax.set_xticks(np.arange(len(pct)))
            ax.set_xticklabels(list(pct.index), rotation=90, fontsize=6.5 if len(pct) < 25
                               else 5)
            ax.set_xlim(-0.7, max(len(pct), 1) - 0.3)
            ax.set_xlabel(f"Patient ({row.comparison_label})" if k > 1 else "Patient")
            if i == 0:
                ax.set_ylabel("Change from baseline (%)" if k > 1
                              else f"Change from baseline to {row.comparison_label} (%)")
            falls = int((pct < 0).sum())
            cut = int((pct > WATERFALL_CAP_PCT).sum())
            descs.append(f"{row.comparison_label}: {len(pct)} patients with both values; {falls} "
                         f"fell and {len(pct) - falls} rose or did not change; median "
                         f"per-patient change {row.cells['median_pct_change']}"
                         + (f"; {cut} bars above +{WATERFALL_CAP_PCT:.0f}% are cut, their value "
                            f"written on them" if cut else ""))
    return _svg_text(fig, uid=uid, title=title, desc=". ".join(descs) + ".")


# --- the flow diagram -----------------------------------------------------------------------

#: Average glyph width as a share of the font size of DejaVu Sans (the flow's font, one of the
#: widest sans-serif fonts); text is wrapped to the box width with it, so narrower fonts fit too.
_CHAR_EM = 0.57


def _wrap(label: str, width_px: float, font_px: float) -> list[str]:
    import textwrap

    chars = max(8, int(width_px / (font_px * _CHAR_EM)))
    return textwrap.wrap(label, chars) or [""]


def _box(parts: list[str], x: float, y: float, w: float, lines: list[str], count: str | None,
         *, font: float, cls: str, line_h: float, pad: float = 8,
         left_from: int | None = None) -> float:
    """Draw a box with wrapped text lines and a bold count line; returns its height. Lines from
    index ``left_from`` on are left-aligned (a list under a centred heading)."""
    n_lines = len(lines) + (1 if count is not None else 0)
    h = pad * 2 + n_lines * line_h
    parts.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="4" '
                 f'class="{cls}"/>')
    ty = y + pad + line_h * 0.78
    for i, line in enumerate(lines):
        left = left_from is not None and i >= left_from
        indent = 16 if line.startswith("    ") else 0  # a detail line under the one before
        tx, anchor = (x + 12 + indent, "start") if left else (x + w / 2, "middle")
        weight = ' font-weight="600"' if left_from is not None and i < left_from else ""
        style = ' class="flow-label flow-detail"' if indent else ' class="flow-label"'
        parts.append(f'<text x="{tx:.0f}" y="{ty:.1f}" text-anchor="{anchor}"{style} '
                     f'font-size="{font:g}"{weight}>{escape(line.strip())}</text>')
        ty += line_h
    if count is not None:
        parts.append(f'<text x="{x + w / 2:.0f}" y="{ty:.1f}" text-anchor="middle" '
                     f'class="flow-count" font-size="{font:g}">{escape(count)}</text>')
    return h


def flow_svg(flow: Flow, *, uid: str = "flow") -> str:
    """The CONSORT-style flow diagram as a hand-built SVG: the steps down the left, each
    exclusion to the right with its reason and count, the counted-not-excluded note beside the
    study cohort, and the patients analysed per timepoint (one box per timepoint, a line per
    marker). Every count is looked up in the results (section ``flow``); text is wrapped to its
    box."""
    font, small = 14.0, 12.0
    line_h, small_h = font * 1.3, small * 1.3
    main_w, ex_w, gap_x, gap_y = 330.0, 300.0, 56.0, 30.0
    left = 16.0
    ex_x = left + main_w + gap_x
    parts: list[str] = []
    y = 12.0
    cx = left + main_w / 2
    arrow = f'marker-end="url(#{uid}-arrow)"'
    boxes = []
    for i, step in enumerate(flow.steps):
        if step.excluded is not None and i > 0:
            # the exclusion box sits beside the gap between two steps, joined by a side arrow
            lines = _wrap(step.excluded.label, ex_w - 16, small)
            eh = 16 + (len(lines) + 1) * small_h
            ey = y
            parts.append(f'<line x1="{cx:.0f}" y1="{ey + eh / 2:.0f}" x2="{ex_x - 2:.0f}" '
                         f'y2="{ey + eh / 2:.0f}" class="flow-arrow" {arrow}/>')
            _box(parts, ex_x, ey, ex_w, lines, f"excluded: n = {fmt_count(step.excluded.count)}",
                 font=small, cls="flow-box flow-box-excluded", line_h=small_h)
            y += eh + 14
        lines = _wrap(step.label, main_w - 16, font)
        h = _box(parts, left, y, main_w, lines, f"n = {fmt_count(step.count)}", font=font,
                 cls="flow-box", line_h=line_h)
        boxes.append((y, h))
        if step is flow.steps[-1] and flow.note is not None:
            nlines = _wrap(flow.note.label, ex_w - 16, small)
            nh = 16 + (len(nlines) + 1) * small_h
            ny = y + (h - nh) / 2
            parts.append(f'<line x1="{left + main_w:.0f}" y1="{y + h / 2:.0f}" '
                         f'x2="{ex_x:.0f}" y2="{y + h / 2:.0f}" class="flow-arrow flow-dashed"/>')
            _box(parts, ex_x, ny, ex_w, nlines, f"n = {fmt_count(flow.note.count)}", font=small,
                 cls="flow-box flow-box-note", line_h=small_h)
            y = max(y + h, ny + nh)
        else:
            y += h
        if i < len(flow.steps) - 1:
            y += gap_y
    # the vertical arrows between consecutive steps
    for (y0, h0), (y1, _) in zip(boxes, boxes[1:]):
        parts.append(f'<line x1="{cx:.0f}" y1="{y0 + h0:.0f}" x2="{cx:.0f}" y2="{y1 - 2:.0f}" '
                     f'class="flow-arrow" {arrow}/>')
    width = ex_x + ex_w + 16
    if flow.analysed:
        y += gap_y
        k = len(flow.analysed)
        col_w = max(250.0, (width - 2 * left - (k - 1) * 14) / k)
        total = k * col_w + (k - 1) * 14
        width = max(width, total + 2 * left)
        x0 = (width - total) / 2
        bus = y - gap_y / 2
        last_y, last_h = boxes[-1] if boxes else (y - gap_y, 0)
        parts.append(f'<line x1="{cx:.0f}" y1="{last_y + last_h:.0f}" x2="{cx:.0f}" '
                     f'y2="{bus:.0f}" class="flow-arrow"/>')
        heights = []
        for j, a in enumerate(flow.analysed):
            x = x0 + j * (col_w + 14)
            mx = x + col_w / 2 if k > 1 else cx
            parts.append(f'<polyline points="{cx:.0f},{bus:.0f} {mx:.0f},{bus:.0f} {mx:.0f},'
                         f'{y - 2:.0f}" class="flow-arrow" fill="none" {arrow}/>')
            lines = _wrap(f"Analysed at {a.label} (baseline and {a.label} values)", col_w - 16,
                          small)
            heading = len(lines)
            for m in a.markers:
                excluded = []
                if m.missing_baseline:
                    excluded.append(f"{fmt_count(m.missing_baseline)} no baseline")
                if m.missing_timepoint:
                    excluded.append(f"{fmt_count(m.missing_timepoint)} no {a.label} value")
                lines += _wrap(f"{m.label}: n = {fmt_count(m.analysable)}", col_w - 24, small)
                if excluded:
                    lines += ["    " + line for line in
                              _wrap(f"excluded: {', '.join(excluded)}", col_w - 48, small)]
            heights.append(_box(parts, x, y, col_w, lines, None, font=small,
                                cls="flow-box flow-box-marker", line_h=small_h,
                                left_from=heading))
        y += max(heights)
    height = y + 12
    steps = "; ".join(
        [f"{s.label}: {fmt_count(s.count)}" + (f" (excluded before it, {s.excluded.label}: "
                                               f"{fmt_count(s.excluded.count)})"
                                               if s.excluded else "") for s in flow.steps]
        + ([f"{flow.note.label}: {fmt_count(flow.note.count)}"] if flow.note else [])
        + [f"analysed at {a.label}: " + ", ".join(f"{m.label} {fmt_count(m.analysable)}"
                                                  for m in a.markers) for a in flow.analysed])
    defs = (f'<defs><marker id="{uid}-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>')
    return (f'<svg role="img" aria-labelledby="{uid}-title {uid}-desc" class="flow-svg" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
            f'xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{uid}-title">Patient flow</title>'
            f'<desc id="{uid}-desc">{escape(steps)}</desc>{defs}{"".join(parts)}</svg>')


__all__ = ["LOG_SCALE_MARKERS", "WATERFALL_CAP_PCT", "trajectory_svg", "waterfall_svg", "flow_svg"]


#: Early and late start (the secondary analysis "time from recognition to treatment").
COLOR_EARLY = "#1f5fa8"
COLOR_LATE = "#c0502a"
COLOR_UNCLASSIFIED = "#8a97a6"
#: Above this many patients the delay figure drops the patient labels (one row each).
DELAY_LABELLED_MAX = 40


def delay_svg(patients: pd.DataFrame, definition: dict, *, uid: str = "delay") -> str:
    """Each patient's hours from recognition (the first phenotype criterion met, hour 0) to the
    first dose of the index drug, one row per patient sorted by delay: a line from recognition
    to the dose and a dot at the dose, coloured early / late start; the cut drawn when the
    groups are cut on this delay (``[recognition] early_start_from = "recognition"``). Read
    from the per-patient listing (``hours_recognition_to_index``, ``start_group``); patients
    without a phenotype criterion met are counted in the description, not drawn."""
    drug = index_drug(definition)
    rec = get_path(definition, "recognition", default={}) or {}
    cut = float(rec.get("early_start_cut_hours", 120.0) or 120.0)
    from_recognition = rec.get("early_start_from", "recognition") == "recognition"
    title = f"Hours from recognition to the first {drug} dose, each patient"
    p = patients if patients is not None else pd.DataFrame()
    if "hours_recognition_to_index" not in p.columns or p.empty:
        return _no_data_svg(title, "no patient in the study", uid=uid)
    hours = pd.to_numeric(p["hours_recognition_to_index"], errors="coerce")
    shown = p.assign(hours=hours)[hours.notna()].sort_values(["hours", "patient"],
                                                             kind="stable")
    missing = int(hours.isna().sum())
    if shown.empty:
        return _no_data_svg(title, "no patient met a phenotype criterion in the PICU stay",
                            uid=uid)
    groups = shown["start_group"].fillna("").astype(str)
    early = groups.str.startswith("early")
    late = groups.str.startswith("late")
    colors = np.where(early, COLOR_EARLY, np.where(late, COLOR_LATE, COLOR_UNCLASSIFIED))
    n = len(shown)
    labelled = n <= DELAY_LABELLED_MAX
    fig = Figure(figsize=(7.2, min(7.0, max(2.0, 0.7 + 0.11 * n))), layout="constrained")
    with rc_context(_RC):
        ax = fig.add_subplot()
        y = np.arange(n)
        ax.hlines(y, 0, shown["hours"], color=colors, lw=1.0, alpha=0.7, zorder=2)
        ax.scatter(shown["hours"], y, s=18, color=colors, zorder=3, edgecolors="white",
                   linewidths=0.4)
        ax.axvline(0, color="#555555", lw=0.9, zorder=1)
        lo, hi = float(shown["hours"].min()), float(shown["hours"].max())
        if from_recognition:
            ax.axvline(cut, color="#555555", lw=0.9, ls="--", zorder=1)
            hi = max(hi, cut)
        pad = max(6.0, 0.05 * (hi - min(lo, 0)))
        ax.set_xlim(min(lo, 0) - pad, hi + pad)
        ax.set_ylim(-0.8, n - 0.2)
        ax.invert_yaxis()
        if labelled:
            ax.set_yticks(y, shown["patient"].astype(str).tolist(), fontsize=7)
        else:
            ax.set_yticks([])
        ax.set_xlabel(f"Hours from recognition (0) to the first {drug} dose; negative: {drug} "
                      f"given first")
        ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=COLOR_EARLY, marker="o", lw=1.0, ms=4,
                          label=f"early start (≤ {cut:g} h)"),
                   Line2D([], [], color=COLOR_LATE, marker="o", lw=1.0, ms=4,
                          label=f"late start (> {cut:g} h)")]
        if from_recognition:
            handles.append(Line2D([], [], color="#555555", lw=0.9, ls="--",
                                  label=f"cut: {cut:g} h"))
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3,
                  fontsize=7, frameon=False, borderaxespad=0.2)
    desc = (f"{n} patients drawn, {int(early.sum())} early and {int(late.sum())} late start"
            + (f"; {missing} without a phenotype criterion met in the PICU stay not drawn"
               if missing else "")
            + ("" if from_recognition else
               "; early and late are cut on the hours from PICU admission, not on this delay")
            + ".")
    return _svg_text(fig, uid=uid, title=title, desc=desc)
