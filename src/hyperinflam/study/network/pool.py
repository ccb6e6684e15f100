"""The coordinating centre's side: read and verify site packages, pool them.

:func:`read_packages` refuses a package whose files changed after the site made it (each file's
SHA-256 against its manifest), that contains a file its manifest does not list, whose study text
does not match its own hash, or that ran another study file than the others (or than the
coordinator's ``study_file``). Every refusal is one :class:`NetworkError` naming the site, the
package and the file.

:func:`pool_packages` returns the pooled **results dataset** (``StudyResults``;
docs/results-format.md, plus a ``warning`` column) with these sections:

* ``marker``: per marker and follow-up timepoint, for each site and ``pooled``: n, baseline and
  follow-up mean and SD, and the paired comparison (mean difference, SD, SEM, 95% CI, t, df, p,
  % change of means). The pooled rows are computed from the sums alone
  (:mod:`hyperinflam.study.network.paired`) and equal the analysis of all the contributing
  sites' patients together. What aggregates cannot give (Wilcoxon signed-rank, medians,
  quartiles, median % change) has a row with no value and a warning saying why.
* ``meta``: the meta-analysis of the sites' mean differences (groups: fixed effect,
  DerSimonian-Laird, REML; heterogeneity; each site's weights) (:mod:`.meta`).
* ``flow``, ``baseline``, ``cotherapy``, ``safety``, ``phenotype``: every count per site where
  the site published it and pooled over the sites that did (with the sites left out named), and
  continuous characteristics as n, mean and SD pooled from the sums.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tomllib
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from hyperinflam import __version__
from hyperinflam.study.network import meta as meta_mod
from hyperinflam.study.network.package import (
    CONTINUOUS_CSV,
    COUNTS_CSV,
    DATA_FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MARKERS_CSV,
    MOMENT_PARTS,
    RELATIONS_JSON,
    sha256,
)
from hyperinflam.study.network.paired import Moments, PairedSummary
from hyperinflam.errors import NetworkError
from hyperinflam.study.network.suppression import NOT_RECORDED, PUBLISHED, SMALL
from hyperinflam.study.results import StudyResults

POOLED = "pooled"
#: The pooled results' columns (the site results dataset's columns before stat_name, comparison
#: and error; the pooled report reads these).
POOL_COLUMNS = ["study", "section", "group", "variable", "label", "level", "timepoint",
                "statistic", "value", "unit", "method", "warning"]
COUNT_SECTIONS = ("flow", "baseline", "cotherapy", "safety", "phenotype")

PAIRED_T_POOLED = ("paired t-test from the sites' sums (n, sums and centred sums of squares of "
                   "the per-patient differences, combined with the parallel-variance formula); "
                   "equals scipy.stats.ttest_rel(baseline, follow-up) on all patients of the "
                   "contributing sites; t > 0 when values fall")
PAIRED_T_SITE = ("paired t-test from the site's sums (equals the site's own "
                 "scipy.stats.ttest_rel); t > 0 when values fall")
NOT_POOLABLE = {
    "p_wilcoxon": ("Wilcoxon signed-rank", "not computed: the test ranks every patient's "
                   "difference across all sites; aggregates cannot give it"),
    "median": ("median, quartiles", "not computed: a pooled median needs every patient's "
               "value; sites share sums, not medians"),
    "median_pct_change": ("median of per-patient % changes",
                          "not computed: needs every patient's % change"),
}


@dataclass
class SitePackageData:
    """One verified package, read back."""

    path: Path
    site: str
    manifest: dict
    sha256: str
    counts: pd.DataFrame
    markers: pd.DataFrame
    continuous: pd.DataFrame
    relations: list

    @property
    def min_cell(self) -> int:
        return int(self.manifest["min_cell"])

    @property
    def who(self) -> str:
        return f"site '{self.site}' ({self.path.name})"


def _table(data: bytes) -> pd.DataFrame:
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    return frame


def read_package(path: str | Path) -> SitePackageData:
    """Read one package and verify it against its own manifest."""
    path = Path(path)
    if not path.is_file():
        raise NetworkError(f"{path}: no such file; give the SITE.zip files the sites sent.")
    raw = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise NetworkError(f"{path}: not a zip file; a site package is the SITE.zip written by "
                           f"'hyperinflam study share'.")
    contents, damaged = {}, {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            for info in zf.infolist():
                try:
                    contents[info.filename] = zf.read(info)
                except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
                    damaged[info.filename] = exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise NetworkError(f"{path}: the zip file is damaged ({exc}); ask the site to send "
                           f"it again.") from None
    if damaged:
        name, exc = next(iter(damaged.items()))
        site = _site_of(contents.get(MANIFEST), path)
        raise NetworkError(f"site '{site}' ({path.name}): {name} is damaged in the zip "
                           f"({exc}); the package was changed after the site made it: "
                           f"refused, ask the site to send it again.")
    if MANIFEST not in contents:
        raise NetworkError(f"{path}: no {MANIFEST} in the zip: not a site package of "
                           f"'hyperinflam study share'.")
    try:
        manifest = json.loads(contents[MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NetworkError(f"{path}: {MANIFEST} is not valid JSON ({exc}); the package was "
                           f"changed after the site made it: ask the site to send it again."
                           ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NetworkError(f"{path}: {MANIFEST} is not the manifest of a hyperinflam site "
                           f"package.")
    site = str(manifest.get("site") or path.stem)
    who = f"site '{site}' ({path.name})"
    if int(manifest.get("format_version") or 0) > FORMAT_VERSION:
        raise NetworkError(f"{who}: package format {manifest.get('format_version')} is newer "
                           f"than this hyperinflam reads ({FORMAT_VERSION}); upgrade "
                           f"hyperinflam.")
    listed = manifest.get("files") or {}
    for name in sorted(set(contents) - set(listed) - {MANIFEST}):
        raise NetworkError(f"{who}: the zip holds {name}, which its {MANIFEST} does not list; "
                           f"the package was changed after the site made it: ask the site to "
                           f"send it again.")
    for name, expected in sorted(listed.items()):
        if name not in contents:
            raise NetworkError(f"{who}: {name} is listed in {MANIFEST} but missing from the "
                               f"zip; ask the site to send the package again.")
        found = sha256(contents[name])
        if found != expected:
            raise NetworkError(f"{who}: {name} was changed after the site made the package "
                               f"(SHA-256 {found[:12]}..., the manifest says "
                               f"{str(expected)[:12]}...); refused: ask the site to send it "
                               f"again.")
    for name in DATA_FILES:
        if name not in listed:
            raise NetworkError(f"{who}: {name} is missing from the package.")
    study = manifest.get("study") or {}
    text = study.get("contents")
    if not isinstance(text, str) or sha256(text.encode("utf-8")) != study.get("sha256"):
        raise NetworkError(f"{who}: {MANIFEST}: the study text does not match the study "
                           f"SHA-256 beside it; the manifest was changed after the site made "
                           f"the package: refused.")
    return SitePackageData(
        path=path, site=site, manifest=manifest, sha256=sha256(raw),
        counts=_table(contents[COUNTS_CSV]), markers=_table(contents[MARKERS_CSV]),
        continuous=_table(contents[CONTINUOUS_CSV]),
        relations=json.loads(contents[RELATIONS_JSON].decode("utf-8")))


def _site_of(manifest: bytes | None, path: Path) -> str:
    """The site a package names in its manifest (the file name when it cannot be read)."""
    try:
        return str(json.loads(manifest.decode("utf-8"))["site"])
    except Exception:  # a damaged manifest: the file is all we know
        return path.stem


def study_file_sha256(path_or_name: str | Path) -> str:
    """The study hash a site's package carries for this study file, or shipped study named as
    in 'hyperinflam study run' (the SHA-256 of the file's text as the run read it)."""
    from hyperinflam.errors import StudyDefinitionError
    from hyperinflam.study.definition import load_study

    try:
        definition = load_study(path_or_name)
    except StudyDefinitionError as exc:
        raise NetworkError(f"--study {path_or_name}: {exc}") from None
    if definition.text is None:
        raise NetworkError(f"--study {path_or_name}: cannot read the study file's text.")
    return sha256(definition.text.encode("utf-8"))


def read_packages(paths: Sequence[str | Path], *, study_file: str | Path | None = None
                  ) -> list[SitePackageData]:
    """Read and verify every package; all must carry the same study (see the module doc)."""
    if not paths:
        raise NetworkError("give at least one site package (SITE.zip).")
    packages = [read_package(p) for p in paths]
    seen: dict[str, SitePackageData] = {}
    for pkg in packages:
        if pkg.site in seen:
            raise NetworkError(f"two packages name the site '{pkg.site}': "
                               f"{seen[pkg.site].path.name} and {pkg.path.name}; each site "
                               f"shares once, with its own --site name.")
        seen[pkg.site] = pkg
    if study_file is not None:
        reference, source = study_file_sha256(study_file), f"the study file {study_file}"
    else:
        first = packages[0]
        reference, source = first.manifest["study"]["sha256"], first.who
    for pkg in packages:
        mine = pkg.manifest["study"]["sha256"]
        if mine != reference:
            raise NetworkError(
                f"{pkg.who} ran another study: study SHA-256 {mine[:12]}... in its "
                f"{MANIFEST}, {reference[:12]}... for {source}; every site must run the same "
                f"study file (refused, nothing pooled).")
    return packages


def _float(text) -> float | None:
    if text is None or text == "":
        return None
    return float(text)


def _definition(manifest: dict) -> tuple[dict, str | None]:
    """The study definition from the study text in the manifest (and a note if it cannot be
    read by this version)."""
    study = manifest["study"]
    fallback = {"study": {"id": study.get("id"), "title": study.get("title")}}
    try:
        if study.get("hash_of") == "study file":
            from hyperinflam.study.definition import parse_study

            return parse_study(tomllib.loads(study["contents"]),
                               source="the study file in the packages").model_dump(
                mode="json"), None
        return json.loads(study["contents"]), None
    except Exception as exc:  # another version's study file: labels come from the packages
        return fallback, f"the study file could not be read by this version ({exc})"


class _Rows:
    def __init__(self, study_id: str):
        self.study_id = study_id
        self.rows: list[dict] = []

    def add(self, section, group, variable, label, statistic, value, *, level=None,
            timepoint=None, unit=None, method=None, warning=None):
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            value = float(value)
        else:
            value = math.nan
        self.rows.append({"study": self.study_id, "section": section, "group": group,
                          "variable": variable, "label": label, "level": level or None,
                          "timepoint": timepoint or None, "statistic": statistic,
                          "value": value, "unit": unit or None, "method": method,
                          "warning": warning})

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=POOL_COLUMNS)
        frame = frame.astype({c: "object" for c in POOL_COLUMNS if c != "value"})
        frame = frame.where(frame.notna(), None)
        frame["value"] = frame["value"].astype("float64")
        return frame


