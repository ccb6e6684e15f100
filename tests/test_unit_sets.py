"""Values on every threshold of every score, recorded in each accepted unit, give the same results
as the same values recorded in the canonical unit (issue 12 item 8; clinical reference §11.1,
§12.11).

The thresholds are every number the criteria modules write (their module-level constants, read
from the source): each is taken as a canonical value and expressed in every other unit of each
variable, and each is also taken as a value recorded in that unit (the native thresholds: TG 1.5
mmol/L, Hb 90 g/L, platelets 100 000 /mm3). Where the exact conversion does not terminate (100
mmHg in kPa), the value is recorded at two decimals. Its canonical twin is the exact canonical
value of what was recorded (written out in full, or as the shortest text of its nearest double
when the decimal does not terminate). P/F and S/F thresholds are hit with PaO2 / SpO2 and FiO2
pairs. A unit set gives every variable one of its non-canonical units; one CSV folder holds every
unit set and the twins, one load and one screen evaluate them, and every screen column (features
and criterion outputs) must be equal between each stay and its twin.
"""

from __future__ import annotations

import ast
import datetime as dt
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

import hyperinflam.criteria as criteria_package
from hyperinflam.engine import connect_memory
from hyperinflam.screening.screen import screen_frame
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.vocabulary import load

pytestmark = pytest.mark.slow

VOCAB = load()
AT = dt.datetime(2024, 6, 1, 12, 0)
#: Ages (days at the evaluation) across the age bands of PRISM III, IPSCC, Phoenix and pSOFA.
AGES_DAYS = (10, 200, 2000, 5500)
#: FiO2 values (fractions) for the P/F and S/F pairs.
FIO2 = (Fraction(21, 100), Fraction(3, 10), Fraction(35, 100), Fraction(1, 2), Fraction(1))
RATIO_THRESHOLDS = (100, 148, 200, 220, 221, 264, 292, 300, 400)


