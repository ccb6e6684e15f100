"""Inline SVG figures for the offline report: marker trajectories, waterfalls, the flow diagram.

Each function returns one ``<svg>`` element as text, with ``role="img"``, a ``<title>`` and a
``<desc>`` (accessible name and description), no external references (text is drawn as SVG text
in the page's system font stack, never as a linked font or image), and element ids unique to the
figure so several can be inlined in one page.

Everything plotted is read from ``StudyResults``: patient values from ``observations``, group
mean ± SEM from ``results`` (clinical reference §10.4). The one piece of arithmetic is the
per-patient % change in the waterfall, a display of two observed values of one patient (see
:func:`waterfall_svg`).
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

from hyperinflam.report.views import MarkerRow, get_path

#: Markers drawn on a logarithmic y axis (values spanning orders of magnitude). Named setting.
LOG_SCALE_MARKERS = frozenset({"ferritin", "scd25", "d_dimer", "triglycerides"})

#: Waterfall bars above this % change are drawn cut at it, with their value written on the bar
#: (one patient's +1000% must not flatten everybody else's bars). Named setting.
WATERFALL_CAP_PCT = 200.0

COLOR_PATIENT = "#8a97a6"
COLOR_BASELINE = "#1f5fa8"
COLOR_DAY7 = "#c0502a"
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


def trajectory_svg(marker: MarkerRow, observations: pd.DataFrame, definition: dict,
                   *, uid: str) -> str:
    """Each patient's measured values from day ``trajectory_from_days`` to ``trajectory_to_days``
    (default −2 … 10) as thin lines with points; the values chosen as baseline and day 7 marked;
    group mean ± SEM at baseline (day 0) and day 7 from the results table; the baseline and day-7
    windows shaded (clinical reference §10.4, §12.1-§12.2). Log y axis for
    :data:`LOG_SCALE_MARKERS`."""
    windows = get_path(definition, "windows", default={}) or {}
    x_from = float(windows.get("trajectory_from_days", -2))
    x_to = float(windows.get("trajectory_to_days", 10))
    day7_days = float(windows.get("day7_target_hours", 168)) / 24.0
    obs = observations[observations["variable"] == marker.variable].copy()
    obs["days"] = pd.to_numeric(obs["hours_from_index"], errors="coerce") / 24.0
    obs["value"] = pd.to_numeric(obs["value"], errors="coerce")
    obs = obs[(obs["days"] >= x_from) & (obs["days"] <= x_to) & obs["value"].notna()]
    log = marker.variable in LOG_SCALE_MARKERS
    if log:
        obs = obs[obs["value"] > 0]  # cannot be drawn on a log axis (noted in the description)
    unit = marker.unit_display

    fig = Figure(figsize=(5.2, 3.3), layout="constrained")
    with rc_context(_RC):
        ax = fig.add_subplot()
        b0, b1 = windows.get("baseline_from_hours", -24), windows.get("baseline_to_hours", 12)
        hw = float(windows.get("day7_half_width_hours", 24)) / 24.0
        ax.axvspan(float(b0) / 24, float(b1) / 24, color=COLOR_WINDOW, zorder=0, lw=0)
        ax.axvspan(day7_days - hw, day7_days + hw, color=COLOR_WINDOW, zorder=0, lw=0)
        ax.axvline(0, color="#9aa5b1", lw=0.8, ls="--", zorder=1)
        for _, pts in obs.sort_values("days").groupby("patient", sort=True):
            ax.plot(pts["days"], pts["value"], color=COLOR_PATIENT, lw=0.8, alpha=0.8,
                    marker="o", ms=2.2, zorder=2)
        role = obs["role"].fillna("") if "role" in obs else pd.Series("", index=obs.index)
        base, d7 = obs[role == "baseline"], obs[role == "day7"]
        ax.scatter(base["days"], base["value"], s=16, color=COLOR_BASELINE, zorder=3,
                   label="value used as baseline", edgecolors="white", linewidths=0.4)
        ax.scatter(d7["days"], d7["value"], s=16, marker="s", color=COLOR_DAY7, zorder=3,
                   label="value used at day 7", edgecolors="white", linewidths=0.4)
        for x, mean, sem in ((0.0, marker.baseline_mean, marker.baseline_sem),
                             (day7_days, marker.day7_mean, marker.day7_sem)):
            if mean is None:
                continue
            err = None if sem is None else [[min(sem, mean * 0.999) if log else sem], [sem]]
            ax.errorbar([x], [mean], yerr=err, fmt="D", color=COLOR_MEAN, ms=5, capsize=4,
                        lw=1.4, zorder=4, label="group mean ± SEM" if x == 0 else None)
        ax.set_xlim(x_from - 0.3, x_to + 0.3)
        ax.set_xticks(np.arange(math.ceil(x_from), math.floor(x_to) + 1, 1))
        ax.set_xlabel("Days from the first anakinra dose")
        ax.set_ylabel(f"{marker.label} ({unit})" if unit else marker.label)
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(_plain_number))
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, fontsize=7, frameon=False,
                  borderaxespad=0.2, handletextpad=0.3, columnspacing=1.0)
    n_pat = obs["patient"].nunique()
    title = f"{marker.label}: each patient's values from day {x_from:g} to day {x_to:g}"
    desc = (f"{n_pat} patients with values in the window; "
            f"{len(base)} baseline and {len(d7)} day-7 values used in the analysis are marked. "
            f"Group mean ± SEM: baseline {marker.cells['baseline']}, day 7 {marker.cells['day7']}"
            f" {unit}. " + ("Logarithmic y axis. " if log else "")
            + "Shaded bands: the baseline and day-7 windows.")
    return _svg_text(fig, uid=uid, title=title, desc=desc)


def waterfall_svg(marker: MarkerRow, observations: pd.DataFrame, *, uid: str) -> str:
    """Per-patient % change from baseline to day 7, one bar per patient, sorted; the median
    per-patient % change from the results table drawn as a line.

    The bar heights are ``100 × (day 7 − baseline) / baseline`` of one patient's two observed
    values (``observations`` rows with role baseline and day7): a display of patient-level data,
    like plotting the two points, not a group statistic. Every group statistic shown (the median
    line) is looked up in ``results``."""
    obs = observations[(observations["variable"] == marker.variable)
                       & observations["role"].isin(["baseline", "day7"])]
    wide = (obs.assign(value=pd.to_numeric(obs["value"], errors="coerce"))
            .pivot_table(index="patient", columns="role", values="value", aggfunc="first"))
    if {"baseline", "day7"} <= set(wide.columns):
        wide = wide.dropna(subset=["baseline", "day7"])
        wide = wide[wide["baseline"] != 0]
        pct = (100.0 * (wide["day7"] - wide["baseline"]) / wide["baseline"]).sort_values(ascending=False)
    else:
        pct = pd.Series(dtype=float)

    fig = Figure(figsize=(3.6, 3.3), layout="constrained")
    with rc_context(_RC):
        ax = fig.add_subplot()
        values = pct.to_numpy()
        shown = np.minimum(values, WATERFALL_CAP_PCT)
        colors = [COLOR_DAY7 if v > 0 else COLOR_BASELINE for v in values]
        ax.bar(np.arange(len(pct)), shown, color=colors, width=0.75)
        for i in np.flatnonzero(values > WATERFALL_CAP_PCT):  # cut bars: write the true value
            ax.text(i, WATERFALL_CAP_PCT * 0.97, f"+{values[i]:,.0f}%", rotation=90, ha="center",
                    va="top", fontsize=6.5, color="white")
        ax.axhline(0, color="#555555", lw=0.8)
        if marker.median_pct_change is not None:
            ax.axhline(marker.median_pct_change, color=COLOR_MEAN, lw=1, ls="--",
                       label=f"median per patient {marker.cells['median_pct_change']}")
            ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, frameon=False,
                      borderaxespad=0.2)
        ax.set_xticks(np.arange(len(pct)))
        ax.set_xticklabels(list(pct.index), rotation=90, fontsize=6.5)
        ax.set_xlim(-0.7, max(len(pct), 1) - 0.3)
        ax.set_ylabel("Change from baseline to day 7 (%)")
        ax.set_xlabel("Patient")
    title = f"{marker.label}: per-patient % change from baseline to day 7"
    falls = int((pct < 0).sum())
    cut = int((pct > WATERFALL_CAP_PCT).sum())
    desc = (f"{len(pct)} patients with both values; {falls} fell and {len(pct) - falls} rose or "
            f"did not change. Median per-patient change {marker.cells['median_pct_change']}."
            + (f" {cut} bars above +{WATERFALL_CAP_PCT:.0f}% are cut, their value written on them."
               if cut else ""))
    return _svg_text(fig, uid=uid, title=title, desc=desc)


def flow_svg(main: list, per_marker: list, *, uid: str = "flow") -> str:
    """The flow diagram (PICU stays → stays with anakinra → cohort → analysable per marker) as a
    hand-built SVG: boxes with the counts looked up in the results table (section ``flow``)."""
    from hyperinflam.report.views import fmt_count

    box_w, box_h, gap_y = 300, 46, 26
    col_x = 20
    longest = max((len(s.label) for s in per_marker), default=10)
    m_w, m_h, m_gap = max(120, int(longest * 6.6) + 20), 40, 10  # ~6.6 px per char at 12 px
    n_m = len(per_marker)
    width = max(col_x * 2 + box_w, col_x * 2 + n_m * m_w + max(n_m - 1, 0) * m_gap)
    cx = width / 2
    parts, y = [], 12
    arrow = (f'<defs><marker id="{uid}-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>')
    for i, step in enumerate(main):
        x = cx - box_w / 2
        parts.append(f'<rect x="{x:.0f}" y="{y}" width="{box_w}" height="{box_h}" rx="4" '
                     'class="flow-box"/>')
        parts.append(f'<text x="{cx:.0f}" y="{y + 19}" text-anchor="middle" class="flow-label">'
                     f'{escape(step.label)}</text>')
        parts.append(f'<text x="{cx:.0f}" y="{y + 37}" text-anchor="middle" class="flow-count">'
                     f'n = {fmt_count(step.count)}</text>')
        y += box_h
        if i < len(main) - 1 or per_marker:
            parts.append(f'<line x1="{cx:.0f}" y1="{y}" x2="{cx:.0f}" y2="{y + gap_y - 2}" '
                         f'class="flow-arrow" marker-end="url(#{uid}-arrow)"/>')
            y += gap_y
    if per_marker:
        total = n_m * m_w + (n_m - 1) * m_gap
        x0 = cx - total / 2
        bus_y = y - gap_y / 2
        for j, step in enumerate(per_marker):
            x = x0 + j * (m_w + m_gap)
            mx = x + m_w / 2
            parts.append(f'<polyline points="{cx:.0f},{bus_y:.0f} {mx:.0f},{bus_y:.0f} '
                         f'{mx:.0f},{y - 2}" class="flow-arrow" fill="none" '
                         f'marker-end="url(#{uid}-arrow)"/>')
            label = step.label
            parts.append(f'<rect x="{x:.0f}" y="{y}" width="{m_w}" height="{m_h}" rx="4" '
                         'class="flow-box flow-box-marker"/>')
            parts.append(f'<text x="{mx:.0f}" y="{y + 16}" text-anchor="middle" '
                         f'class="flow-label flow-small">{escape(label)}</text>')
            parts.append(f'<text x="{mx:.0f}" y="{y + 32}" text-anchor="middle" '
                         f'class="flow-count flow-small">n = {fmt_count(step.count)}</text>')
        y += m_h
    height = y + 12
    steps = "; ".join(f"{s.label}: {fmt_count(s.count)}" for s in [*main, *per_marker])
    return (f'<svg role="img" aria-labelledby="{uid}-title {uid}-desc" class="flow-svg" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{uid}-title">Patient flow</title>'
            f'<desc id="{uid}-desc">{escape(steps)}</desc>{arrow}{"".join(parts)}</svg>')


__all__ = ["LOG_SCALE_MARKERS", "WATERFALL_CAP_PCT", "trajectory_svg", "waterfall_svg", "flow_svg"]
