"""Exact unit conversion on the engine (issue 12 item 8; clinical reference §11.1).

A value recorded at its instrument's resolution must land on the double nearest the exact result
of ``value x factor + offset`` (FiO2 35 % -> 0.35, not 0.35000000000000003). The expected value is
computed here with Python's exact rationals (``fractions.Fraction`` of the text as written, times
the factor as units.csv writes it), independently of the SQL that the loaders run.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperinflam.engine import connect_memory
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.sources.ingest import _DOSE_SQL, _UNIT_SQL, register_vocabulary
from hyperinflam.vocabulary import load, normalize_unit, parse_factor

VOCAB = load()
OK_UNITS = sorted((u for u in VOCAB.units.values() if u.status == "ok"),
                  key=lambda u: (u.variable, u.unit_key))


def _exact(text: str, factor: Fraction, offset: Fraction = Fraction(0)) -> float:
    return float(Fraction(Decimal(text)) * factor + offset)


def _text(mantissa: int, decimals: int, exponent: int | None = None) -> str:
    """The decimal text of mantissa / 10**decimals (optionally in exponent form)."""
    sign = "-" if mantissa < 0 else ""
    digits = str(abs(mantissa)).rjust(decimals + 1, "0")
    plain = digits if decimals == 0 else f"{digits[:-decimals]}.{digits[-decimals:]}"
    if exponent is None:
        return sign + plain
    value = Decimal(sign + plain).scaleb(-exponent)
    return f"{value:f}e{exponent}"


@pytest.fixture(scope="module")
def engine():
    con = duckdb.connect()
    register_vocabulary(con, VOCAB)
    yield con
    con.close()


def _convert(con, rows: list[tuple[str, str, str]]) -> list[float]:
    """Canonical values of (variable, unit_key, text) rows through the pipeline's expression."""
    con.execute("CREATE OR REPLACE TEMP TABLE t (i INTEGER, variable VARCHAR, unit_key VARCHAR, "
                "v_value VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [(i, *r) for i, r in enumerate(rows)])
    return [r[0] for r in con.execute(f"""
        SELECT {_UNIT_SQL} FROM (SELECT *, TRY_CAST(v_value AS DOUBLE) AS n_value FROM t) n
        JOIN units_frame u USING (variable, unit_key) ORDER BY i""").fetchall()]


# values at instrument resolutions: up to 7 significant digits, 0-4 decimals
RESOLUTION = st.tuples(st.integers(min_value=0, max_value=9_999_999), st.integers(0, 4))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(range(len(OK_UNITS))), RESOLUTION, st.booleans()),
                min_size=1, max_size=60))
def test_every_accepted_unit_lands_on_the_nearest_double(engine, draws):
    rows, expected = [], []
    for index, (mantissa, decimals), negative in draws:
        unit = OK_UNITS[index]
        text = _text(-mantissa if negative else mantissa, decimals)
        rows.append((unit.variable, unit.unit_key, text))
        expected.append(_exact(text, unit.factor, unit.offset))
    assert _convert(engine, rows) == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(range(len(OK_UNITS))), RESOLUTION,
                          st.integers(-3, 3)), min_size=1, max_size=30))
def test_exponent_notation_is_read_as_written(engine, draws):
    rows, expected = [], []
    for index, (mantissa, decimals), exponent in draws:
        unit = OK_UNITS[index]
        text = _text(mantissa, decimals, exponent)
        rows.append((unit.variable, unit.unit_key, text))
        expected.append(_exact(text, unit.factor, unit.offset))
    assert _convert(engine, rows) == expected


@pytest.mark.parametrize("variable, unit, text, exact", [
    ("fio2", "%", "35", Fraction(35, 100)),
    ("fio2", "%", "21", Fraction(21, 100)),
    ("pao2", "kPa", "13.3", Fraction(133, 10) * Fraction(750062, 100000)),
    ("platelets", "/uL", "110000", Fraction(110)),
    ("hemoglobin", "g/L", "92", Fraction(92, 10)),
    ("ferritin", "pmol/L", "1123.5", Fraction(500)),
    ("temperature", "[degF]", "100.4", Fraction(38)),
])
def test_known_values(engine, variable, unit, text, exact):
    assert _convert(engine, [(variable, normalize_unit(unit), text)]) == [float(exact)]