NOT_RECORDED_WARNING = (f"{NOT_RECORDED} at the site: its source holds no record of this "
                        f"domain (not counted as 0)")


def suppressed_warning(status: str, min_cell: int) -> str:
    if status == SMALL:
        return f"suppressed at the site: < {min_cell}"
    return "suppressed at the site to protect a small count"


def timepoint_names(followup: str, several: bool) -> tuple[str, str]:
    """(baseline, change) timepoint names of the rows for one follow-up timepoint: 'baseline'
    and 'change' when the study has one follow-up (the site's own results format)."""
    if not several:
        return "baseline", "change"
    return f"baseline:{followup}", f"change:{followup}"


def _published_row(rows: _Rows, pkg: SitePackageData, table: pd.DataFrame, where: dict,
                   left_out: list[str], *, section: str, variable: str, label: str,
                   statistic: str, **keys) -> pd.Series | None:
    """The site's row of ``table`` matching ``where`` when the site published it; otherwise
    None, with the reason added to ``left_out`` and a suppressed row to the results."""
    mask = pd.Series(True, index=table.index)
    for column, value in where.items():
        mask &= table[column] == value
    sel = table[mask]
    if sel.empty:
        left_out.append(f"{pkg.site}: not in its package")
        return None
    row = sel.iloc[0]
    if row["status"] == NOT_RECORDED:
        rows.add(section, pkg.site, variable, label, statistic, None,
                 warning=NOT_RECORDED_WARNING, **keys)
        left_out.append(f"{pkg.site} ({NOT_RECORDED})")
        return None
    if row["status"] != PUBLISHED:
        rows.add(section, pkg.site, variable, label, statistic, None,
                 warning=suppressed_warning(row["status"], pkg.min_cell), **keys)
        left_out.append(f"{pkg.site} ({row['shown']})")
        return None
    return row


