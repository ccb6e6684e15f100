"""A network study end to end: one synthetic cohort split into seven sites of different sizes
(two below the minimum cell), each site runs the founding study and shares a package, the
coordinator pools them.

What is checked, and against what (independent of hyperinflam.study.network):

* the pooled paired t-test (n, mean difference, SD, t, df, p) against scipy.stats.ttest_rel on
  all the contributing sites' patients together, read from each site's observations.csv
  (relative 1e-9), for every marker;
* the fixed-effect estimate against an inverse-variance computation by hand from the same
  patients; DerSimonian-Laird by its closed form; REML by maximising the restricted likelihood
  with scipy;
* no suppressed count of any package can be recovered: an attacker written here from what the
  cells mean (flow steps and their exclusions, margins, with/without, n/no value, nested deaths)
  solves every combination exactly (rational Gaussian elimination) and propagates bounds;
* tampered packages (one byte of a file, a flipped byte of the zip, another study, an edited
  manifest, an extra file) are refused with a message naming the site and the file;
* no file of any package holds an identifier, a patient label, a date or a time (except the
  manifest's run date and the coordinator's own study text), or a free-text level of the data;
* (tests/test_engines.py) the packages of a site on DuckDB and on Spark are identical byte for
  byte, except the engine and the run date;
* the pooled report opens in Chromium without a network request.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import zipfile
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from hyperinflam.engine import connect
from hyperinflam.report.files import write_results
from hyperinflam.report.network import pool_sites, share_site
from hyperinflam.schema import CANONICAL_TABLES
from hyperinflam.errors import NetworkError
from hyperinflam.study.network import read_packages
from hyperinflam.study.run import run_study

#: Not in the quick subset (pytest -m "not slow"):
#: seven synthetic sites built, screened and studied (minutes).
pytestmark = pytest.mark.slow

MIN_CELL = 10
REL = 1e-9
#: Patients given anakinra per site (the cohort sizes, before the study's own rules).
SITE_SIZES = {"Alder": 46, "Birch": 38, "Cedar": 29, "Dogwood": 21, "Elm": 13, "Fir": 7,
              "Gorse": 3}
SEED = 2017


def _copy_site(src: Path, dst: Path, persons: list[str]) -> None:
    con = connect(dst)
    raw = con.con
    raw.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
    raw.execute("CREATE TEMP TABLE site_persons (person_id VARCHAR)")
    raw.executemany("INSERT INTO site_persons VALUES (?)", [[p] for p in persons])
    for table in CANONICAL_TABLES:
        raw.execute(f"INSERT INTO {table.name} SELECT * FROM src.{table.name} "
                    f"WHERE person_id IN (SELECT person_id FROM site_persons)")
    raw.execute("DETACH src")
    con.disconnect()


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """Seven site databases, their study runs, their packages and the pooled outputs."""
    from hyperinflam.sources.csv import load_csv_folder
    from hyperinflam.synth.parameters import SynthParams
    from hyperinflam.synth.writer import synthesize

    root = tmp_path_factory.mktemp("network")
    synthesize(root / "csv", 215, SEED, params=SynthParams(mix=(0.8, 0.05, 0.1, 0.05)))
    all_db = root / "all.duckdb"
    con = connect(all_db)
    assert load_csv_folder(con, root / "csv").reconciles
    treated = sorted(con.con.execute(
        "SELECT DISTINCT person_id FROM drug_administration WHERE drug = 'anakinra'"
    ).fetchall())
    others = sorted(set(r[0] for r in con.con.execute("SELECT person_id FROM person")
                        .fetchall()) - {t[0] for t in treated})
    ids = {"person": [r[0] for r in con.con.execute("SELECT person_id FROM person").fetchall()],
           "stay": [r[0] for r in con.con.execute("SELECT stay_id FROM stay").fetchall()],
           "reasons": sorted({r[0] for r in con.con.execute(
               "SELECT admission_reason FROM stay WHERE admission_reason IS NOT NULL")
               .fetchall()})}
    con.disconnect()
    treated = [t[0] for t in treated]
    assert len(treated) >= sum(SITE_SIZES.values())
    sites, start = {}, 0
    for i, (name, size) in enumerate(SITE_SIZES.items()):
        persons = treated[start:start + size] + others[i::len(SITE_SIZES)]
        start += size
        db = root / f"{name}.duckdb"
        _copy_site(all_db, db, persons)
        site_con = connect(db, read_only=True)
        out = root / f"{name}-run"
        write_results(run_study(site_con, "rajasekaran2014"), out)
        site_con.disconnect()
        zip_path = root / f"{name}.zip"
        summary = share_site(out, name, zip_path, min_cell=MIN_CELL)
        sites[name] = SimpleNamespace(name=name, db=db, run=out, zip=zip_path,
                                      summary=summary)
    pooled = pool_sites([s.zip for s in sites.values()], root / "pooled")
    return SimpleNamespace(root=root, sites=sites, pooled=pooled, ids=ids)


# ---------------------------------------------------------------------------------------------
# Independent readers of what the sites wrote and shared
# ---------------------------------------------------------------------------------------------
def site_pairs(run_dir: Path, marker: str) -> pd.DataFrame:
    """The site's patient-level (baseline, day-7) pairs of a marker, from observations.csv."""
    obs = pd.read_csv(run_dir / "observations.csv")
    obs = obs[(obs["variable"] == marker) & obs["role"].isin(["baseline", "day7"])]
    wide = obs.pivot_table(index="patient", columns="role", values="value", aggfunc="first")
    for role in ("baseline", "day7"):
        if role not in wide.columns:
            wide[role] = np.nan
    return wide.dropna(subset=["baseline", "day7"])