def test_beyond_15_significant_digits_the_doubles_are_used_within_one_ulp(engine):
    """No instrument reports 20 digits; such a text falls back to double arithmetic."""
    import math

    text = "35.0000000000000000001"
    (got,) = _convert(engine, [("fio2", "%", text)])
    exact = _exact(text, Fraction(1, 100))
    assert got != exact and abs(got - exact) <= math.ulp(exact)


def test_the_former_double_arithmetic_was_off_in_the_last_bit():
    """The reason for the exact arithmetic: value x (1/100) and value x 0.1 as doubles."""
    assert 35 * float(Fraction(1, 100)) == 0.35000000000000003 != 0.35
    assert 92 * float(Fraction(1, 10)) == 9.200000000000001 != 9.2


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(VOCAB.dose_units)), RESOLUTION),
                min_size=1, max_size=30))
def test_doses_convert_exactly(engine, draws):
    engine.execute("CREATE OR REPLACE TEMP TABLE d (i INTEGER, unit_key VARCHAR, v_dose VARCHAR)")
    engine.executemany("INSERT INTO d VALUES (?, ?, ?)",
                       [(i, k, _text(m, e)) for i, (k, (m, e)) in enumerate(draws)])
    got = [r[0] for r in engine.execute(f"""
        SELECT {_DOSE_SQL} FROM (SELECT d.*, TRY_CAST(v_dose AS DOUBLE) AS n_dose,
               du.factor AS dose_factor, du.exact_a AS dose_a, du.exact_c AS dose_c
               FROM d JOIN dose_units_frame du USING (unit_key)) x ORDER BY i""").fetchall()]
    assert got == [_exact(_text(m, e), VOCAB.dose_units[k]["exact_factor"]) for k, (m, e) in draws]


def test_the_csv_pipeline_loads_every_accepted_unit_exactly(tmp_path):
    """Every accepted unit of units.csv, three resolutions each, through ``load csv``: the stored
    canonical value is the double nearest the exact conversion of the text in the file."""
    rows, expected = [], {}
    start = dt.datetime(2024, 1, 1)
    for u in OK_UNITS:
        var = VOCAB.variables[u.variable]
        middle = (Fraction(str(var.accept_min)) + Fraction(str(var.accept_max))) / 3
        received = (middle - u.offset) / u.factor
        for decimals in (0, 1, 2):
            text = str(round(Decimal(received.numerator) / Decimal(received.denominator),
                             decimals))
            canonical = Fraction(Decimal(text)) * u.factor + u.offset
            if not var.accept_min <= canonical <= var.accept_max:
                continue
            if u.variable == "fio2" and 1 < Decimal(text) < 21:
                continue  # the ambiguous band (fraction or percent?) is quarantined on purpose
            time = (start + dt.timedelta(minutes=len(rows))).isoformat(sep=" ")
            rows.append(f"p1,s1,{time},{u.variable},{text},\"{u.unit}\"")
            expected[(u.variable, time, text, u.unit)] = float(canonical)
    (tmp_path / "person.csv").write_text("person_id,birth_date,sex\np1,2015-01-01,female\n")
    (tmp_path / "stay.csv").write_text("stay_id,person_id,admit_time,discharge_time\n"
                                       "s1,p1,2023-12-31 00:00,2024-12-31 00:00\n")
    (tmp_path / "measurement.csv").write_text(
        "person_id,stay_id,time,variable,value,unit\n" + "\n".join(rows) + "\n")
    con = connect_memory()
    report = load_csv_folder(con, tmp_path)
    assert report.counts("measurement").loaded == len(rows) > 400
    got = {(v, str(t), vo, uo): value for v, t, vo, uo, value in con.con.execute(
        "SELECT variable, strftime(time, '%Y-%m-%d %H:%M:%S'), value_original, unit_original, value "
        "FROM measurement").fetchall()}
    assert got == expected


def test_parse_factor_is_exact():
    assert parse_factor("88.57") == Fraction(8857, 100)
    assert parse_factor("1/2.247") == Fraction(1000, 2247)
    assert parse_factor("-160/9") == Fraction(-160, 9)
    assert parse_factor("0.45359237") == Fraction(45359237, 10**8)
