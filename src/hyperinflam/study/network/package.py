"""The site package: a zip of aggregate files, its manifest and its preview.

Files (docs/network.md):

* ``counts.csv``: every count cell (flow, characteristics, co-therapy, safety, phenotype, the n of
  every continuous characteristic and marker), its status (published / small / complementary /
  not recorded) and what a reader sees ("12", "< 10", "suppressed", "not recorded": a count of
  a domain the site's source does not record, which is no count at all and takes no part in
  the suppression);
* ``markers.csv``: per marker and follow-up timepoint, n and the sufficient statistics of the
  baseline values, the follow-up values and the per-patient differences (sum, sum of squares,
  centred sum of squares) with the site's mean difference and its standard error; only "n < N"
  when the marker's n is suppressed;
* ``continuous.csv``: per continuous characteristic n, sum and centred sum of squares;
* ``relations.json``: the sums that tie the counts together, which the suppression protects
  against (a reader's view of the tables; no values);
* ``manifest.json``: the study file (SHA-256 and text), hyperinflam version, engine, data-source
  kind, run date (a date, no time), minimum cell, suppression summary and the SHA-256 of every
  other file;
* ``preview.html``: every file above, rendered for the site's review (written by the report
  layer, :mod:`hyperinflam.report.network`).

Nothing patient-level, no identifier, no time, no free text from the data. The zip is
deterministic: same run, same bytes (fixed entry order and entry dates, fixed number format).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from hyperinflam import __version__
from hyperinflam.study.network.paired import PairedSummary
from hyperinflam.errors import NetworkError
from hyperinflam.study.network.siterun import SiteRun
from hyperinflam.study.network.suppression import (
    COMPLEMENTARY,
    DEFAULT_MIN_CELL,
    NOT_RECORDED,
    PUBLISHED,
    SMALL,
    Protection,
    check_min_cell,
    protect,
)
from hyperinflam.study.network.tables import CountCell, cell_key, count_tables

FORMAT = "hyperinflam-site-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PREVIEW = "preview.html"
COUNTS_CSV = "counts.csv"
MARKERS_CSV = "markers.csv"
CONTINUOUS_CSV = "continuous.csv"
RELATIONS_JSON = "relations.json"
DATA_FILES = (COUNTS_CSV, MARKERS_CSV, CONTINUOUS_CSV, RELATIONS_JSON)
#: Manifest fields that differ between two runs of the same study on the same data.
RUN_FIELDS = ("engine", "run_date")

COUNTS_COLUMNS = ["section", "variable", "label", "timepoint", "level", "derived", "status",
                  "count", "shown"]
MOMENT_PARTS = ("baseline", "followup", "difference")
MARKERS_COLUMNS = (["marker", "label", "unit", "timepoint", "timepoint_label",
                    "target_hours", "status", "n", "shown"]
                   + [f"{stat}_{part}" for part in MOMENT_PARTS
                      for stat in ("sum", "sum_sq", "sum_sq_dev")]
                   + ["mean_difference", "se_difference"])
CONTINUOUS_COLUMNS = ["section", "variable", "label", "unit", "status", "n", "shown", "sum",
                      "sum_sq", "sum_sq_dev", "source"]

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: no real time in the file
SITE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}$")


def number(value) -> str:
    """A value as CSV text: integers plain, floats in the shortest exact form, missing empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return ""
    return repr(value)