def package_files(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def package_table(zip_path: Path, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(package_files(zip_path)[name].decode("utf-8"))))


def site_results(run: Path) -> pd.DataFrame:
    """A site's results.csv, its ``stat_name`` read as ``statistic`` (the pooled results' name)."""
    return pd.read_csv(run / "results.csv").rename(columns={"stat_name": "statistic"})


def pooled_value(results: pd.DataFrame, **where) -> float:
    sel = results
    for column, value in where.items():
        sel = sel[sel[column].isna()] if value is None else sel[sel[column] == value]
    assert len(sel) == 1, (where, len(sel))
    return float(sel["value"].iloc[0])


MARKERS = ["crp", "ferritin", "fibrinogen", "anc", "alc"]


def contributing(network, marker: str) -> list[str]:
    out = []
    for name, site in network.sites.items():
        row = next(r for r in package_table(site.zip, "markers.csv") if r["marker"] == marker)
        if row["status"] == "published":
            out.append(name)
    return out


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------
def test_sizes_cover_small_and_large_sites(network):
    cohorts = {}
    for name, site in network.sites.items():
        res = site_results(site.run)
        cohorts[name] = pooled_value(res, section="flow", variable="cohort", statistic="count")
    assert len(cohorts) >= 6 and len(set(cohorts.values())) == len(cohorts)
    assert sum(1 for c in cohorts.values() if c < MIN_CELL) >= 2
    assert sum(1 for c in cohorts.values() if c >= 2 * MIN_CELL) >= 3


@pytest.mark.parametrize("marker", MARKERS)
def test_pooled_paired_t_equals_scipy_on_all_patients(network, marker):
    res = network.pooled.results.results
    sites = contributing(network, marker)
    assert len(sites) >= 2
    # sites whose marker n is below the minimum cell are never pooled
    for name, site in network.sites.items():
        if len(site_pairs(site.run, marker)) < MIN_CELL:
            assert name not in sites
    pairs = pd.concat([site_pairs(network.sites[s].run, marker) for s in sites])
    b, f = pairs["baseline"].to_numpy(), pairs["day7"].to_numpy()
    expected = stats.ttest_rel(b, f)
    q = dict(section="marker", group="pooled", variable=marker, timepoint="change")
    assert pooled_value(res, statistic="n", **q) == len(pairs)
    assert pooled_value(res, statistic="mean_difference", **q) == pytest.approx(
        np.mean(f - b), rel=REL)
    assert pooled_value(res, statistic="sd", **q) == pytest.approx(np.std(f - b, ddof=1),
                                                                    rel=REL)
    t = res[(res["section"] == "marker") & (res["group"] == "pooled")
            & (res["variable"] == marker) & (res["timepoint"] == "change")]
    t_stat = t[t["statistic"] == "t_statistic"]["value"].iloc[0]
    p = t[(t["statistic"] == "p_value") & t["method"].str.startswith("paired t-test")]
    assert t_stat == pytest.approx(expected.statistic, rel=REL)
    assert float(p["value"].iloc[0]) == pytest.approx(expected.pvalue, rel=REL)
    assert pooled_value(res, statistic="df", **q) == expected.df
    for timepoint, values in (("baseline", b), ("day7", f)):
        w = dict(section="marker", group="pooled", variable=marker, timepoint=timepoint)
        assert pooled_value(res, statistic="mean", **w) == pytest.approx(values.mean(), rel=REL)
        assert pooled_value(res, statistic="sd", **w) == pytest.approx(values.std(ddof=1),
                                                                       rel=REL)
    # what aggregates cannot give is said so, with no value
    wil = t[(t["statistic"] == "p_value") & (t["method"] == "Wilcoxon signed-rank")]
    assert wil["value"].isna().all() and "aggregates cannot" in wil["warning"].iloc[0]


