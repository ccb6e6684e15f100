"""``hyperinflam study share`` and ``hyperinflam study pool`` on the command line: the options
as the issue names them, help that teaches, clear refusals, an empty site, and one real process
per command.

Three sites: two synthetic ones of different sizes and one without a single patient (an empty
database). Each runs the founding study (the library's ``run_study``, as ``study run`` does);
the commands under test then share and pool. Expected values are read from the sites' own
``results.csv`` / ``observations.csv`` and computed with scipy, never from the package code.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from hyperinflam.cli import app
from hyperinflam.engine import connect
from hyperinflam.report.files import write_results
from hyperinflam.study.run import run_study

HYPERINFLAM = str(Path(sys.executable).with_name("hyperinflam"))
#: name -> (stays, seed): the synthetic mix is mostly anakinra-treated children
SITES = {"North": (40, 11), "South": (24, 12)}
MIX = (0.8, 0.05, 0.1, 0.05)


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), terminal_width=200)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from hyperinflam.sources.csv import load_csv_folder
    from hyperinflam.synth.parameters import SynthParams
    from hyperinflam.synth.writer import synthesize

    root = tmp_path_factory.mktemp("cli-network")
    out = {}
    for name, (stays, seed) in {**SITES, "Empty": (0, 0)}.items():
        db = root / f"{name}.duckdb"
        con = connect(db)
        if stays:
            synthesize(root / f"{name}-csv", stays, seed, params=SynthParams(mix=MIX))
            assert load_csv_folder(con, root / f"{name}-csv").reconciles
        con.disconnect()
        con = connect(db, read_only=True)
        write_results(run_study(con, "rajasekaran2014"), root / f"{name}-run")
        con.disconnect()
        out[name] = root / f"{name}-run"
    return SimpleNamespace(root=root, runs=out)


def _files(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _table(zip_path: Path, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(_files(zip_path)[name].decode("utf-8"))))


def _pairs(run: Path, marker: str) -> pd.DataFrame:
    obs = pd.read_csv(run / "observations.csv")
    obs = obs[(obs["variable"] == marker) & obs["role"].isin(["baseline", "day7"])]
    if obs.empty:
        return pd.DataFrame(columns=["baseline", "day7"])
    wide = obs.pivot_table(index="patient", columns="role", values="value", aggfunc="first")
    return wide.reindex(columns=["baseline", "day7"]).dropna()


@pytest.fixture(scope="module")
def shared(runs):
    zips = {}
    for name, run in runs.runs.items():
        zip_path = runs.root / f"{name}.zip"
        result = _invoke("study", "share", str(run), "--site", name, "--out", str(zip_path))
        assert result.exit_code == 0, result.output
        zips[name] = SimpleNamespace(zip=zip_path, output=result.output)
    return zips


def test_share_writes_the_package_and_its_preview_and_says_what_to_do(runs, shared):
    north = shared["North"]
    files = _files(north.zip)
    assert sorted(files) == ["continuous.csv", "counts.csv", "manifest.json", "markers.csv",
                             "preview.html", "relations.json"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["site"] == "North" and manifest["min_cell"] == 10  # the default
    beside = north.zip.with_name("North.preview.html")
    assert beside.read_bytes() == files["preview.html"]
    out = " ".join(north.output.split())
    assert str(north.zip) in out and "Review what leaves the site" in out
    assert "hyperinflam study pool" in out
    # the counts it reports are those of the package
    counts = _table(north.zip, "counts.csv")
    small = sum(1 for c in counts if c["status"] == "small")
    assert f"{small} shown as '< 10'" in out


@pytest.mark.parametrize("min_cell", [5, 11])
def test_share_takes_min_cell_5_and_11(runs, tmp_path, min_cell):
    zip_path = tmp_path / "North.zip"
    result = _invoke("study", "share", str(runs.runs["North"]), "--site", "North",
                     "--min-cell", str(min_cell), "--out", str(zip_path))
    assert result.exit_code == 0, result.output
    assert json.loads(_files(zip_path)["manifest.json"])["min_cell"] == min_cell
    truth = pd.read_csv(runs.runs["North"] / "results.csv")
    truth = truth[(truth["stat_name"] == "count") & (truth["section"] == "baseline")
                  & (truth["variable"] == "sex")]
    cells = {c["level"]: c for c in _table(zip_path, "counts.csv") if c["variable"] == "sex"}
    for level, value in zip(truth["level"], truth["value"]):
        if 0 < value < min_cell:
            assert cells[level]["shown"] == f"< {min_cell}"
        elif cells[level]["status"] == "published":
            assert int(cells[level]["count"]) == value
    for row in _table(zip_path, "markers.csv"):
        n = len(_pairs(runs.runs["North"], row["marker"]))
        assert (row["status"] == "published") == (n >= min_cell or n == 0) or \
            row["status"] == "complementary"


@pytest.mark.parametrize("bad", ["4", "0", "ten"])
def test_share_refuses_a_min_cell_below_5_in_one_message(runs, tmp_path, bad):
    result = _invoke("study", "share", str(runs.runs["North"]), "--site", "North",
                     "--min-cell", bad, "--out", str(tmp_path / "x.zip"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "--min-cell" in result.output
    assert not (tmp_path / "x.zip").exists()


def test_share_refusals_name_the_problem_and_the_fix(runs, tmp_path):
    not_a_run = tmp_path / "empty-folder"
    not_a_run.mkdir()
    result = _invoke("study", "share", str(not_a_run), "--site", "X", "--out",
                     str(tmp_path / "x.zip"))
    assert result.exit_code == 2 and "no results.json" in result.output
    assert "study run" in result.output
    result = _invoke("study", "share", str(runs.runs["North"]), "--site", "Bad/Name",
                     "--out", str(tmp_path / "x.zip"))
    assert result.exit_code == 2 and "--site 'Bad/Name'" in " ".join(result.output.split())
    result = _invoke("study", "share", str(runs.runs["North"]), "--site", "North",
                     "--out", str(tmp_path / "x.tar"))
    assert result.exit_code == 2 and "zip" in result.output
    result = _invoke("study", "share", str(runs.runs["North"]), "--out", str(tmp_path / "x.zip"))
    assert result.exit_code == 2 and "--site" in result.output  # required


def test_pool_equals_scipy_on_all_patients_and_includes_the_empty_site(runs, shared, tmp_path):
    out = tmp_path / "pooled"
    zips = [str(shared[n].zip) for n in ("North", "South", "Empty")]
    result = _invoke("study", "pool", *zips, "--study", "rajasekaran2015", "--out", str(out))
    assert result.exit_code == 2 and "--study rajasekaran2015" in result.output
    assert not out.exists()
    # the study the coordinator sent: a shipped study's name, or its file
    from importlib.resources import files as package_files

    study_file = tmp_path / "rajasekaran2014.toml"
    study_file.write_bytes((package_files("hyperinflam") / "studies" / "rajasekaran2014.toml")
                           .read_bytes())
    result = _invoke("study", "pool", *zips, "--study", "rajasekaran2014", "--out", str(out))
    assert result.exit_code == 0, result.output
    edited = tmp_path / "edited.toml"
    edited.write_text(study_file.read_text().replace("day7_tolerance_hours = 24",
                                                     "day7_tolerance_hours = 48"))
    result = _invoke("study", "pool", *zips, "--study", str(edited), "--out", str(out))
    assert result.exit_code == 2 and "site 'North' (North.zip) ran another study" in \
        " ".join(result.output.split())
    result = _invoke("study", "pool", *zips, "--study", str(study_file), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "North, South, Empty" in result.output
    assert {p.name for p in out.iterdir()} >= {"results.csv", "results.json", "report.html"}
    res = pd.read_csv(out / "results.csv")
    empty = _table(shared["Empty"].zip, "counts.csv")
    cohort = next(c for c in empty if c["section"] == "flow" and c["variable"] == "cohort")
    assert cohort["count"] == "0" and cohort["status"] == "published"
    pooled_cohort = res[(res["section"] == "flow") & (res["group"] == "pooled")
                        & (res["variable"] == "cohort") & (res["statistic"] == "count")]
    truth = 0
    for name in SITES:
        own = pd.read_csv(runs.runs[name] / "results.csv")
        truth += int(own[(own["section"] == "flow") & (own["variable"] == "cohort")
                         & (own["stat_name"] == "count")]["value"].iloc[0])
    assert float(pooled_cohort["value"].iloc[0]) == truth
    compared = 0
    for marker in ("crp", "ferritin", "fibrinogen", "anc", "alc"):
        # the sites whose package shares this marker's sums (a marker n can be withheld to
        # protect a small count, e.g. the patients without the pair)
        status = {n: next(r for r in _table(shared[n].zip, "markers.csv")
                          if r["marker"] == marker)["status"] for n in SITES}
        sites = [n for n in SITES if status[n] == "published"]
        for n in SITES:
            if len(_pairs(runs.runs[n], marker)) < 10:
                assert status[n] != "published"
        sel = res[(res["section"] == "marker") & (res["group"] == "pooled")
                  & (res["variable"] == marker) & (res["timepoint"] == "change")]
        value = dict(zip(sel["statistic"], sel["value"]))
        pairs = pd.concat([_pairs(runs.runs[n], marker) for n in sites]) if sites else None
        assert value["n"] == (len(pairs) if sites else 0)
        empty = res[(res["section"] == "marker") & (res["group"] == "Empty")
                    & (res["variable"] == marker) & (res["timepoint"] == "change")
                    & (res["statistic"] == "n")]
        assert empty["value"].tolist() == [0]  # the empty site is there, with n = 0
        if not sites or len(pairs) < 2:
            continue
        b, f = pairs["baseline"].to_numpy(float), pairs["day7"].to_numpy(float)
        expected = stats.ttest_rel(b, f)
        assert value["t_statistic"] == pytest.approx(expected.statistic, rel=1e-9)
        assert value["mean_difference"] == pytest.approx(np.mean(f - b), rel=1e-9)
        compared += 1
    assert compared >= 2


def test_pool_refuses_a_tampered_package_naming_site_and_file(shared, tmp_path):
    files = _files(shared["South"].zip)
    files["counts.csv"] = files["counts.csv"].replace(b"published", b"publishe_", 1)
    bad = tmp_path / "South.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    out = tmp_path / "pooled"
    result = _invoke("study", "pool", str(shared["North"].zip), str(bad), "--out", str(out))
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "site 'South' (South.zip): counts.csv was changed" in text
    assert "Traceback" not in result.output
    assert not (out / "results.csv").exists()  # nothing pooled
    result = _invoke("study", "pool", str(tmp_path / "missing.zip"), "--out", str(out))
    assert result.exit_code == 2 and "no such file" in result.output
    result = _invoke("study", "pool", "--out", str(out))
    assert result.exit_code == 2  # at least one package


def test_help_teaches_the_network(runs):
    share = " ".join(_invoke("study", "share", "--help").output.split())
    for words in ("RESULTS_DIR", "--site", "--min-cell", "--out", "preview.html",
                  "manifest.json", "'< N'", "11 as PCORnet", "hyperinflam study pool",
                  "docs/network.md"):
        assert words in share, words
    pool = " ".join(_invoke("study", "pool", "--help").output.split())
    for words in ("SITE1.zip SITE2.zip", "--out", "--study", "SHA-256", "DerSimonian-Laird",
                  "REML", "forest plot", "Wilcoxon", "docs/network.md"):
        assert words in pool, words
    group = " ".join(_invoke("study", "--help").output.split())
    assert "share" in group and "pool" in group


def test_share_and_pool_in_real_processes(runs, tmp_path):
    zips = []
    for name in ("South", "Empty"):
        zip_path = tmp_path / f"{name}.zip"
        done = subprocess.run([HYPERINFLAM, "study", "share", str(runs.runs[name]), "--site",
                               name, "--min-cell", "11", "--out", str(zip_path)],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        assert zip_path.is_file() and str(zip_path) in done.stdout.replace("\n", "")
        zips.append(str(zip_path))
    out = tmp_path / "pooled"
    done = subprocess.run([HYPERINFLAM, "study", "pool", *zips, "-o", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert (out / "report.html").is_file()
    doc = json.loads((out / "results.json").read_text())
    assert [s["site"] for s in doc["provenance"]["network"]["sites"]] == ["South", "Empty"]
    bad = subprocess.run([HYPERINFLAM, "study", "pool", zips[0], zips[0], "-o", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert bad.returncode == 2 and "two packages name the site 'South'" in bad.stderr
    assert "Traceback" not in bad.stderr