def _criteria_numbers() -> set[Fraction]:
    """Every number written in a module-level assignment of a criterion module."""
    found = set()
    for path in Path(criteria_package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                for n in ast.walk(node.value):
                    if isinstance(n, ast.Constant) and type(n.value) in (int, float) \
                            and n.value > 0:
                        found.add(Fraction(Decimal(repr(n.value))))
    return found


def _units(variable: str) -> list:
    """One accepted spelling per distinct conversion of ``variable``, canonical first."""
    seen, out = set(), []
    canonical = VOCAB.unit(variable, VOCAB.variables[variable].canonical_unit)
    for u in [canonical] + sorted((u for u in VOCAB.units.values() if u.variable == variable
                                   and u.status == "ok"), key=lambda u: u.source):
        if (u.factor, u.offset) not in seen:
            seen.add((u.factor, u.offset))
            out.append(u)
    return out


MULTI_UNIT = {v: _units(v) for v in VOCAB.variables if len(_units(v)) > 1}
N_SETS = max(len(units) for units in MULTI_UNIT.values()) - 1


def _terminating(x: Fraction, max_decimals: int) -> str | None:
    d = Decimal(x.numerator) / Decimal(x.denominator)
    text = format(d.normalize(), "f")
    decimals = len(text.split(".")[1]) if "." in text else 0
    if Fraction(Decimal(text)) == x and decimals <= max_decimals:
        return text
    return None


def _recorded(x: Fraction) -> str:
    """How a value is written in a file: exactly when it terminates within 6 decimals, else at
    two decimals (an instrument's resolution)."""
    exact = _terminating(x, 6)
    if exact is not None:
        return exact
    return format(round(Decimal(x.numerator) / Decimal(x.denominator), 2), "f")


def _canonical_text(x: Fraction) -> str:
    exact = _terminating(x, 15)
    return exact if exact is not None and len(exact.replace(".", "").lstrip("0-")) <= 15 \
        else repr(float(x))


def _plausible(variable: str, recorded: str, canonical: Fraction) -> bool:
    var = VOCAB.variables[variable]
    if variable == "fio2" and 1 < Decimal(recorded) < 21:
        return False  # received values strictly between 1 and 21 are ambiguous (§11.1)
    return var.accept_min <= canonical <= var.accept_max and Decimal(recorded) >= 0


def _cases() -> list[dict]:
    """(set, variable, unit, recorded text, canonical twin text) plus ratio pairs."""
    numbers = sorted(_criteria_numbers())
    cases = []
    for k in range(1, N_SETS + 1):
        for variable, units in MULTI_UNIT.items():
            unit = units[min(k, len(units) - 1)]
            values = {_recorded((t - unit.offset) / unit.factor) for t in numbers}
            values |= {_recorded(t) for t in numbers}
            for text in sorted(values, key=Decimal):
                canonical = Fraction(Decimal(text)) * unit.factor + unit.offset
                if _plausible(variable, text, canonical):
                    cases.append({"set": k, "rows": [(variable, text, unit.unit)],
                                  "twin": [(variable, _canonical_text(canonical),
                                            units[0].unit)]})
        pao2 = MULTI_UNIT["pao2"][min(k, len(MULTI_UNIT["pao2"]) - 1)]
        spo2 = MULTI_UNIT["spo2"][min(k, len(MULTI_UNIT["spo2"]) - 1)]
        fio2 = MULTI_UNIT["fio2"][min(k, len(MULTI_UNIT["fio2"]) - 1)]
        for ratio in RATIO_THRESHOLDS:
            for f in FIO2:
                f_text = _recorded((f - fio2.offset) / fio2.factor)
                f_canon = Fraction(Decimal(f_text)) * fio2.factor + fio2.offset
                for other, target in ((pao2, ratio * f), (spo2, Fraction(ratio) * f)):
                    text = _recorded((target - other.offset) / other.factor)
                    canonical = Fraction(Decimal(text)) * other.factor + other.offset
                    if not _plausible(other.variable, text, canonical):
                        continue
                    cases.append({"set": k, "rows": [("fio2", f_text, fio2.unit),
                                                     (other.variable, text, other.unit)],
                                  "twin": [("fio2", _canonical_text(f_canon), "1"),
                                           (other.variable, _canonical_text(canonical),
                                            VOCAB.variables[other.variable].canonical_unit)]})
    return cases


def _write(folder: Path, cases: list[dict]) -> None:
    persons, stays, measurements = [], [], []
    for i, case in enumerate(cases):
        age = AGES_DAYS[i % len(AGES_DAYS)]
        birth = (AT - dt.timedelta(days=age)).date().isoformat()
        admit = (AT - dt.timedelta(hours=12)).isoformat(sep=" ")
        for side in ("rows", "twin"):
            stay = f"{side}-{i}"
            persons.append(f"{stay},{birth},female")
            stays.append(f"{stay},{stay},{admit}")
            for j, (variable, text, unit) in enumerate(case[side]):
                # FiO2 first (at or before the PaO2 / SpO2 it is paired with, §5.4)
                time = (AT - dt.timedelta(hours=2 - j)).isoformat(sep=" ")
                measurements.append(f'{stay},{stay},{time},{variable},{text},"{unit}"')
    (folder / "person.csv").write_text("person_id,birth_date,sex\n" + "\n".join(persons) + "\n")
    (folder / "stay.csv").write_text("stay_id,person_id,admit_time\n" + "\n".join(stays) + "\n")
    (folder / "measurement.csv").write_text("person_id,stay_id,time,variable,value,unit\n"
                                            + "\n".join(measurements) + "\n")


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    cases = _cases()
    folder = tmp_path_factory.mktemp("unit_sets")
    _write(folder, cases)
    con = connect_memory()
    report = load_csv_folder(con, folder)
    frame = screen_frame(con, at=AT)
    return cases, report, frame


def test_every_row_loads(screened):
    cases, report, _ = screened
    rows = sum(len(c["rows"]) + len(c["twin"]) for c in cases)
    assert report.counts("measurement").loaded == rows
    assert report.counts("measurement").quarantined == 0


def test_the_cases_cover_every_threshold_in_every_unit(screened):
    cases, _, _ = screened
    covered = {(c["set"], v, u) for c in cases for v, _, u in c["rows"]}
    for variable, units in MULTI_UNIT.items():
        for unit in units[1:]:
            assert any((v, u) == (variable, unit.unit) for _, v, u in covered), (variable, unit)
    assert len(cases) > 3000


def test_each_stay_gives_the_results_of_its_canonical_twin(screened):
    cases, _, frame = screened
    frame = frame.set_index("stay_id")
    ids = [c for c in frame.columns if c not in ("person_id", "eval_time", "admit_time",
                                                   "discharge_time")]
    rows = frame.loc[[f"rows-{i}" for i in range(len(cases))], ids].reset_index(drop=True)
    twins = frame.loc[[f"twin-{i}" for i in range(len(cases))], ids].reset_index(drop=True)
    differ = ~((rows == twins) | (rows.isna() & twins.isna()))
    bad = differ.any(axis=1)
    detail = [(cases[i]["rows"], cases[i]["twin"], list(rows.columns[differ.iloc[i]])[:5])
              for i in bad[bad].index[:10]]
    assert not bad.any(), f"{int(bad.sum())} stays differ from their twin, e.g. {detail}"