def test_pooling_is_exact_at_ferritin_magnitudes():
    """Ferritin in the tens of thousands ng/mL: the centred sums (parallel-variance formula)
    keep every digit that the textbook sum-of-squares formula would lose."""
    from hyperinflam.study.network.paired import PairedSummary

    rng = np.random.default_rng(7)
    parts, all_b, all_f = [], [], []
    for n in (12, 30, 9, 51):
        b = 80_000.0 + rng.normal(0, 0.5, n)  # a small spread on a large value
        f = b - 20_000.0 + rng.normal(0, 0.4, n)
        parts.append(PairedSummary.of(b, f))
        all_b.append(b)
        all_f.append(f)
    b, f = np.concatenate(all_b), np.concatenate(all_f)
    pooled = PairedSummary.combine(parts)
    test = pooled.t_test()
    expected = stats.ttest_rel(b, f)
    assert test.t_statistic == pytest.approx(expected.statistic, rel=REL)
    assert pooled.baseline.sd == pytest.approx(np.std(b, ddof=1), rel=REL)
    # the textbook formula on the same sums misses the 1e-9 the centred sums meet
    naive = math.sqrt((pooled.baseline.sum_sq - pooled.baseline.total ** 2 / pooled.n)
                      / (pooled.n - 1))
    assert abs(naive / np.std(b, ddof=1) - 1) > 1e-8


@pytest.mark.parametrize("marker", ["crp", "fibrinogen"])
def test_meta_analysis_against_independent_computations(network, marker):
    res = network.pooled.results.results
    y, v = [], []
    for s in contributing(network, marker):
        pairs = site_pairs(network.sites[s].run, marker)
        d = (pairs["day7"] - pairs["baseline"]).to_numpy()
        y.append(d.mean())
        v.append(d.var(ddof=1) / d.size)
    y, v = np.array(y), np.array(v)
    w = 1 / v
    q = dict(section="meta", variable=marker, timepoint="change")
    fixed = "fixed effect (inverse variance)"
    assert pooled_value(res, group=fixed, statistic="estimate", **q) == pytest.approx(
        np.sum(w * y) / np.sum(w), rel=REL)
    assert pooled_value(res, group=fixed, statistic="se", **q) == pytest.approx(
        1 / math.sqrt(np.sum(w)), rel=REL)
    # DerSimonian-Laird, closed form (truncated at 0)
    mu = np.sum(w * y) / np.sum(w)
    Q = np.sum(w * (y - mu) ** 2)
    tau2 = max(0.0, (Q - (len(y) - 1)) / (np.sum(w) - np.sum(w ** 2) / np.sum(w)))
    dl = "random effects, DerSimonian-Laird"
    assert pooled_value(res, group="heterogeneity", statistic="q", **q) == pytest.approx(Q,
                                                                                         rel=REL)
    assert pooled_value(res, group=dl, statistic="tau2", **q) == pytest.approx(tau2, rel=1e-7,
                                                                               abs=1e-9)
    w_re = 1 / (v + tau2)
    assert pooled_value(res, group=dl, statistic="estimate", **q) == pytest.approx(
        np.sum(w_re * y) / np.sum(w_re), rel=REL)

    # REML: the maximiser of the restricted log-likelihood, found here by scipy
    def neg_reml(t2):
        ww = 1 / (v + t2)
        m = np.sum(ww * y) / np.sum(ww)
        return 0.5 * (np.sum(np.log(v + t2)) + np.log(np.sum(ww)) + np.sum(ww * (y - m) ** 2))

    best = optimize.minimize_scalar(neg_reml, bounds=(0, 100 * (np.var(y) + v.max())),
                                    method="bounded", options={"xatol": 1e-12})
    t2 = best.x if neg_reml(best.x) < neg_reml(0.0) else 0.0
    reml = pooled_value(res, group="random effects, REML", statistic="tau2", **q)
    assert reml == pytest.approx(t2, rel=1e-5, abs=1e-6 * (np.var(y) + 1))
    i2 = pooled_value(res, group="heterogeneity", statistic="i2", **q)
    assert i2 == pytest.approx(100 * max(0.0, (Q - (len(y) - 1)) / Q), rel=REL, abs=1e-12)