def _csv(columns: list[str], rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([v if isinstance(v, str) else number(v)
                         for v in (row.get(c) for c in columns)])
    return buf.getvalue().encode("utf-8")


def _json(data) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
            + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shown(status: str, value: int, min_cell: int, *, prefix: str = "") -> str:
    if status == PUBLISHED:
        return f"{prefix}{value}"
    if status == SMALL:
        return f"{prefix}< {min_cell}"
    return "suppressed"


def check_site(site: str) -> str:
    if not isinstance(site, str) or not SITE_PATTERN.match(site):
        raise NetworkError(
            f"--site {site!r}: name the site with 1-40 letters, digits, spaces, '_', '.' or "
            f"'-', starting with a letter or digit (e.g. --site 'PICU Leeds'); the name is "
            f"shown in the pooled report.")
    return site


@dataclass
class SitePackage:
    """A package before its preview is rendered: the data files and the manifest fields."""

    site: str
    min_cell: int
    files: dict[str, bytes]
    manifest: dict
    cells: list[CountCell] = field(repr=False)
    protection: Protection = field(repr=False)

    def finalize(self, preview_html: str) -> dict[str, bytes]:
        """Every file of the zip: the data files, ``preview.html`` and ``manifest.json`` with
        the SHA-256 of each of the others."""
        files = dict(self.files)
        files[PREVIEW] = preview_html.encode("utf-8")
        manifest = dict(self.manifest)
        manifest["files"] = {name: sha256(data) for name, data in sorted(files.items())}
        files[MANIFEST] = _json(manifest)
        return dict(sorted(files.items()))


def _markers(run: SiteRun, status: dict[str, str], min_cell: int) -> list[dict]:
    rows = []
    for marker in run.markers:
        for tp in run.timepoints:
            pairs = run.pairs[(run.pairs["marker"] == marker.variable)
                              & (run.pairs["timepoint"] == tp.name)]
            st = status[cell_key("marker", marker.variable, tp.name, "n")]
            row = {"marker": marker.variable, "label": marker.label, "unit": marker.unit or "",
                   "timepoint": tp.name, "timepoint_label": tp.label,
                   "target_hours": tp.target_hours, "status": st,
                   "shown": shown(st, len(pairs), min_cell, prefix="n = ")}
            if st == SMALL:
                row["shown"] = f"n < {min_cell}"
            if st == PUBLISHED:
                summary = PairedSummary.of(pairs["baseline"], pairs["followup"])
                row["n"] = summary.n
                for part in MOMENT_PARTS:
                    m = getattr(summary, part)
                    row |= {f"sum_{part}": m.total, f"sum_sq_{part}": m.sum_sq,
                            f"sum_sq_dev_{part}": m.sum_sq_dev}
                test = summary.t_test(run.alternative)
                row |= {"mean_difference": test.mean_difference,
                        "se_difference": test.se_difference}
            rows.append(row)
    return rows


def _continuous(run: SiteRun, status: dict[str, str], min_cell: int) -> list[dict]:
    rows = []
    for c in run.continuous:
        st = status[cell_key(c.section, c.variable, None, "n")]
        row = {"section": c.section, "variable": c.variable, "label": c.label,
               "unit": c.unit or "", "status": st,
               "shown": f"n < {min_cell}" if st == SMALL else shown(st, c.n, min_cell,
                                                                     prefix="n = ")}
        if st == PUBLISHED:
            row["n"] = c.n
            if c.total is not None:
                row |= {"sum": c.total, "sum_sq_dev": c.sum_sq_dev,
                        "sum_sq": c.sum_sq_dev + c.total ** 2 / c.n, "source": c.source}
            else:
                row["source"] = c.source
        rows.append(row)
    return rows


def build_site_package(run: SiteRun, site: str, min_cell: int = DEFAULT_MIN_CELL
                       ) -> SitePackage:
    """The aggregate files of ``run`` with small cells suppressed at ``min_cell``."""
    check_site(site)
    check_min_cell(min_cell)
    cells, relations = count_tables(run)
    protection = protect([c.cell() for c in cells], relations, min_cell)
    status = protection.status
    counts = [{"section": c.section, "variable": c.variable, "label": c.label,
               "timepoint": c.timepoint or "", "level": c.level or "",
               "derived": c.derived, "status": status[c.key],
               "count": c.value if status[c.key] == PUBLISHED else None,
               "shown": shown(status[c.key], c.value, min_cell)} for c in cells]
    counts += [{"section": c.section, "variable": c.variable, "label": c.label, "timepoint": "",
                "level": c.level or "", "derived": False, "status": NOT_RECORDED,
                "count": None, "shown": NOT_RECORDED} for c in run.not_recorded]
    files = {
        COUNTS_CSV: _csv(COUNTS_COLUMNS, counts),
        MARKERS_CSV: _csv(MARKERS_COLUMNS, _markers(run, status, min_cell)),
        CONTINUOUS_CSV: _csv(CONTINUOUS_COLUMNS, _continuous(run, status, min_cell)),
        RELATIONS_JSON: _json([{"name": r.name, "terms": [list(t) for t in r.terms]}
                               for r in relations]),
    }
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "site": site,
        "study": {"id": run.study_id, "title": run.title, "sha256": run.study_sha256,
                  "hash_of": run.study_hash_of, "contents": run.study_text},
        "hyperinflam_version": run.hyperinflam_version,
        "packaged_with": __version__,
        "engine": {"name": run.engine, "version": run.engine_version},
        "data_source": run.data_source,
        "run_date": run.run_date,
        "min_cell": min_cell,
        "suppression": {
            "rule": (f"counts 1 to {min_cell - 1} suppressed ('< {min_cell}'); complementary "
                     f"suppression ('suppressed') until no suppressed count can be recovered "
                     f"from the published counts and the relations in {RELATIONS_JSON} (linear "
                     f"algebra and bounds); zeros published; nothing rounded"),
            "cells": len(cells),
            "small": protection.count(SMALL),
            "complementary": protection.count(COMPLEMENTARY),
            "not_recorded": len(run.not_recorded),
        },
        "alternative": run.alternative,
    }
    return SitePackage(site, min_cell, files, manifest, cells, protection)


def write_package_zip(files: dict[str, bytes], out: str | Path) -> Path:
    """Write ``files`` into the zip ``out`` deterministically (sorted, fixed entry dates)."""
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise NetworkError(f"--out {out}: the site package is a zip file; name it SITE.zip.")
    if out.is_dir():
        raise NetworkError(f"--out {out}: is a folder; give a file name such as site.zip.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name], compresslevel=9)
    tmp.replace(out)
    return out