def _moments(row: pd.Series, part: str) -> Moments:
    return Moments(int(row["n"]), float(row[f"sum_{part}"]), float(row[f"sum_sq_{part}"]),
                   float(row[f"sum_sq_dev_{part}"]))


def _marker_rows(rows: _Rows, packages: list[SitePackageData], alternative: str) -> None:
    first = packages[0].markers
    keys = list(dict.fromkeys(zip(first["marker"], first["timepoint"])))
    several = len(set(first["timepoint"])) > 1
    for marker, tp in keys:
        ref = first[(first["marker"] == marker) & (first["timepoint"] == tp)].iloc[0]
        label, unit, tp_label = ref["label"], ref["unit"] or None, ref["timepoint_label"]
        base_tp, change_tp = timepoint_names(tp, several)
        summaries, left_out = [], []
        for pkg in packages:
            row = _published_row(rows, pkg, pkg.markers, {"marker": marker, "timepoint": tp},
                                 left_out, section="marker", variable=marker, label=label,
                                 statistic="n", timepoint=change_tp)
            if row is None:
                continue
            summary = PairedSummary(*(_moments(row, part) for part in MOMENT_PARTS))
            summaries.append((pkg.site, summary))
            _paired_rows(rows, pkg.site, marker, label, unit, tp, base_tp, change_tp,
                         summary, alternative, PAIRED_T_SITE)
        pooled = PairedSummary.combine(s for _, s in summaries)
        note = ("not included: " + "; ".join(left_out)) if left_out else None
        rows.add("marker", POOLED, marker, label, "sites",
                 sum(1 for _, s in summaries if s.n > 0), timepoint=change_tp,
                 method=f"sites contributing patients to {label} at {tp_label}", warning=note)
        _paired_rows(rows, POOLED, marker, label, unit, tp, base_tp, change_tp, pooled,
                     alternative, PAIRED_T_POOLED, warning=note)
        for statistic, (what, why) in NOT_POOLABLE.items():
            name = "p_value" if statistic == "p_wilcoxon" else statistic
            rows.add("marker", POOLED, marker, label, name, None, timepoint=change_tp,
                     method=what, warning=why)
        # the meta-analysis of the sites' mean differences
        result = meta_mod.meta_analysis(
            [s.t_test(alternative).mean_difference for _, s in summaries],
            [s.t_test(alternative).se_difference ** 2 for _, s in summaries])
        used = [site for site, s in summaries
                if math.isfinite(s.t_test(alternative).se_difference)
                and s.t_test(alternative).se_difference > 0]
        if result is None:
            rows.add("meta", "heterogeneity", marker, label, "k", len(used),
                     timepoint=change_tp, unit=None,
                     warning="not computed: needs at least two sites with a mean difference "
                             "and a standard error > 0")
            continue
        for est in result.estimates:
            for statistic in ("estimate", "se", "ci_low", "ci_high", "z", "p_value"):
                rows.add("meta", est.method, marker, label, statistic,
                         getattr(est, statistic), timepoint=change_tp,
                         unit=None if statistic in ("z", "p_value") else unit,
                         method=_META_METHODS[est.method])
            if est.tau2 is not None:
                rows.add("meta", est.method, marker, label, "tau2", est.tau2,
                         timepoint=change_tp, unit=f"({unit})^2" if unit else None,
                         method=_META_METHODS[est.method])
            for site, weight in zip(used, est.weights):
                rows.add("meta", site, marker, label, f"weight ({est.method})", 100 * weight,
                         timepoint=change_tp, unit="%")
        for statistic, value, u in (("k", result.k, None), ("q", result.q, None),
                                    ("q_df", result.q_df, None),
                                    ("q_p_value", result.q_p_value, None),
                                    ("i2", 100 * result.i2, "%")):
            rows.add("meta", "heterogeneity", marker, label, statistic, value,
                     timepoint=change_tp, unit=u,
                     method="Cochran's Q (k - 1 df); I2 = max(0, (Q - df) / Q)")
        if not result.reml_converged:
            rows.add("meta", meta_mod.REML, marker, label, "iterations",
                     result.reml_iterations, timepoint=change_tp,
                     warning="REML did not converge: tau2 is the last iterate")