def test_pooled_counts_sum_the_sites_that_published_them(network):
    res = network.pooled.results.results
    for variable, level in (("sex", "female"), ("health_status", "underlying disease")):
        total, left_out = 0, []
        for name, site in network.sites.items():
            row = next(r for r in package_table(site.zip, "counts.csv")
                       if r["variable"] == variable and r["level"] == level)
            truth = pooled_value(site_results(site.run), section="baseline",
                                 variable=variable, level=level, statistic="count")
            if row["status"] == "published":
                assert int(row["count"]) == truth
                total += truth
            else:
                left_out.append(name)
        sel = res[(res["group"] == "pooled") & (res["variable"] == variable)
                  & (res["level"] == level) & (res["statistic"] == "count")]
        assert float(sel["value"].iloc[0]) == total
        for name in left_out:
            assert name in sel["warning"].iloc[0]
    # the pooled mean age equals the n-weighted mean of the sites' own means
    num = den = 0.0
    for name, site in network.sites.items():
        row = next(r for r in package_table(site.zip, "continuous.csv")
                   if r["variable"] == "age_years")
        if row["status"] == "published":
            own = site_results(site.run)
            n = pooled_value(own, section="baseline", variable="age_years", statistic="n")
            num += n * pooled_value(own, section="baseline", variable="age_years",
                                    statistic="mean")
            den += n
    assert pooled_value(res, section="baseline", group="pooled", variable="age_years",
                        statistic="mean") == pytest.approx(num / den, rel=1e-12)


def test_results_files_follow_the_results_format(network):
    from hyperinflam.study.network.pool import POOL_COLUMNS

    out = network.pooled.out
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:len(POOL_COLUMNS)] == POOL_COLUMNS
    doc = json.loads((out / "results.json").read_text())
    assert set(doc) >= {"study", "provenance", "results"}
    assert doc["study"]["study"]["id"] == "rajasekaran2014"
    assert len(doc["provenance"]["network"]["sites"]) == len(SITE_SIZES)
    assert len(doc["results"]) == len(pd.read_csv(out / "results.csv"))


# ---------------------------------------------------------------------------------------------
# Suppression: nothing can be recovered
# ---------------------------------------------------------------------------------------------
def _attacker_relations(cells: list[dict]) -> list[dict[str, int]]:
    """The sums a reader knows hold, from what the cells mean (written here, not taken from
    the package's relations.json)."""
    key = {(c["section"], c["variable"], c["timepoint"], c["level"]): i
           for i, c in enumerate(cells)}
    cohort = key[("flow", "cohort", "", "")]
    relations = []
    chain = [c["variable"] for c in cells if c["section"] == "flow" and c["level"] == ""
             and c["derived"] == "false" and c["variable"].startswith(("stays", "cohort"))]
    for prev, step in zip(chain, chain[1:]):
        relations.append({key[("flow", prev, "", "")]: 1, key[("flow", step, "", "")]: -1,
                          key[("flow", f"excluded_{step}", "", "")]: -1})
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cells):
        groups.setdefault((c["section"], c["variable"], c["timepoint"]), []).append(i)
    for (section, variable, timepoint), members in groups.items():
        levels = {cells[i]["level"]: i for i in members}
        if section == "flow":
            if "without" in levels:
                relations.append({levels[""]: 1, levels["without"]: 1, cohort: -1})
            continue
        if "not analysable" in levels:
            relations.append({levels["n"]: 1, levels["not analysable"]: 1, cohort: -1})
        elif "no value" in levels:
            relations.append({levels["n"]: 1, levels["no value"]: 1, cohort: -1})
        elif any(lv.startswith("without") for lv in levels):
            for lv, i in levels.items():
                if lv == "without":
                    relations.append({levels[""]: 1, i: 1, cohort: -1})
                elif lv.startswith("without ("):
                    relations.append({levels[lv[len("without ("):-1]]: 1, i: 1, cohort: -1})
            if variable == "death":
                anyt = levels["any time"]
                relations.append({anyt: 1, levels["in the PICU stay"]: -1,
                                  levels["after PICU discharge"]: -1})
                within = next(lv for lv in levels if lv.startswith("within"))
                after = next(lv for lv in levels if lv.startswith("after the window"))
                relations.append({anyt: 1, levels[within]: -1, levels[after]: -1})
        else:  # categorical: the levels add up to the cohort
            relations.append({**{i: 1 for i in members}, cohort: -1})
    return relations


