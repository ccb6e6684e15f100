"""Network studies in the report layer: the site package's ``preview.html``, the pooled
``report.html`` with a forest plot per marker, the pooled ``results.csv`` / ``results.json``,
and the one-call helpers behind ``hyperinflam study share`` and ``hyperinflam study pool``.

The statistics come from :mod:`hyperinflam.study.network`; this module only renders and writes.
Both pages are self-contained and offline (inline CSS and SVG, system fonts, no script, no
external reference), like the study report (:mod:`hyperinflam.report.html`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from html import escape
from importlib.resources import files as package_files
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from hyperinflam import __version__
from hyperinflam.report.files import RESULTS_CSV, RESULTS_JSON, _ordered, results_document
from hyperinflam.report.plots import _RC, _svg_text
from hyperinflam.report.views import (
    display_unit,
    fmt_count,
    fmt_num,
    fmt_p,
    fmt_pct,
    get_path,
)
from hyperinflam.study.network import meta as meta_mod
from hyperinflam.study.network.package import (
    CONTINUOUS_CSV,
    COUNTS_CSV,
    MANIFEST,
    MARKERS_CSV,
    PREVIEW,
    RELATIONS_JSON,
    build_site_package,
    sha256,
    write_package_zip,
)
from hyperinflam.study.network.pool import (
    NOT_POOLABLE,
    POOL_COLUMNS,
    POOLED,
    pool_packages,
    read_packages,
)
from hyperinflam.study.network.siterun import read_site_run
from hyperinflam.study.network.suppression import DEFAULT_MIN_CELL, NOT_RECORDED
from hyperinflam.study.results import StudyResults

REPORT_HTML = "report.html"
SECTION_TITLES = {"flow": "Patient flow", "baseline": "Baseline characteristics",
                  "cotherapy": "Co-therapy", "safety": "Safety after the index dose",
                  "phenotype": "Phenotype at the index time",
                  "exposure": "Index-drug exposure (recorded / not recorded only)",
                  "outcome": "Outcome (recorded / not recorded only)",
                  "marker": "Markers: patients with both values"}
COLOR_SITE = "#1f5fa8"
COLOR_POOLED = "#111111"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(package_files("hyperinflam.report") / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _css() -> str:
    folder = package_files("hyperinflam.report") / "templates"
    return ((folder / "report.css").read_text(encoding="utf-8") + "\n"
            + (folder / "network.css").read_text(encoding="utf-8"))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# ---------------------------------------------------------------------------------------------
# preview.html: every file of the package, as written
# ---------------------------------------------------------------------------------------------
def _rows(data: bytes) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    return list(reader.fieldnames or []), list(reader)


def render_preview(files: dict[str, bytes], manifest: dict) -> str:
    """The package's preview from its data files (as bytes) and manifest fields: what the site
    reviews before sending the zip. Every value is shown as written in the files."""
    counts_cols, counts = _rows(files[COUNTS_CSV])
    marker_cols, markers = _rows(files[MARKERS_CSV])
    cont_cols, continuous = _rows(files[CONTINUOUS_CSV])
    relations = json.loads(files[RELATIONS_JSON].decode("utf-8"))
    sections = []
    for section in dict.fromkeys(r["section"] for r in counts):
        sections.append({"id": section, "title": SECTION_TITLES.get(section, section),
                         "rows": [r for r in counts if r["section"] == section]})
    study = manifest.get("study") or {}
    engine = manifest.get("engine") or {}
    context = {
        "css": _css(), "version": __version__, "manifest": manifest, "study": study,
        "engine": f"{engine.get('name')} {engine.get('version') or ''}".strip(),
        "sections": sections, "counts_columns": counts_cols,
        "marker_columns": marker_cols, "markers": markers,
        "continuous_columns": cont_cols, "continuous": continuous, "relations": relations,
        "hashes": {name: sha256(data) for name, data in sorted(files.items())},
        "file_names": [COUNTS_CSV, MARKERS_CSV, CONTINUOUS_CSV, RELATIONS_JSON, MANIFEST,
                       PREVIEW],
    }
    return _environment().get_template("network_preview.html.j2").render(**context)


@dataclass
class ShareSummary:
    path: Path
    site: str
    min_cell: int
    sha256: str
    cells: int
    small: int
    complementary: int
    markers_shared: int  # marker timepoints whose n (>= 1) and sums are shared
    markers_total: int
    markers_empty: int = 0  # marker timepoints with no patient (n = 0 shared)


def share_site(results_dir: str | Path, site: str, out: str | Path, *,
               min_cell: int = DEFAULT_MIN_CELL) -> ShareSummary:
    """``hyperinflam study share``: read the run, build the package, render its preview,
    write the zip."""
    run = read_site_run(results_dir)
    package = build_site_package(run, site, min_cell)
    preview = render_preview(package.files, package.manifest)
    path = write_package_zip(package.finalize(preview), out)
    _, markers = _rows(package.files[MARKERS_CSV])
    sup = package.manifest["suppression"]
    return ShareSummary(path, site, min_cell, sha256(path.read_bytes()), sup["cells"],
                        sup["small"], sup["complementary"],
                        sum(1 for m in markers if m["status"] == "published"
                            and m["n"] not in ("", "0")), len(markers),
                        sum(1 for m in markers if m["status"] == "published"
                            and m["n"] == "0"))


# ---------------------------------------------------------------------------------------------
# The pooled report
# ---------------------------------------------------------------------------------------------
class _Index:
    """Look-ups in the pooled results dataset."""

    def __init__(self, results: pd.DataFrame):
        self.frame = results
        self.rows: dict[tuple, dict] = {}
        for rec in results.to_dict("records"):
            key = (rec["section"], rec["group"], rec["variable"], rec["level"] or None,
                   rec["timepoint"] or None, rec["statistic"], rec.get("method")
                   if rec["statistic"] == "p_value" and rec.get("method") in
                   {v[0] for v in NOT_POOLABLE.values()} else None)
            self.rows.setdefault(key, rec)

    def get(self, section, group, variable, statistic, *, level=None, timepoint=None,
            method=None) -> dict | None:
        return self.rows.get((section, group, variable, level, timepoint, statistic, method))

    def value(self, *args, **kwargs) -> float | None:
        rec = self.get(*args, **kwargs)
        if rec is None:
            return None
        v = rec["value"]
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _shown_suppressed(warning: str | None) -> str:
    if warning and warning.startswith(NOT_RECORDED):
        return NOT_RECORDED
    if warning and "< " in warning:
        return warning.split(": ", 1)[-1]
    if warning and "suppressed" in warning:
        return "suppressed"
    return "–"


def forest_svg(title: str, unit: str, sites: list[dict], pooled: list[dict], *,
               uid: str) -> str:
    """One forest plot: each site's mean paired difference with its 95% CI (normal, from its
    standard error, the variance the meta-analysis weighs), then the three pooled estimates
    as diamonds; a vertical line at no change."""
    rows = len(sites) + len(pooled) + 1
    fig = Figure(figsize=(7.4, 0.34 * rows + 1.0), layout="constrained")
    with rc_context(_RC):
        ax = fig.add_subplot(1, 1, 1)
        y = list(range(rows, 0, -1))
        labels = []
        lows = [s["ci_low"] for s in sites] + [p["ci_low"] for p in pooled]
        highs = [s["ci_high"] for s in sites] + [p["ci_high"] for p in pooled]
        for i, s in enumerate(sites):
            ax.plot([s["ci_low"], s["ci_high"]], [y[i], y[i]], color=COLOR_SITE, lw=1.2)
            size = 4 + 8 * math.sqrt(max(s["weight"], 0.0) / 100.0)
            ax.plot([s["estimate"]], [y[i]], marker="s", ms=size, color=COLOR_SITE, ls="none")
            labels.append(f"{s['site']}  (n = {s['n']})")
        labels.append("")
        for j, p in enumerate(pooled):
            yy = y[len(sites) + 1 + j]
            xs = [p["ci_low"], p["estimate"], p["ci_high"], p["estimate"], p["ci_low"]]
            ys = [yy, yy + 0.28, yy, yy - 0.28, yy]
            ax.fill(xs, ys, color=COLOR_POOLED, alpha=0.85 if j == 0 else 0.45, lw=0)
            labels.append(p["label"])
        ax.axvline(0.0, color="#888888", lw=0.8, ls="--")
        ax.set_yticks(y, labels)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        lo, hi = min(lows + [0.0]), max(highs + [0.0])
        pad = 0.05 * (hi - lo or 1.0)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(0.4, rows + 0.6)
        ax.set_xlabel(f"Mean paired difference, follow-up − baseline ({unit})" if unit
                      else "Mean paired difference, follow-up − baseline")
    desc = "; ".join(f"{s['site']}: {s['estimate']:.4g} ({s['ci_low']:.4g} to "
                     f"{s['ci_high']:.4g})" for s in sites)
    desc += "; " + "; ".join(f"{p['label']}: {p['estimate']:.4g} ({p['ci_low']:.4g} to "
                             f"{p['ci_high']:.4g})" for p in pooled)
    return _svg_text(fig, uid=uid, title=title, desc=desc)


@dataclass
class _Line:
    label: str
    cells: list[str]
    indent: bool = False
    heading: bool = False
    note: str | None = None


@dataclass
class _Table:
    id: str
    title: str
    lines: list[_Line] = field(default_factory=list)


def _count_text(idx: _Index, section: str, group: str, variable: str, level,
                n_sites: int | None = None) -> str:
    rec = idx.get(section, group, variable, "count", level=level)
    if rec is None:
        return "–"
    count = idx.value(section, group, variable, "count", level=level)
    if count is None:
        return _shown_suppressed(rec.get("warning")) if group != POOLED else "–"
    pct = idx.value(section, group, variable, "percent", level=level)
    shown = f"{fmt_count(count)} ({fmt_pct(pct)})" if pct is not None else fmt_count(count)
    if group == POOLED and rec.get("warning"):  # not every site's count is in the sum
        k = idx.value(section, POOLED, variable, "sites", level=level)
        shown += f" [{fmt_count(k)}/{n_sites}]" if k is not None and n_sites else " *"
    return shown


def _note(rec: dict | None) -> str | None:
    warning = (rec or {}).get("warning")
    return warning if warning and warning.startswith("not included") else None


def _count_tables(idx: _Index, groups: list[str]) -> list[_Table]:
    n_sites = len(groups) - 1
    res = idx.frame
    pooled = res[(res["group"] == POOLED)]
    tables = []
    for section in ("flow", "baseline", "cotherapy", "safety", "phenotype"):
        sec = pooled[pooled["section"] == section]
        if sec.empty:
            continue
        table = _Table(section, SECTION_TITLES[section])
        for variable in dict.fromkeys(sec["variable"]):
            vrows = sec[sec["variable"] == variable]
            label = next(iter(vrows["label"].dropna()), variable)
            stats = set(vrows["statistic"])
            if "count" in stats:
                levels = list(dict.fromkeys(vrows.loc[vrows["statistic"] == "count", "level"]))
                if levels == [None]:
                    rec = idx.get(section, POOLED, variable, "count")
                    table.lines.append(_Line(
                        label, [_count_text(idx, section, g, variable, None, n_sites)
                                for g in groups],
                        indent=section == "flow" and variable.startswith("excluded_"),
                        note=_note(rec)))
                    continue
                table.lines.append(_Line(label, ["" for _ in groups], heading=True))
                for level in levels:
                    rec = idx.get(section, POOLED, variable, "count", level=level)
                    table.lines.append(_Line(
                        level, [_count_text(idx, section, g, variable, level, n_sites)
                                for g in groups],
                        indent=True, note=_note(rec)))
            elif "n" in stats:  # a continuous characteristic
                unit = next(iter(vrows["unit"].dropna()), None)
                cells = []
                for g in groups:
                    n = idx.value(section, g, variable, "n")
                    mean = idx.value(section, g, variable, "mean")
                    sd = idx.value(section, g, variable, "sd")
                    if n is None:
                        rec = idx.get(section, g, variable, "n")
                        cells.append(_shown_suppressed((rec or {}).get("warning"))
                                     if g != POOLED else "–")
                        continue
                    star = " *" if g == POOLED and _note(idx.get(section, POOLED, variable,
                                                                 "n")) else ""
                    if mean is None:
                        cells.append(f"n = {fmt_count(n)}{star}")
                    else:
                        cells.append(f"{fmt_num(mean)} ± {fmt_num(sd)}{star}\n"
                                     f"n = {fmt_count(n)}")
                u = f", {display_unit(unit)}" if unit else ""
                shape = ", mean ± SD" if any("±" in c for c in cells) else ", n"
                table.lines.append(_Line(f"{label}{u}{shape}", cells,
                                         note=_note(idx.get(section, POOLED, variable, "n"))))
        tables.append(table)
    return tables


def _marker_keys(idx: _Index) -> list[tuple[str, str, str]]:
    """(marker, follow-up timepoint, change timepoint) in order."""
    res = idx.frame
    rows = res[(res["section"] == "marker") & (res["group"] == POOLED)
               & (res["statistic"] == "sites")]
    out = []
    for variable, change in zip(rows["variable"], rows["timepoint"]):
        followup = change.split(":", 1)[1] if ":" in change else None
        out.append((variable, followup, change))
    return out


def _followup_name(idx: _Index, variable: str, change: str, followup: str | None) -> str | None:
    if followup:
        return followup
    res = idx.frame
    tps = res[(res["section"] == "marker") & (res["variable"] == variable)
              & res["timepoint"].notna()]["timepoint"]
    return next((t for t in tps if t not in ("baseline", "change")), None)


def _ci(low, high) -> str:
    return f"{fmt_num(low)} to {fmt_num(high)}"


def _markers(idx: _Index, sites: list[str], labels: dict[str, str]) -> tuple[list, list, list]:
    """Rows of the pooled paired table, of the meta-analysis table, and the figures."""
    paired, metas, figures = [], [], []
    for variable, followup, change in _marker_keys(idx):
        followup = _followup_name(idx, variable, change, followup)
        base = f"baseline:{followup}" if ":" in change else "baseline"
        rec = idx.get("marker", POOLED, variable, "sites", timepoint=change)
        label = rec["label"]
        unit = next((r["unit"] for r in (idx.get("marker", POOLED, variable, "mean",
                                                  timepoint=base),) if r), None)
        u = display_unit(unit) if unit else ""
        tp_label = labels.get(followup or "", followup or "follow-up")
        n = idx.value("marker", POOLED, variable, "n", timepoint=change)
        k = idx.value("marker", POOLED, variable, "sites", timepoint=change)

        def mean_sd(group, timepoint):
            m = idx.value("marker", group, variable, "mean", timepoint=timepoint)
            s = idx.value("marker", group, variable, "sd", timepoint=timepoint)
            return "–" if m is None else f"{fmt_num(m)} ± {fmt_num(s)}"

        p_rec = idx.get("marker", POOLED, variable, "p_value", timepoint=change)
        paired.append({
            "label": label, "unit": u, "timepoint": tp_label,
            "sites": f"{fmt_count(k)} of {len(sites)}", "n": fmt_count(n) if n else "0",
            "baseline": mean_sd(POOLED, base), "followup": mean_sd(POOLED, followup),
            "difference": fmt_num(idx.value("marker", POOLED, variable, "mean_difference",
                                            timepoint=change)),
            "ci": _ci(idx.value("marker", POOLED, variable, "ci_low", timepoint=change),
                      idx.value("marker", POOLED, variable, "ci_high", timepoint=change)),
            "pct": fmt_pct(idx.value("marker", POOLED, variable, "pct_change_of_means",
                                     timepoint=change), signed=True),
            "t": fmt_num(idx.value("marker", POOLED, variable, "t_statistic",
                                   timepoint=change), 2),
            "df": fmt_count(idx.value("marker", POOLED, variable, "df", timepoint=change)),
            "p": fmt_p(idx.value("marker", POOLED, variable, "p_value", timepoint=change)),
            "note": "; ".join(w for w in ((p_rec or {}).get("warning"), _note(rec)) if w)
            or None,
        })
        # the meta-analysis and the forest plot
        estimates = []
        for method, short in ((meta_mod.FIXED, "Fixed effect"), (meta_mod.DL,
                                                                "Random, DerSimonian–Laird"),
                              (meta_mod.REML, "Random, REML")):
            est = idx.value("meta", method, variable, "estimate", timepoint=change)
            if est is None:
                continue
            estimates.append({
                "label": short, "estimate": est,
                "ci_low": idx.value("meta", method, variable, "ci_low", timepoint=change),
                "ci_high": idx.value("meta", method, variable, "ci_high", timepoint=change),
                "p": idx.value("meta", method, variable, "p_value", timepoint=change),
                "tau2": idx.value("meta", method, variable, "tau2", timepoint=change)})
        het = {s: idx.value("meta", "heterogeneity", variable, s, timepoint=change)
               for s in ("k", "q", "q_df", "q_p_value", "i2")}
        site_rows = []
        for site in sites:
            md = idx.value("marker", site, variable, "mean_difference", timepoint=change)
            n_rec = idx.get("marker", site, variable, "n", timepoint=change)
            weights = {m: idx.value("meta", site, variable, f"weight ({m})", timepoint=change)
                       for m in (meta_mod.FIXED, meta_mod.DL, meta_mod.REML)}
            site_n = idx.value("marker", site, variable, "n", timepoint=change)
            if md is None:  # withheld at the site, or no mean (n = 0 or 1)
                site_rows.append({"site": site, "n": fmt_count(site_n) if site_n is not None
                                  else _shown_suppressed((n_rec or {}).get("warning")),
                                  "difference": "–", "ci": "–",
                                  "weights": ["–", "–", "–"], "plotted": None})
                continue
            se = idx.value("marker", site, variable, "sem", timepoint=change)
            plotted, ci = None, "–"
            if se is not None and se > 0:
                ci = _ci(md - 1.959963984540054 * se, md + 1.959963984540054 * se)
                if weights[meta_mod.FIXED] is not None:
                    plotted = {"site": site, "n": fmt_count(site_n), "estimate": md,
                               "ci_low": md - 1.959963984540054 * se,
                               "ci_high": md + 1.959963984540054 * se,
                               "weight": weights[meta_mod.FIXED]}
            site_rows.append({
                "site": site, "n": fmt_count(site_n), "difference": fmt_num(md),
                "ci": ci,
                "weights": [fmt_pct(w) if w is not None else "–" for w in weights.values()],
                "plotted": plotted})
        metas.append({"label": label, "unit": u, "timepoint": tp_label,
                      "estimates": [{**e, "text": f"{fmt_num(e['estimate'])} "
                                     f"({_ci(e['ci_low'], e['ci_high'])})",
                                     "p_text": fmt_p(e["p"]),
                                     "tau2_text": fmt_num(e["tau2"]) if e["tau2"] is not None
                                     else ""} for e in estimates],
                      "i2": fmt_pct(het["i2"]) if het["i2"] is not None else "–",
                      "q": (f"{fmt_num(het['q'], 2)} ({fmt_count(het['q_df'])} df), p "
                            f"{fmt_p(het['q_p_value'])}") if het["q"] is not None else "–",
                      "k": fmt_count(het["k"]) if het["k"] is not None else "0",
                      "note": None if estimates else (idx.get(
                          "meta", "heterogeneity", variable, "k", timepoint=change) or {}
                      ).get("warning")})
        plotted = [r["plotted"] for r in site_rows if r["plotted"]]
        svg = ""
        if estimates and plotted:
            svg = forest_svg(f"Forest plot: {label}, {tp_label} vs baseline", u, plotted,
                             estimates, uid=f"forest-{_slug(variable)}-{_slug(change)}")
        figures.append({"anchor": f"forest-{_slug(variable)}-{_slug(change)}",
                        "label": label, "timepoint": tp_label, "unit": u, "svg": svg,
                        "sites": site_rows, "k": fmt_count(k)})
    return paired, metas, figures


def _methods(results: StudyResults, sites: list[dict]) -> list[str]:
    net = (results.provenance or {}).get("network") or {}
    n = len(sites)
    versions = sorted({s.get("hyperinflam_version") or "unknown" for s in sites})
    engines = sorted({f"{(s.get('engine') or {}).get('name')}" for s in sites})
    kinds = sorted({(s.get("data_source") or {}).get("kind") or "not stated" for s in sites})
    cells = sorted({s["min_cell"] for s in sites})
    dates = sorted(s.get("run_date") or "" for s in sites if s.get("run_date"))
    out = [
        f"{n} site{'s' if n != 1 else ''} ran the same study file (SHA-256 "
        f"{net.get('study_sha256', '')[:16]}…, checked in every package's manifest) with "
        f"hyperinflam {', '.join(versions)} on {', '.join(engines)}, from "
        f"{'; '.join(kinds)}"
        + (f", between {dates[0]} and {dates[-1]}" if dates and dates[0] != dates[-1]
           else f", on {dates[0]}" if dates else "") + ". "
        "Each site shared only aggregates: counts, and per marker and timepoint the number of "
        "patients with both values and the sums, sums of squares and centred sums of squares "
        "of the baseline values, the follow-up values and the per-patient differences.",
        f"Small counts were suppressed at each site before sharing: every count from 1 to "
        f"N − 1 (N = {', '.join(str(c) for c in cells)}, the sites' minimum cell) was "
        "withheld, and further counts were withheld until no withheld count could be "
        "recovered from the published counts, totals, margins and differences (linear "
        "algebra and bounds). Zeros were published; nothing was rounded. A marker whose n "
        "was withheld at a site does not enter the pooled analysis; the sites left out are "
        "named under each table.",
        "Pooled paired t-test: the pooled mean difference is the sum of the sites' sums of "
        "differences over the pooled n; the pooled SD comes from the sites' centred sums of "
        "squares combined with the parallel-variance formula (Chan, Golub and LeVeque 1979); "
        "t = mean(baseline − follow-up) / (SD / √n) with n − 1 degrees of freedom. This "
        "equals the paired t-test on all the contributing sites' patients together.",
        "Meta-analysis of the sites' mean paired differences, each with the variance SE² of "
        "its own paired analysis: fixed effect (inverse variance) and random effects with "
        "τ² by DerSimonian–Laird (statsmodels combine_effects, τ² truncated at 0) and by "
        "restricted maximum likelihood (Fisher scoring, Viechtbauer 2005); 95% confidence "
        "intervals and p-values from the normal distribution; heterogeneity by Cochran's Q "
        "and I² (Higgins and Thompson 2002). Sites whose differences have no variance are "
        "not weighed.",
        "Not pooled: the Wilcoxon signed-rank test, medians, quartiles and the median "
        "per-patient % change need every patient's value and cannot be computed from "
        "aggregates; they are reported by each site in its own report. Counts are pooled "
        "over the sites that published them; percentages use the cohorts of the same sites.",
    ]
    if net.get("definition_note"):
        out.append(f"Labels come from the packages: {net['definition_note']}.")
    return out


def render_pooled_report(results: StudyResults) -> str:
    """The pooled report as one HTML string."""
    d = results.definition or {}
    net = (results.provenance or {}).get("network") or {}
    site_info = net.get("sites") or []
    sites = [s["site"] for s in site_info]
    idx = _Index(results.results)
    groups = [POOLED] + sites
    labels = {}
    for entry in d.get("timepoints") or []:
        if isinstance(entry, dict) and entry.get("name"):
            labels[str(entry["name"])] = str(entry.get("label") or entry["name"])
    if "day7" not in labels:
        target = get_path(d, "windows", "day7_target_hours", default=168)
        labels["day7"] = f"Day {float(target) / 24:g}"
    paired, metas, figures = _markers(idx, sites, labels)
    site_rows = []
    for s in site_info:
        cohort = _count_text(idx, "flow", s["site"], "cohort", None)
        engine = s.get("engine") or {}
        sup = s.get("suppression") or {}
        site_rows.append({
            "site": s["site"], "cohort": cohort,
            "engine": f"{engine.get('name')} {engine.get('version') or ''}".strip(),
            "version": s.get("hyperinflam_version") or "–",
            "source": (s.get("data_source") or {}).get("kind") or "–",
            "run_date": s.get("run_date") or "–", "min_cell": s["min_cell"],
            "suppressed": f"{sup.get('small', 0)} + {sup.get('complementary', 0)}",
            "package": s["package"], "sha": s["package_sha256"][:16]})
    pooled_cohort = idx.value("flow", POOLED, "cohort", "count")
    cohort_rec = idx.get("flow", POOLED, "cohort", "count")
    lead = (f"{len(sites)} sites shared aggregate packages of this study. Pooled cohort: "
            f"{fmt_count(pooled_cohort) if pooled_cohort is not None else 'not available'}"
            f" patients" + (f" ({cohort_rec['warning']})" if cohort_rec and
                           cohort_rec.get("warning") else "") + ".")
    lines = [f"{p['label']}, {p['timepoint']}: n = {p['n']} from {p['sites']} sites; mean "
             f"difference {p['difference']}{(' ' + p['unit']) if p['unit'] else ''} "
             f"(95% CI {p['ci']}), paired t-test p {p['p']}" for p in paired
             if p["difference"] != "–"]
    not_pooled = [f"{what}: {why.removeprefix('not computed: ')}"
                  for what, why in NOT_POOLABLE.values()]
    context = {
        "css": _css(), "version": __version__,
        "title": get_path(d, "study", "title") or get_path(d, "study", "id") or "Study",
        "study_id": get_path(d, "study", "id") or "",
        "reference": get_path(d, "study", "reference") or "",
        "description": get_path(d, "study", "description") or "",
        "study_sha": net.get("study_sha256", ""), "pooled_on":
            (results.provenance or {}).get("pooled_on", ""),
        "lead": lead, "lines": lines, "sites": site_rows, "groups": groups,
        "paired": paired, "metas": metas, "figures": figures,
        "count_tables": _count_tables(idx, groups), "not_pooled": not_pooled,
        "methods": _methods(results, site_info), "study_text": net.get("study_text", ""),
    }
    return _environment().get_template("network_report.html.j2").render(**context)


@dataclass
class PoolSummary:
    out: Path
    sites: list[str]
    files: dict[str, Path]
    results: StudyResults


def write_pooled(results: StudyResults, out_dir: str | Path) -> dict[str, Path]:
    """``results.csv``, ``results.json`` and ``report.html`` of a pooled study."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results_csv": out / RESULTS_CSV, "results_json": out / RESULTS_JSON,
             "report_html": out / REPORT_HTML}
    _ordered(results.results, POOL_COLUMNS).to_csv(paths["results_csv"], index=False,
                                                   lineterminator="\n")
    doc = results_document(results)
    paths["results_json"].write_text(
        json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    paths["report_html"].write_text(render_pooled_report(results), encoding="utf-8")
    return paths


def pool_sites(packages, out_dir: str | Path, *, study_file=None) -> PoolSummary:
    """``hyperinflam study pool``: verify every package, pool, write the outputs."""
    verified = read_packages(packages, study_file=study_file)
    results = pool_packages(verified)
    paths = write_pooled(results, out_dir)
    return PoolSummary(Path(out_dir), [p.site for p in verified], paths, results)


__all__ = ["PoolSummary", "ShareSummary", "forest_svg", "pool_sites", "render_pooled_report",
           "render_preview", "share_site", "write_pooled"]