_META_METHODS = {
    meta_mod.FIXED: ("inverse-variance fixed effect of the sites' mean paired differences "
                     "(statsmodels.stats.meta_analysis.combine_effects); normal 95% CI"),
    meta_mod.DL: ("DerSimonian-Laird random effects (statsmodels combine_effects, "
                  "method_re='dl'; tau2 truncated at 0); normal 95% CI"),
    meta_mod.REML: ("REML random effects: tau2 maximising the restricted likelihood by "
                    "Fisher scoring (Viechtbauer 2005; metafor's rma method='REML'); normal "
                    "95% CI"),
}


def _paired_rows(rows: _Rows, group, marker, label, unit, tp, base_tp, change_tp,
                 summary: PairedSummary, alternative: str, method: str, warning=None) -> None:
    for timepoint, m in ((base_tp, summary.baseline), (tp, summary.followup)):
        rows.add("marker", group, marker, label, "n", m.n, timepoint=timepoint)
        rows.add("marker", group, marker, label, "mean", m.mean, timepoint=timepoint,
                 unit=unit)
        rows.add("marker", group, marker, label, "sd", m.sd, timepoint=timepoint, unit=unit,
                 method="ddof = 1")
    test = summary.t_test(alternative)
    rows.add("marker", group, marker, label, "n", test.n, timepoint=change_tp, warning=warning)
    rows.add("marker", group, marker, label, "mean_difference", test.mean_difference,
             timepoint=change_tp, unit=unit, method="mean of per-patient (follow-up - baseline)")
    rows.add("marker", group, marker, label, "sd", test.sd_difference, timepoint=change_tp,
             unit=unit, method="SD of the per-patient differences, ddof = 1")
    rows.add("marker", group, marker, label, "sem", test.se_difference, timepoint=change_tp,
             unit=unit, method="SD / sqrt(n) of the per-patient differences")
    rows.add("marker", group, marker, label, "ci_low", test.ci_low, timepoint=change_tp,
             unit=unit, method="95% CI of the mean difference (t distribution, n - 1 df)")
    rows.add("marker", group, marker, label, "ci_high", test.ci_high, timepoint=change_tp,
             unit=unit, method="95% CI of the mean difference (t distribution, n - 1 df)")
    rows.add("marker", group, marker, label, "pct_change_of_means",
             summary.pct_change_of_means, timepoint=change_tp, unit="%",
             method="100 x (mean follow-up - mean baseline) / mean baseline")
    t_method = f"{method}; {alternative}"
    if test.reason:
        rows.add("marker", group, marker, label, "p_value", None, timepoint=change_tp,
                 method=t_method, warning=test.reason)
        return
    rows.add("marker", group, marker, label, "t_statistic", test.t_statistic,
             timepoint=change_tp, method=t_method)
    rows.add("marker", group, marker, label, "df", test.df, timepoint=change_tp,
             method=t_method)
    rows.add("marker", group, marker, label, "p_value", test.p_value, timepoint=change_tp,
             method=t_method)