def _recovered_exactly(cells, relations, hidden: list[int]) -> set[int]:
    """Hidden cells determined by the relations and the published counts: exact rational
    Gaussian elimination of the system restricted to the hidden cells."""
    col = {c: j for j, c in enumerate(hidden)}
    rows = []
    for rel in relations:
        if not any(c in col for c in rel):
            continue
        row = [Fraction(0)] * (len(hidden) + 1)
        for c, coef in rel.items():
            if c in col:
                row[col[c]] += coef
            else:
                row[-1] -= coef * int(cells[c]["count"])
        rows.append(row)
    pivot_row, pivots = 0, []
    for j in range(len(hidden)):
        r = next((i for i in range(pivot_row, len(rows)) if rows[i][j] != 0), None)
        if r is None:
            continue
        rows[pivot_row], rows[r] = rows[r], rows[pivot_row]
        p = rows[pivot_row][j]
        rows[pivot_row] = [x / p for x in rows[pivot_row]]
        for i in range(len(rows)):
            if i != pivot_row and rows[i][j] != 0:
                factor = rows[i][j]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[pivot_row])]
        pivots.append(j)
        pivot_row += 1
    out = set()
    for row in rows[:pivot_row]:
        nonzero = [j for j in range(len(hidden)) if row[j] != 0]
        if len(nonzero) == 1:
            out.add(hidden[nonzero[0]])
    return out


def _recovered_by_bounds(cells, relations, hidden: list[int], min_cell: int) -> set[int]:
    """Hidden cells pinned to one value by interval propagation: '< N' in [1, N-1],
    'suppressed' in [N, inf)."""
    lo = {c: 1 if cells[c]["status"] == "small" else min_cell for c in hidden}
    hi = {c: min_cell - 1 if cells[c]["status"] == "small" else math.inf for c in hidden}
    for _ in range(50):
        changed = False
        for rel in relations:
            unknown = [c for c in rel if c in lo]
            if not unknown:
                continue
            const = sum(coef * int(cells[c]["count"]) for c, coef in rel.items() if c not in lo)
            for c in unknown:
                a = rel[c]
                # a * x_c = -const - sum_{others} coef * x
                others_lo = others_hi = -const
                for o in unknown:
                    if o == c:
                        continue
                    k = rel[o]
                    lo_term, hi_term = sorted((-k * lo[o], -k * hi[o]))
                    others_lo += lo_term
                    others_hi += hi_term
                new_lo, new_hi = sorted((others_lo / a, others_hi / a))
                new_lo = math.ceil(new_lo - 1e-9) if math.isfinite(new_lo) else -math.inf
                new_hi = math.floor(new_hi + 1e-9) if math.isfinite(new_hi) else math.inf
                if new_lo > lo[c]:
                    lo[c], changed = new_lo, True
                if new_hi < hi[c]:
                    hi[c], changed = new_hi, True
        if not changed:
            break
    return {c for c in hidden if lo[c] == hi[c]}


