"""Variables, units and drugs as data.

The vocabulary lives in CSV files next to this module, every row citing
docs/clinical-reference.md (§11.1, §11.2 and §11.5):

* ``variables.csv``: each variable's canonical unit (UCUM), its plausible range (values outside are
  quarantined as ``implausible_value``), the band in which a value is loaded but flagged
  ``extreme``, and for FiO2 the band of received values that is ambiguous (fraction or percent?).
* ``units.csv``: every accepted spelling of a unit per variable, with the exact factor and offset
  to the canonical unit: ``canonical = received x factor + offset``. Factors may be written as
  fractions (``1/2.247``, ``5/9``) so that they stay exactly as the reference prints them. A unit
  whose status is ``needs_configuration`` (CRP nmol/L, D-dimer DDU, sCD25 pg/mL) is known but
  never converted: such values are quarantined until a site configures a rule.
* ``drugs.csv``: drug names, classes, aliases and codes; ``dose_units.csv``: dose units.

A unit is never guessed from the size of a value. A site adds its own spellings with a CSV file of
the same layout as ``units.csv`` (``--units FILE``); its rows take precedence.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from importlib import resources
from pathlib import Path

import pandas as pd

from hyperinflam.errors import VocabularyError

# Characters folded when matching a unit spelling (applied identically in Python and on the engine).
UNIT_FOLDS: tuple[tuple[str, str], ...] = (
    (" ", ""),
    ("\u00b5", "u"),  # micro sign
    ("\u03bc", "u"),  # Greek mu
    ("\u00b3", "3"),
    ("\u2079", "9"),
    ("\u00d7", "x"),
)


def normalize_unit(unit: str | None) -> str | None:
    """Fold a unit spelling for matching: lower case, no spaces, micro as 'u'."""
    if unit is None:
        return None
    folded = unit.strip().lower()
    for old, new in UNIT_FOLDS:
        folded = folded.replace(old, new)
    return folded


def normalize_unit_expr(expr):
    """The same folding as :func:`normalize_unit`, as an ibis string expression."""
    folded = expr.strip().lower()
    for old, new in UNIT_FOLDS:
        folded = folded.replace(old, new)
    return folded


def parse_number(text: str | None) -> float | None:
    """Parse a factor written as a decimal or a fraction of decimals ('1/2.247', '-160/9')."""
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return float(Fraction(num) / Fraction(den))
    return float(Fraction(text))


def _read_csv(path: Path | str, required: list[str], *, text=None) -> list[dict]:
    name = str(path)
    handle = open(path, newline="", encoding="utf-8-sig") if text is None else text
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise VocabularyError(
                f"{name}: missing column(s) {', '.join(missing)}; expected a header with "
                f"{', '.join(required)}."
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            row["_line"] = line
            rows.append(row)
        return rows


def _packaged(name: str):
    return resources.files(__package__).joinpath(name).open("r", encoding="utf-8", newline="")


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    short_label: str
    kind: str
    canonical_unit: str
    accept_min: float
    accept_max: float
    extreme_below: float | None
    extreme_above: float | None
    ambiguous_gt: float | None
    ambiguous_lt: float | None


class Vocabulary:
    """The loaded vocabulary, optionally extended by a site's unit spellings."""

    def __init__(self, site_units: Path | str | None = None):
        self.variables: dict[str, Variable] = {}
        for row in _read_csv("vocabulary/variables.csv", ["variable", "canonical_unit"],
                             text=_packaged("variables.csv")):
            self.variables[row["variable"]] = Variable(
                name=row["variable"],
                label=row["label"],
                short_label=row.get("short_label") or row["label"],
                kind=row["kind"],
                canonical_unit=row["canonical_unit"],
                accept_min=parse_number(row["accept_min"]),
                accept_max=parse_number(row["accept_max"]),
                extreme_below=parse_number(row["extreme_below"]),
                extreme_above=parse_number(row["extreme_above"]),
                ambiguous_gt=parse_number(row["ambiguous_gt"]),
                ambiguous_lt=parse_number(row["ambiguous_lt"]),
            )
        self.units: dict[tuple[str, str], dict] = {}
        self._add_units(_read_csv("vocabulary/units.csv", ["variable", "unit", "factor"],
                                  text=_packaged("units.csv")), "vocabulary/units.csv")
        if site_units is not None:
            path = Path(site_units)
            if not path.is_file():
                raise VocabularyError(f"{path}: site unit file not found.")
            self._add_units(_read_csv(path, ["variable", "unit", "factor"]), str(path))
        self.drugs: dict[str, dict] = {
            r["drug"]: r for r in _read_csv("vocabulary/drugs.csv", ["drug", "drug_class"],
                                            text=_packaged("drugs.csv"))
        }
        self.dose_units: dict[str, dict] = {}
        for r in _read_csv("vocabulary/dose_units.csv", ["unit", "canonical_unit", "factor"],
                           text=_packaged("dose_units.csv")):
            self.dose_units[normalize_unit(r["unit"])] = {
                "canonical_unit": r["canonical_unit"], "factor": parse_number(r["factor"])}

    def _add_units(self, rows: list[dict], source: str) -> None:
        for row in rows:
            variable = row["variable"].strip()
            if variable not in self.variables:
                raise VocabularyError(
                    f"{source} line {row['_line']}: unknown variable '{variable}'. Known variables: "
                    f"{', '.join(sorted(self.variables))}."
                )
            status = (row.get("status") or "ok").strip() or "ok"
            if status not in ("ok", "needs_configuration"):
                raise VocabularyError(
                    f"{source} line {row['_line']}: status '{status}' must be 'ok' or "
                    f"'needs_configuration'."
                )
            try:
                factor = parse_number(row["factor"])
                offset = parse_number(row.get("offset")) or 0.0
            except (ValueError, ZeroDivisionError) as exc:
                raise VocabularyError(
                    f"{source} line {row['_line']}: factor/offset must be numbers or fractions "
                    f"such as 1/2.247 ({exc})."
                ) from None
            if status == "ok" and factor is None:
                raise VocabularyError(
                    f"{source} line {row['_line']}: unit '{row['unit']}' has no factor; give one or "
                    f"set status to needs_configuration."
                )
            self.units[(variable, normalize_unit(row["unit"]))] = {
                "variable": variable,
                "unit_key": normalize_unit(row["unit"]),
                "factor": factor,
                "offset": offset,
                "status": status,
                "reference": row.get("reference") or source,
            }

    # -- tables for set-based joins on the engine -------------------------------------------
    @cached_property
    def variables_frame(self) -> pd.DataFrame:
        return pd.DataFrame([v.__dict__ for v in self.variables.values()]).rename(
            columns={"name": "variable"})

    @cached_property
    def units_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.units.values()))

    @cached_property
    def drug_names_frame(self) -> pd.DataFrame:
        """Every accepted spelling of a drug name (name and aliases, folded to lower case)."""
        rows = []
        for drug, r in self.drugs.items():
            names = [drug] + [a for a in (r.get("aliases") or "").split("|") if a]
            for n in names:
                rows.append({"name_key": n.strip().lower(), "drug": drug,
                             "drug_class": r["drug_class"]})
        return pd.DataFrame(rows)

    @cached_property
    def dose_units_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"unit_key": k, **v} for k, v in self.dose_units.items()])

    def convert(self, variable: str, value: float, unit: str) -> float:
        """Convert one value (for tests and small tools; loaders convert set-based)."""
        entry = self.units.get((variable, normalize_unit(unit)))
        if entry is None or entry["status"] != "ok":
            raise VocabularyError(f"No conversion for {variable} in '{unit}'.")
        return value * entry["factor"] + entry["offset"]

    def drugs_in_class(self, drug_class: str) -> list[str]:
        return sorted(d for d, r in self.drugs.items() if r["drug_class"] == drug_class)


def load(site_units: Path | str | None = None) -> Vocabulary:
    return Vocabulary(site_units)
