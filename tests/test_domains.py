"""Recorded vs not recorded, per domain (issue 12 item 1): every load writes ``source_domains``;
a site declares a domain complete or absent; a domain no load recorded is unknown in the
features (never "no" / 0) and "not recorded" in the study.

Expected values are stated by hand from the small folders written here (which domains have
rows), and for the real-sample extracts of tests/data by counting the canonical tables directly
with SQL (an independent count, not the reader's).
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from hyperinflam.engine import connect
from hyperinflam.errors import SourceError
from hyperinflam.screening.screen import screen
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.study.cohort import recorded_domains

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
EXAMPLE = ROOT / "docs" / "example-csv"
AT = datetime(2024, 3, 2, 8, 0)  # P001's stay S001 (2024-03-01 08:15 - 03-19) is running


def _folder(tmp_path: Path, drop=(), domains: str | None = None) -> Path:
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    for name in drop:
        (folder / f"{name}.csv").unlink()
    if domains is not None:
        (folder / "domains.csv").write_text(domains)
    return folder


def _record(con) -> dict[str, tuple[bool, str, int]]:
    rows = con.con.execute("SELECT domain, recorded, basis, rows FROM source_domains "
                           "WHERE load_id = (SELECT max(load_id) FROM source_domains)").fetchall()
    return {d: (r, b, n) for d, r, b, n in rows}


def _features(con) -> dict:
    t = screen(con, at=AT, criteria=["ipscc", "phoenix"]).to_pandas()
    return t.set_index("stay_id").loc["S001"].to_dict()


def test_a_folder_without_organ_support_records_it_as_not_recorded(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    report = load_csv_folder(con, _folder(tmp_path, drop=["organ_support", "condition"]))
    record = _record(con)
    # by hand: the example folder's organ_support.csv and condition.csv are gone
    assert record["support:invasive_ventilation"] == (False, "no rows", 0)
    assert record["vasoactive"] == (False, "no rows", 0)
    assert record["conditions"] == (False, "no rows", 0)
    # example-csv/drug_administration.csv has 6 rows, measurement.csv ferritin rows
    assert record["drugs"][:2] == (True, "rows")
    assert record["measurement:ferritin"][:2] == (True, "rows")
    assert record["measurement:scd25"] == (False, "no rows", 0)
    assert {"support:invasive_ventilation", "vasoactive", "conditions"} <= \
        set(report.absent_domains)
    note = next(n for n in report.notes if n.startswith("not recorded by this source"))
    assert "invasive ventilation" in note and "diagnoses" in note and "scd25" in note
    # the features: unknown, never "no" / 0 (the stay is ventilated in the full example)
    f = _features(con)
    assert f["invasive_ventilation_any_24h"] is None or f["invasive_ventilation_any_24h"] != \
        f["invasive_ventilation_any_24h"]  # NULL (pandas: None or NaN)
    assert "invasive_ventilation" in f["ipscc_missing"]
    assert "dopamine" in f["ipscc_missing"]
    # the study: conditions and organ support not recorded, drugs and infections recorded
    assert recorded_domains(con) == {"conditions": False, "invasive_ventilation": False,
                                     "vasoactive_infusion": False, "drugs": True,
                                     "infection": True, "death": False}
    con.disconnect()


def test_the_same_folder_with_organ_support_gives_yes_and_no(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    load_csv_folder(con, _folder(tmp_path))
    f = _features(con)
    # example-csv: S001 ventilated from 2024-03-01 09:30 to 03-09, so at AT: yes
    assert bool(f["invasive_ventilation_any_24h"]) is True
    assert "invasive_ventilation" not in (f["ipscc_missing"] or "").split(",")
    # organ support is one record: no CPAP row among ventilation and vasoactive rows is no CPAP
    assert _record(con)["support:cpap"] == (True, "no rows (organ support recorded)", 0)
    con.disconnect()


def test_a_domain_declared_complete_is_no_when_it_has_no_rows(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    report = load_csv_folder(con, _folder(tmp_path, drop=["organ_support"],
                                          domains="domain,status\norgan_support,complete\n"))
    record = _record(con)
    assert record["support:invasive_ventilation"] == (True, "declared complete", 0)
    assert record["vasoactive"] == (True, "declared complete", 0)
    assert "support:invasive_ventilation" not in report.absent_domains
    f = _features(con)
    assert bool(f["invasive_ventilation_any_24h"]) is False  # declared complete: none = no
    assert "invasive_ventilation" not in (f["ipscc_missing"] or "").split(",")
    con.disconnect()


def test_a_domain_declared_absent_stays_not_recorded_and_the_load_says_rows_came(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    extra = tmp_path / "more.csv"
    extra.write_text("domain,status\ninvasive_ventilation,absent\n")
    report = load_csv_folder(con, _folder(tmp_path), domains=[extra])
    record = _record(con)
    assert record["support:invasive_ventilation"][:2] == (False, "declared absent")
    assert record["support:invasive_ventilation"][2] >= 1  # example-csv ventilates S001
    assert record["vasoactive"][:2] == (True, "rows")
    assert any("declared absent, yet" in n for n in report.notes)
    f = _features(con)
    assert f["invasive_ventilation_any_24h"] is None or f["invasive_ventilation_any_24h"] != \
        f["invasive_ventilation_any_24h"]
    con.disconnect()


def test_a_reload_keeps_the_domains_of_the_first_load(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    folder = _folder(tmp_path, drop=["condition"])
    load_csv_folder(con, folder)
    load_csv_folder(con, folder)  # everything already present: no new rows
    record = _record(con)
    assert record["support:invasive_ventilation"] == (True, "rows (earlier load)", 0)
    assert record["conditions"] == (False, "no rows", 0)
    assert recorded_domains(con)["invasive_ventilation"] is True
    con.disconnect()


@pytest.mark.parametrize("text, where, words", [
    ("domain,status\nferitin,absent\n", ":2:", "'feritin' is not a domain"),
    ("domain,status\nferritin,complete\ndeaths,maybe\n", ":3:", "status 'maybe'"),
    ("name,state\nferritin,absent\n", ":1:", "columns domain,status"),
])
def test_a_bad_domains_file_names_file_line_and_fix(tmp_path, text, where, words):
    con = connect(tmp_path / "db.duckdb")
    folder = _folder(tmp_path, domains=text)
    with pytest.raises(SourceError) as err:
        load_csv_folder(con, folder)
    assert f"domains.csv{where}" in str(err.value) and words in str(err.value)
    assert con.con.execute("SELECT count(*) FROM person").fetchone()[0] == 0  # nothing loaded
    con.disconnect()


def _counted(con) -> dict[str, int]:
    """Rows per domain counted straight from the canonical tables (not the reader's count)."""
    q = con.con.execute
    vaso = ("'epinephrine', 'norepinephrine', 'dopamine', 'dobutamine', 'milrinone', "
            "'vasopressin'")  # vocabulary/drugs.csv class vasoactive, written out by hand
    out = {f"measurement:{v}": n for v, n in
           q("SELECT variable, count(*) FROM measurement GROUP BY 1").fetchall()}
    out["drugs"] = q("SELECT count(*) FROM drug_administration").fetchone()[0]
    out["support:invasive_ventilation"] = q(
        "SELECT count(*) FROM organ_support WHERE support = 'invasive_ventilation'").fetchone()[0]
    out["vasoactive"] = q(f"SELECT (SELECT count(*) FROM organ_support WHERE support IN ({vaso}))"
                          f" + (SELECT count(*) FROM drug_administration WHERE drug IN ({vaso}))"
                          ).fetchone()[0]
    out["conditions"] = q("SELECT count(*) FROM condition").fetchone()[0]
    for e in ("infection", "death"):
        out[e] = q("SELECT count(*) FROM event WHERE event_type = ?", [e]).fetchone()[0]
    return out


@pytest.mark.parametrize("reader, path", [
    ("omop", DATA / "eunomia_synthea27nj" / "omop"),
    ("fhir", DATA / "fhir_r4_spec_examples" / "resources"),
    ("fhir", DATA / "synthea_bulk_ndjson_smart10" / "ndjson"),
    ("meds", DATA / "mimic_iv_demo_meds" / "mimic_iv_demo_meds_events.parquet"),
])
def test_every_reader_records_its_domains(tmp_path, reader, path):
    from hyperinflam.sources.fhir.reader import load_fhir
    from hyperinflam.sources.meds import load_meds
    from hyperinflam.sources.omop.mapping import load_omop

    con = connect(tmp_path / "db.duckdb")
    load = {"omop": load_omop, "fhir": load_fhir, "meds": load_meds}[reader]
    report = load(con, path)
    record = _record(con)
    counted = _counted(con)
    support_rows = con.con.execute(
        "SELECT count(*) FROM organ_support WHERE support IN ('invasive_ventilation', "
        "'noninvasive_ventilation', 'cpap', 'high_flow_nasal_cannula', 'supplemental_oxygen')"
        ).fetchone()[0]  # supports.csv, written out by hand
    for domain in ("drugs", "support:invasive_ventilation", "vasoactive", "conditions",
                   "infection", "death", "measurement:ferritin", "measurement:crp"):
        n = counted.get(domain, 0)
        # organ support is one record: any support row records every kind
        expected = n > 0 or (record[domain][1] == "no rows (organ support recorded)"
                             and support_rows > 0)
        assert record[domain][0] is expected, (domain, record[domain], n)
        assert record[domain][2] == n, domain
        assert (domain in report.absent_domains) is (not expected)
    assert con.con.execute("SELECT DISTINCT reader FROM source_domains").fetchall() == [(reader,)]
    con.disconnect()


def test_info_lists_the_domains_not_recorded(tmp_path):
    from typer.testing import CliRunner

    from hyperinflam.cli import app

    db = tmp_path / "db.duckdb"
    con = connect(db)
    load_csv_folder(con, _folder(tmp_path, drop=["organ_support"]))
    con.disconnect()
    out = CliRunner().invoke(app, ["info", "--db", str(db)], env={"COLUMNS": "200"}).output
    line = next(li for li in out.splitlines() if "support:invasive_ventilation" in li)
    assert "NOT RECORDED" in line and "no rows" in line
    assert "Measurement variables:" in out and "scd25" in out


def test_load_omop_domains_option_declares_organ_support_complete(tmp_path):
    from typer.testing import CliRunner

    from hyperinflam.cli import app

    declared = tmp_path / "domains.csv"
    declared.write_text("domain,status\norgan_support,complete\nconditions,absent\n")
    db = tmp_path / "db.duckdb"
    result = CliRunner().invoke(app, ["load", "omop", str(DATA / "eunomia_synthea27nj" / "omop"),
                                      "--db", str(db), "--domains", str(declared)])
    assert result.exit_code == 0, result.output
    con = connect(db)
    record = _record(con)
    assert record["support:invasive_ventilation"][:2] == (True, "declared complete")
    assert record["vasoactive"][:2] == (True, "declared complete")
    assert record["conditions"][:2] == (False, "declared absent")
    assert recorded_domains(con)["conditions"] is False
    con.disconnect()
    spark = CliRunner().invoke(app, ["load", "omop", "x", "--db", str(tmp_path / "out"),
                                     "--engine", "spark", "--domains", str(declared)])
    assert spark.exit_code == 2 and "--domains needs --engine duckdb" in spark.output