def test_no_suppressed_count_can_be_recovered(network):
    checked = 0
    for name, site in network.sites.items():
        # a count the site does not record has no value to recover (checked below)
        cells = [c for c in package_table(site.zip, "counts.csv")
                 if c["status"] != "not recorded"]
        relations = _attacker_relations(cells)
        hidden = [i for i, c in enumerate(cells) if c["status"] != "published"]
        for i, c in enumerate(cells):
            if c["status"] == "published":
                assert int(c["count"]) == 0 or int(c["count"]) >= MIN_CELL, (name, c)
                assert c["shown"] == c["count"]
            else:
                assert c["count"] == ""
                assert c["shown"] == (f"< {MIN_CELL}" if c["status"] == "small"
                                      else "suppressed")
        exact = _recovered_exactly(cells, relations, hidden)
        bounded = _recovered_by_bounds(cells, relations, hidden, MIN_CELL)
        assert not exact, (name, [cells[i] for i in exact])
        assert not bounded, (name, [cells[i] for i in bounded])
        checked += len(hidden)
    assert checked > 20  # the test attacked real suppressions


def test_small_counts_are_suppressed_with_their_true_values(network):
    """Every true count of 1..N-1 of the site's results is shown as '< N' in its package."""
    for name, site in network.sites.items():
        own = site_results(site.run)
        counts = own[(own["statistic"] == "count") & own["section"].isin(
            ["baseline", "cotherapy", "safety", "phenotype"])
            & (own["variable"] != "admission_reason")]
        cells = {(c["section"], c["variable"], c["level"]): c
                 for c in package_table(site.zip, "counts.csv")}
        for section, variable, level, value in zip(counts["section"], counts["variable"],
                                                   counts["level"].fillna(""), counts["value"]):
            if section == "baseline" and variable == "health_status" and level == "not recorded":
                # conditions not recorded at the site: every level of the package says so
                for lv in ("previously healthy", "underlying disease"):
                    assert cells[(section, variable, lv)]["status"] == "not recorded"
                continue
            cell = cells[(section, variable, level)]
            if math.isnan(value):  # a domain the site's source does not record: never a 0
                assert cell["status"] == "not recorded" and cell["count"] == "", (name, cell)
                assert cell["shown"] == "not recorded"
                continue
            if 0 < value < MIN_CELL:
                assert cell["status"] == "small" and cell["count"] == "", (name, cell)
            elif cell["status"] == "published":
                assert int(cell["count"]) == value


def test_a_count_a_site_does_not_record_is_not_pooled_as_zero(network):
    """A site whose source holds no death record: its death counts are "not recorded" in its
    package, and the pooled death counts are the sum over the other sites, naming it."""
    res = network.pooled.results.results
    silent, recording = [], {}
    for name, site in network.sites.items():
        own = site_results(site.run)
        deaths = own[(own["section"] == "safety") & (own["variable"] == "death")
                     & (own["statistic"] == "count") & (own["level"] == "any time")]
        if deaths["value"].isna().all():
            silent.append(name)
        else:
            recording[name] = int(deaths["value"].iloc[0])
    assert silent and recording  # the split gives both kinds of site
    sel = res[(res["section"] == "safety") & (res["group"] == "pooled")
              & (res["variable"] == "death") & (res["level"] == "any time")
              & (res["statistic"] == "count")]
    warning = sel["warning"].iloc[0]
    for name in silent:
        assert f"{name} (not recorded)" in warning
        own = res[(res["section"] == "safety") & (res["group"] == name)
                  & (res["variable"] == "death") & (res["level"] == "any time")
                  & (res["statistic"] == "count")]
        assert own["value"].isna().all() and own["warning"].iloc[0].startswith("not recorded")
    published = {n: c for n, c in recording.items()
                 if next(r for r in package_table(network.sites[n].zip, "counts.csv")
                         if r["variable"] == "death" and r["level"] == "any time"
                         )["status"] == "published"}
    assert float(sel["value"].iloc[0]) == sum(published.values())


def test_marker_below_min_cell_is_shared_as_n_below_only(network):
    seen_small = 0
    for name, site in network.sites.items():
        for row in package_table(site.zip, "markers.csv"):
            true_n = len(site_pairs(site.run, row["marker"]))
            numbers = {k: v for k, v in row.items() if k.startswith(("sum", "mean", "se", "n"))
                       and k != "n"}
            if 0 < true_n < MIN_CELL:
                seen_small += 1
                assert row["status"] == "small" and row["shown"] == f"n < {MIN_CELL}"
            if row["status"] != "published":
                assert row["n"] == "" and all(v == "" for v in numbers.values()), row
            else:
                assert int(row["n"]) == true_n
    assert seen_small >= 5