def _count_rows(rows: _Rows, packages: list[SitePackageData]) -> None:
    # every cell of any package, in the order the packages list them (a site may list a count
    # that another does not: a level of its own, a domain only it records)
    first = pd.concat([pkg.counts for pkg in packages], ignore_index=True)
    keys = list(dict.fromkeys(zip(first["section"], first["variable"], first["timepoint"],
                                  first["level"])))
    cohort = {}
    for pkg in packages:
        c = pkg.counts
        sel = c[(c["section"] == "flow") & (c["variable"] == "cohort")]
        cohort[pkg.site] = (int(sel["count"].iloc[0]) if not sel.empty
                            and sel["status"].iloc[0] == PUBLISHED else None)
    for section, variable, timepoint, level in keys:
        if section not in COUNT_SECTIONS:
            continue
        ref = first[(first["section"] == section) & (first["variable"] == variable)
                    & (first["timepoint"] == timepoint) & (first["level"] == level)].iloc[0]
        if ref["level"] == "n":
            continue  # the n of a continuous characteristic: with its mean and SD below
        if ref["derived"] == "true" and not (section == "flow"
                                             and variable.startswith("excluded_")):
            continue  # complements (patients without) are implied by the shown counts
        label = ref["label"]
        per_site, left_out = [], []
        for pkg in packages:
            row = _published_row(rows, pkg, pkg.counts,
                                 {"section": section, "variable": variable,
                                  "timepoint": timepoint, "level": level}, left_out,
                                 section=section, variable=variable, label=label,
                                 statistic="count", level=level)
            if row is None:
                continue
            count = int(row["count"])
            rows.add(section, pkg.site, variable, label, "count", count, level=level)
            if section != "flow":
                denominator = cohort[pkg.site]
                if denominator is None:
                    left_out.append(f"{pkg.site} (cohort size suppressed)")
                    continue
                rows.add(section, pkg.site, variable, label, "percent",
                         100.0 * count / denominator if denominator else None, level=level,
                         unit="%")
                per_site.append((count, denominator))
            else:
                per_site.append((count, None))
        note = ("not included: " + "; ".join(left_out)) if left_out else None
        total = sum(c for c, _ in per_site)
        rows.add(section, POOLED, variable, label, "count", total if per_site else None,
                 level=level, method=f"sum over {len(per_site)} of {len(packages)} sites",
                 warning=note)
        rows.add(section, POOLED, variable, label, "sites", len(per_site), level=level,
                 method="sites whose count is pooled", warning=note)
        if section != "flow" and per_site:
            denominator = sum(d for _, d in per_site)
            rows.add(section, POOLED, variable, label, "percent",
                     100.0 * total / denominator if denominator else None, level=level,
                     unit="%", method="of the cohorts of the same sites", warning=note)


