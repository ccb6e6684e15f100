"""Inline SVG for the patient page: one time axis with the markers, the therapy and support bars
and the criteria strip beneath. Pure presentation: values come from web.patient; colours mark what
the criteria columns say ('met'), never a threshold of their own.
"""

from __future__ import annotations

import datetime as dt
from html import escape

import pandas as pd

WIDTH = 1000
LEFT = 170
RIGHT = 90
ROW_H = 46
BAR_H = 18
STRIP_H = 22
#: Width of the label gutter left of the plot and a conservative width per character of a bold
#: 11-px label (system sans-serif); labels wider than the gutter use their short form.
LABEL_X = 8
LABEL_CHAR_W = 7.0
#: Event labels (recognition to treatment) get a band of their own above the marker rows, one
#: line each, so they never overlap each other, a marker row or the tick labels; EVENT_CHAR_W is
#: a conservative width per character of a 10-px label.
EVENT_LINE_H = 13
EVENT_CHAR_W = 6.2


def fits(text: str) -> bool:
    """Whether a row label fits in the gutter left of the plot (LEFT - LABEL_X - 6 px)."""
    return len(text) * LABEL_CHAR_W <= LEFT - LABEL_X - 6


def row_label(label: str, short: str | None = None) -> str:
    """The label drawn in the gutter: the full one if it fits, else the short one, else the
    full one cut with an ellipsis (the full label is always in the row's tooltip)."""
    for text in (label, short):
        if text and fits(text):
            return text
    text = short or label
    n = int((LEFT - LABEL_X - 6) // LABEL_CHAR_W) - 1
    return text[:max(n, 1)] + "…"


def _fmt(value: float) -> str:
    if value is None or value != value:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class Axis:
    def __init__(self, lo: dt.datetime, hi: dt.datetime):
        if hi <= lo:
            hi = lo + dt.timedelta(hours=1)
        self.lo, self.hi = pd.Timestamp(lo), pd.Timestamp(hi)
        self.span = (self.hi - self.lo).total_seconds()

    def x(self, t) -> float:
        t = pd.Timestamp(t)
        frac = (t - self.lo).total_seconds() / self.span
        return LEFT + max(0.0, min(1.0, frac)) * (WIDTH - LEFT - RIGHT)

    def ticks(self) -> list[tuple[float, str]]:
        days = self.span / 86400
        step = 1 if days <= 10 else 2 if days <= 20 else 7
        start = self.lo.normalize() + pd.Timedelta(days=1)
        out = []
        t = start
        while t <= self.hi:
            out.append((self.x(t), t.strftime("%d %b")))
            t += pd.Timedelta(days=step)
        return out


def timeline_svg(axis: Axis, markers: list[dict], bars: list[dict], strip: list[dict],
                 events: list[tuple] = ()) -> str:
    """markers: {label, short_label (optional), unit, points: [(time, value)]}; bars: {label, spans: [(start, end|None,
    text)]} (end None = a single dose tick); strip: {label, cells: [(time, text, met)]};
    events: [(time, text)] drawn as labelled vertical lines across the plot (recognition to
    treatment: a criterion first met, the first dose)."""
    events = sorted(((t, text) for t, text in events if t is not None),
                    key=lambda e: pd.Timestamp(e[0]))
    band = len(events) * EVENT_LINE_H + (6 if events else 0)
    height = 30 + band + len(markers) * ROW_H + 14 + len(bars) * (BAR_H + 6) + 14 \
        + len(strip) * (STRIP_H + 4) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
           f'class="timeline" role="img" aria-label="Patient timeline">']
    plot_w = WIDTH - LEFT - RIGHT
    for x, label in axis.ticks():
        out.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 24}" class="grid"/>')
        out.append(f'<text x="{x:.1f}" y="14" class="tick">{escape(label)}</text>')
        out.append(f'<text x="{x:.1f}" y="{height - 8}" class="tick">{escape(label)}</text>')
    y = 24 + band
    for m in markers:
        pts = [(t, v) for t, v in m["points"] if v == v and v is not None]
        out.append(f'<text x="{LABEL_X}" y="{y + 18}" class="label"><title>'
                   f'{escape(m["label"])}</title>'
                   f'{escape(row_label(m["label"], m.get("short_label")))}</text>')
        out.append(f'<text x="8" y="{y + 32}" class="unit">{escape(m["unit"])}</text>')
        out.append(f'<rect x="{LEFT}" y="{y}" width="{plot_w}" height="{ROW_H - 8}" class="band"/>')
        if pts:
            values = [v for _, v in pts]
            lo, hi = min(values), max(values)
            span = (hi - lo) or (abs(hi) or 1.0)
            base = lo - (0 if hi != lo else span / 2)
            coords = [(axis.x(t), y + ROW_H - 12 - (v - base) / span * (ROW_H - 18))
                      for t, v in pts]
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            out.append(f'<polyline points="{path}" class="line"/>')
            for (cx, cy), (t, v) in zip(coords, pts):
                out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.6" class="pt">'
                           f'<title>{escape(m["label"])} {_fmt(v)} {escape(m["unit"])} at '
                           f'{pd.Timestamp(t):%Y-%m-%d %H:%M}</title></circle>')
            out.append(f'<text x="{WIDTH - RIGHT + 6}" y="{y + 18}" class="last">'
                       f'{_fmt(values[-1])}</text>')
        else:
            out.append(f'<text x="{LEFT + 8}" y="{y + 22}" class="none">not measured</text>')
        y += ROW_H
    y += 14
    for b in bars:
        out.append(f'<text x="{LABEL_X}" y="{y + 13}" class="label"><title>'
                   f'{escape(b["label"])}</title>{escape(row_label(b["label"]))}</text>')
        for start, end, text in b["spans"]:
            x0 = axis.x(start)
            if end is None:
                out.append(f'<rect x="{x0 - 1.5:.1f}" y="{y}" width="3" height="{BAR_H}" '
                           f'class="dose"><title>{escape(text)}</title></rect>')
            else:
                x1 = axis.x(end)
                out.append(f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 2):.1f}" '
                           f'height="{BAR_H - 6}" class="span"><title>{escape(text)}</title></rect>')
        y += BAR_H + 6
    y += 14
    for s in strip:
        out.append(f'<text x="{LABEL_X}" y="{y + 15}" class="label"><title>'
                   f'{escape(s["label"])}</title>{escape(row_label(s["label"]))}</text>')
        for t, text, met in s["cells"]:
            cx = axis.x(t)
            cls = "cell met" if met else "cell"
            out.append(f'<rect x="{cx - 22:.1f}" y="{y}" width="44" height="{STRIP_H}" '
                       f'class="{cls}"/><text x="{cx:.1f}" y="{y + 15}" class="celltext">'
                       f'{escape(text)}</text>')
        y += STRIP_H + 4
    for i, (t, text) in enumerate(events):
        x = axis.x(t)
        cls = "event dose" if "dose" in text else "event met"
        # one line each, in time order; a label that would run past the plot's right edge is
        # written leftwards from its line
        if x + 3 + len(text) * EVENT_CHAR_W > WIDTH - 4:
            tx, anchor = x - 3, ' text-anchor="end"'
        else:
            tx, anchor = x + 3, ""
        ty = 24 + EVENT_LINE_H * (i + 1) - 3
        out.append(f'<g class="{cls}"><line x1="{x:.1f}" y1="{ty + 3}" x2="{x:.1f}" '
                   f'y2="{height - 24}"/>'
                   f'<text x="{tx:.1f}" y="{ty}"{anchor}>{escape(text)}</text>'
                   f'<title>{escape(text)} at {pd.Timestamp(t):%Y-%m-%d %H:%M} UTC</title></g>')
    out.append("</svg>")
    return "".join(out)


def sparkline_svg(values: list[float], width: int = 70, height: int = 18) -> str:
    """A tiny trend line for the census (last values of one marker)."""
    vals = [v for v in values if v is not None and v == v]
    if len(vals) < 2:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    step = width / (len(vals) - 1)
    pts = " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
                   for i, v in enumerate(vals))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'class="spark"><polyline points="{pts}"/></svg>')