# ---------------------------------------------------------------------------------------------
# Nothing identifying in a package
# ---------------------------------------------------------------------------------------------
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME = re.compile(r"\b\d{1,2}:\d{2}\b")
LABEL = re.compile(r"\bP\d{2,}\b")


def _fields(fname: str, text: str) -> list[str]:
    """Every value of a file: CSV fields, JSON strings, HTML element texts."""
    if fname.endswith(".csv"):
        return [f for row in csv.reader(io.StringIO(text)) for f in row]
    if fname.endswith(".json"):
        out = []

        def walk(x):
            if isinstance(x, dict):
                for v in x.values():
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
            elif isinstance(x, str):
                out.append(x)
        walk(json.loads(text))
        return out
    return re.findall(r">([^<]+)<", text)


def test_no_file_holds_an_id_a_date_a_time_or_free_text(network):
    study_text = (Path(__file__).parents[1] / "src" / "hyperinflam" / "studies"
                  / "rajasekaran2014.toml").read_text(encoding="utf-8")
    ids = set(network.ids["person"]) | set(network.ids["stay"])
    for name, site in network.sites.items():
        files = package_files(site.zip)
        assert sorted(files) == ["continuous.csv", "counts.csv", "manifest.json",
                                 "markers.csv", "preview.html", "relations.json"]
        manifest = json.loads(files["manifest.json"])
        # the two allowed exceptions, checked for what they are, then removed before the scan
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", manifest["run_date"])
        assert manifest["study"]["contents"] == study_text  # the coordinator's own file
        for fname, data in files.items():
            text = data.decode("utf-8")
            if fname == "manifest.json":
                manifest_scan = dict(manifest, run_date=None,
                                     study=dict(manifest["study"], contents=None))
                text = json.dumps(manifest_scan)
            elif fname == "preview.html":
                from markupsafe import escape

                assert str(escape(study_text)) in text
                text = text.replace(str(escape(study_text)), "").replace(
                    manifest["run_date"], "")
            assert not ISO_DATE.search(text), (name, fname, ISO_DATE.search(text))
            assert not TIME.search(text), (name, fname, TIME.search(text))
            assert not LABEL.search(text), (name, fname, LABEL.search(text))
            tokens = set(re.findall(r"[A-Za-z0-9_.-]+", text))
            assert not tokens & ids, (name, fname, sorted(tokens & ids)[:3])
            # free text of the data never leaves: no field or table cell is an admission reason
            fields = _fields(fname, text)
            assert fields, fname
            leaked = {f.strip().lower() for f in fields} & {r.lower() for r in
                                                           network.ids["reasons"]}
            assert not leaked, (name, fname, leaked)
        # no patient-level rows: one row per marker and timepoint
        assert len(package_table(site.zip, "markers.csv")) == len(MARKERS)


def test_a_package_is_deterministic(network, tmp_path):
    site = network.sites["Cedar"]
    again = share_site(site.run, "Cedar", tmp_path / "again.zip", min_cell=MIN_CELL)
    assert again.path.read_bytes() == site.zip.read_bytes()
    assert again.sha256 == site.summary.sha256


# ---------------------------------------------------------------------------------------------
# Tampering
# ---------------------------------------------------------------------------------------------
def _rewrite(zip_path: Path, out: Path, change) -> Path:
    files = package_files(zip_path)
    change(files)
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out