def _continuous_rows(rows: _Rows, packages: list[SitePackageData]) -> None:
    first = packages[0].continuous
    for section, variable in dict.fromkeys(zip(first["section"], first["variable"])):
        ref = first[(first["section"] == section) & (first["variable"] == variable)].iloc[0]
        label, unit = ref["label"], ref["unit"] or None
        parts, left_out, n_published = [], [], []
        for pkg in packages:
            row = _published_row(rows, pkg, pkg.continuous,
                                 {"section": section, "variable": variable}, left_out,
                                 section=section, variable=variable, label=label,
                                 statistic="n")
            if row is None:
                continue
            rows.add(section, pkg.site, variable, label, "n", int(row["n"]))
            n_published.append(int(row["n"]))
            if row["sum"] == "":
                left_out.append(f"{pkg.site} (n only)")
                continue
            m = Moments(int(row["n"]), float(row["sum"]), float(row["sum_sq"]),
                        float(row["sum_sq_dev"]))
            parts.append(m)
            rows.add(section, pkg.site, variable, label, "mean", m.mean, unit=unit)
            rows.add(section, pkg.site, variable, label, "sd", m.sd, unit=unit,
                     method="ddof = 1")
        n_only = [n for n in n_published if n is not None]
        if not parts and n_only:  # no site gave sums: the pooled n only
            left_out = [x for x in left_out if not x.endswith("(n only)")]
        note = ("not included: " + "; ".join(left_out)) if left_out else None
        pooled = Moments.combine(parts)
        if parts:
            rows.add(section, POOLED, variable, label, "n", pooled.n, warning=note)
            rows.add(section, POOLED, variable, label, "mean", pooled.mean, unit=unit,
                     method="from the sites' sums", warning=note)
            rows.add(section, POOLED, variable, label, "sd", pooled.sd, unit=unit,
                     method="from the sites' sums and centred sums of squares (ddof = 1)",
                     warning=note)
        else:
            rows.add(section, POOLED, variable, label, "n", sum(n_only) if n_only else None,
                     warning=note)
            rows.add(section, POOLED, variable, label, "mean", None,
                     warning="not computed: the study runs give n only for this "
                             "characteristic (no mean and SD to pool)")
        rows.add(section, POOLED, variable, label, "median", None,
                 method=NOT_POOLABLE["median"][0], warning=NOT_POOLABLE["median"][1])


def pool_packages(packages: Sequence[SitePackageData]) -> StudyResults:
    """The pooled results dataset of verified packages (see the module docstring)."""
    packages = list(packages)
    manifest = packages[0].manifest
    definition, note = _definition(manifest)
    study_id = manifest["study"]["id"]
    alternative = manifest.get("alternative") or "two-sided"
    rows = _Rows(study_id)
    _count_rows(rows, packages)
    _continuous_rows(rows, packages)
    _marker_rows(rows, packages, alternative)
    sites = [{
        "site": p.site, "package": p.path.name, "package_sha256": p.sha256,
        "hyperinflam_version": p.manifest.get("hyperinflam_version"),
        "engine": p.manifest.get("engine"), "data_source": p.manifest.get("data_source"),
        "run_date": p.manifest.get("run_date"), "min_cell": p.min_cell,
        "suppression": p.manifest.get("suppression"),
    } for p in packages]
    provenance = {
        "network": {"sites": sites, "study_sha256": manifest["study"]["sha256"],
                    "study_hash_of": manifest["study"].get("hash_of"),
                    "study_text": manifest["study"]["contents"],
                    "definition_note": note},
        "versions": {"hyperinflam": __version__},
        "pooled_on": date.today().isoformat(),
    }
    return StudyResults(results=rows.frame(),
                        observations=pd.DataFrame(columns=["study", "patient", "variable",
                                                           "hours_from_index", "value",
                                                           "unit", "role"]),
                        definition=definition, provenance=provenance)