def test_tampered_packages_are_refused(network, tmp_path):
    good = [s.zip for s in network.sites.values()]
    birch = network.sites["Birch"].zip

    def one_byte(files):
        data = bytearray(files["markers.csv"])
        i = data.index(b"published") + 2
        data[i] = ord("X")
        files["markers.csv"] = bytes(data)

    bad = _rewrite(birch, tmp_path / "Birch.zip", one_byte)
    with pytest.raises(NetworkError, match=r"site 'Birch' \(Birch\.zip\): markers\.csv was "
                                           r"changed"):
        read_packages(good[:1] + [bad])

    raw = bytearray(birch.read_bytes())  # a flipped byte in the zip's compressed counts.csv
    with zipfile.ZipFile(birch) as zf:
        info = zf.getinfo("counts.csv")
    start = info.header_offset + 30 + int.from_bytes(raw[info.header_offset + 26:
                                                         info.header_offset + 28], "little") \
        + int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    raw[start + info.compress_size // 2] ^= 0xFF
    flipped = tmp_path / "flipped" / "Birch.zip"
    flipped.parent.mkdir()
    flipped.write_bytes(bytes(raw))
    with pytest.raises(NetworkError, match=r"site 'Birch' \(Birch\.zip\): counts\.csv is "
                                           r"damaged"):
        read_packages([flipped])

    def edit_study(files):
        m = json.loads(files["manifest.json"])
        m["study"]["contents"] = m["study"]["contents"].replace("day7_tolerance_hours = 24",
                                                                "day7_tolerance_hours = 48")
        files["manifest.json"] = json.dumps(m).encode()

    with pytest.raises(NetworkError, match="study text does not match"):
        read_packages([_rewrite(birch, tmp_path / "edited.zip", edit_study)])

    def extra(files):
        files["patients.csv"] = b"patient\nP01\n"

    with pytest.raises(NetworkError, match="patients.csv, which its manifest.json does not"):
        read_packages([_rewrite(birch, tmp_path / "extra.zip", extra)])


def test_a_package_of_another_study_is_refused(network, tmp_path):
    """A site that ran a changed study file (day-7 window +/- 48 h): its study hash differs."""
    run = tmp_path / "other-run"
    shutil.copytree(network.sites["Elm"].run, run)
    doc = json.loads((run / "results.json").read_text())
    text = doc["provenance"]["study_file_text"].replace("day7_tolerance_hours = 24",
                                                        "day7_tolerance_hours = 48")
    assert text != doc["provenance"]["study_file_text"]
    doc["provenance"]["study_file_text"] = text
    (run / "results.json").write_text(json.dumps(doc))
    other = share_site(run, "Elm", tmp_path / "Elm.zip", min_cell=MIN_CELL).path
    packages = [s.zip for n, s in network.sites.items() if n != "Elm"] + [other]
    with pytest.raises(NetworkError, match=r"site 'Elm' \(Elm\.zip\) ran another study"):
        read_packages(packages)
    with pytest.raises(NetworkError, match="two packages name the site 'Alder'"):
        read_packages([network.sites["Alder"].zip, network.sites["Alder"].zip])


# ---------------------------------------------------------------------------------------------
# DuckDB and Spark give the same package: tests/test_engines.py (it shares the suite's one Spark
# study run), with this helper
# ---------------------------------------------------------------------------------------------
def without_run_fields(files: dict[str, bytes]) -> dict[str, bytes]:
    out = dict(files)
    manifest = json.loads(files["manifest.json"])
    engine, run_date = manifest.pop("engine"), manifest.pop("run_date")
    manifest["files"].pop("preview.html")
    out["manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    preview = files["preview.html"].decode()
    preview = re.sub(r'(<td id="manifest-engine">)[^<]*(</td>)', r"\1\2", preview)
    preview = re.sub(r'(<td id="manifest-run-date">)[^<]*(</td>)', r"\1\2", preview)
    assert engine["name"] in files["preview.html"].decode()
    out["preview.html"] = preview.encode()
    return out


# ---------------------------------------------------------------------------------------------
# The pages, in a browser
# ---------------------------------------------------------------------------------------------
def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, errors = [], []
    page.on("request", lambda req: requests.append(req.url))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="load")
    external = [u for u in requests if not u.startswith(("file://", "data:"))]
    assert requests and external == [], f"network requests: {external}"
    assert errors == [], errors
    return page


@pytest.mark.browser
def test_pooled_report_and_preview_open_offline(network, browser, tmp_path):
    page = _open(browser, (network.pooled.out / "report.html").as_uri())
    assert page.locator("#paired-table").is_visible()
    assert "C-reactive protein" in page.locator("#paired-table").inner_text()
    box = page.locator("figure.forest svg").first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    page.close()
    preview = tmp_path / "preview.html"
    preview.write_bytes(package_files(network.sites["Dogwood"].zip)["preview.html"])
    page = _open(browser, preview.as_uri())
    assert "What leaves this site" in page.locator("h1").inner_text()
    page.close()
