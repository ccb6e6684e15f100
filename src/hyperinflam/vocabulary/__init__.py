"""The dictionary: every variable, unit, code, condition concept, drug and dose unit, as data.

One loader (:class:`Vocabulary`) reads the CSV files next to this module; every row cites
``docs/clinical-reference.md`` (§11.1-§11.5 unless it says otherwise). A variable's entry
is spread over three files of one layout each, joined on the variable name (ricu keeps the same
facts in one JSON entry per concept):

* ``variables.csv``: each variable's canonical unit (UCUM), its plausible range (values outside are
  quarantined as ``implausible_value``), the band in which a value is loaded but flagged
  ``extreme``, and for FiO2 the band of received values that is ambiguous (fraction or percent?).
* ``units.csv``: every accepted spelling of a unit per variable with the exact factor and offset to
  the canonical unit, ``canonical = received x factor + offset``. Factors are decimals or fractions
  (``88.57``, ``1/100``, ``1/2.247``, ``5/9``) kept exactly (:mod:`.units`). A unit whose status is
  ``needs_configuration`` (CRP nmol/L, D-dimer DDU, sCD25 pg/mL) is known but never converted.
* ``codes.csv``: every code of every source in one layout, ``kind,target,system,code,concept_id,
  unit_when_missing,display,status,reference``. ``kind`` says what the code stands for
  (:data:`CODE_KINDS`), ``target`` which one (a variable, drug, support, condition concept ...),
  ``system`` the code system spelled as OMOP's ``vocabulary_id`` (LOINC, SNOMED, RxNorm, ATC,
  ICD10CM, ICD9CM, UCUM, Gender, Visit, MEDS for MEDS code prefixes, hyperinflam for local codes),
  ``concept_id`` the OMOP concept id where known. FHIR reads the LOINC / SNOMED / RxNorm rows,
  OMOP every row with a concept id or a code (resolved through the source's concept table), MEDS
  the ``MEDS`` rows (``unit_when_missing``: the unit of a value the source records without one).
  The CSV layout names variables, drugs and supports directly.

Condition concepts (``concepts.csv``: name, free-text aliases, the concept it negates; their
SNOMED / ICD-10-CM codes are ``condition`` rows of codes.csv), drugs (``drugs.csv``: name, class,
aliases; their RxNorm / ATC / MEDS codes are ``drug`` rows), organ-support kinds
(``supports.csv``) and dose units (``dose_units.csv``, exact factors) complete the dictionary.

A unit is never guessed from the size of a value. A site adds or overrides unit spellings with a
CSV file of the layout of ``units.csv`` (``--units FILE``) and codes with a file of the layout of
``codes.csv`` (``--codes FILE``; the older per-reader layouts are read too, see
:func:`read_code_file`); site rows take precedence (docs/vocabulary.md).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from hyperinflam.errors import VocabularyError
from hyperinflam.vocabulary.domain import (EVENT_TYPES, INVASIVE_VENTILATION, SEXES,
                                           VASOACTIVE_CLASS, VASOACTIVE_DOSE_UNIT,
                                           VASOPRESSIN_DOSE_UNIT)
from hyperinflam.vocabulary.units import (EXACT_LIMIT, UNIT_FOLDS, exact_convert, integer_form,
                                          normalize_unit, normalize_unit_expr, parse_factor,
                                          parse_number)

__all__ = [
    "CODE_COLUMNS", "CODE_KINDS", "EVENT_TYPES", "INVASIVE_VENTILATION", "SEXES", "UNIT_COLUMNS",
    "UNIT_FOLDS", "VASOACTIVE_CLASS", "VASOACTIVE_DOSE_UNIT", "VASOPRESSIN_DOSE_UNIT", "Code",
    "Concept", "Unit", "Variable", "Vocabulary", "default", "exact_convert", "load",
    "normalize_unit", "normalize_unit_expr", "parse_factor", "parse_number", "read_code_file",
]

#: Columns of codes.csv (and of a site ``--codes`` file); the first four are required.
CODE_COLUMNS = ("kind", "target", "system", "code", "concept_id", "unit_when_missing", "display",
                "status", "reference")
#: Columns of units.csv (and of a site ``--units`` file); the first three are required.
UNIT_COLUMNS = ("variable", "unit", "factor", "offset", "status", "reference")
#: What a code can stand for, and what its target names.
CODE_KINDS: dict[str, str] = {
    "measurement": "a variable of variables.csv",
    "drug": "a drug of drugs.csv",
    "support": "an organ-support kind of supports.csv",
    "route": "a route of administration (iv, sc, po, im, topical)",
    "condition": "a condition concept of concepts.csv",
    "sex": "male or female",
    "event": "an event type (infection, death)",
    "picu_visit": "an OMOP visit concept of a PICU stay",
    "inpatient_visit": "an OMOP visit concept of a fallback (inpatient) stay",
    "unit": "a UCUM unit code (its OMOP unit concept)",
    "stay_weight": "hyperinflam's local OMOP concept of stay.weight_kg",
    "stay_reason": "hyperinflam's local OMOP concept of stay.admission_reason",
    "dosing_weight": "hyperinflam's local OMOP concept of drug_administration.weight_kg",
}
#: Code-system spellings read from site files (case-insensitive) and the one stored.
SYSTEM_SPELLINGS: dict[str, str] = {
    "loinc": "LOINC", "snomed": "SNOMED", "sct": "SNOMED", "snomed ct": "SNOMED",
    "rxnorm": "RxNorm", "atc": "ATC", "icd10cm": "ICD10CM", "icd-10-cm": "ICD10CM",
    "icd10": "ICD10", "icd-10": "ICD10", "icd9cm": "ICD9CM", "icd-9-cm": "ICD9CM",
    "icd9": "ICD9", "icd-9": "ICD9", "ucum": "UCUM", "meds": "MEDS",
    # a site's own names in the CSV layout (variable, drug, support columns): load csv --codes
    "csv": "CSV",
}
#: Kinds of the former OMOP code-file layout that are one kind now.
_LEGACY_OMOP_KINDS = {"ventilation_procedure": "support", "ventilation_device": "support",
                      "finding": "condition"}

FILES = ("variables.csv", "units.csv", "codes.csv", "concepts.csv", "drugs.csv", "supports.csv",
         "dose_units.csv")


# ---------------------------------------------------------------------------------------------
# entries
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


@dataclass(frozen=True)
class Unit:
    """One accepted spelling of a unit of one variable: ``canonical = received x factor +
    offset`` exactly (factor None when the unit needs configuration)."""

    variable: str
    unit: str
    unit_key: str
    factor: Fraction | None
    offset: Fraction
    status: str
    reference: str
    source: str

    def convert(self, value) -> float:
        """The double nearest the exact conversion of ``value`` (taken as written)."""
        if self.status != "ok" or self.factor is None:
            raise VocabularyError(f"No conversion for {self.variable} in '{self.unit}' "
                                  f"({self.reference}).")
        return exact_convert(value, self.factor, self.offset)


@dataclass(frozen=True)
class Code:
    """One code of one source: what it stands for (``kind``, ``target``) and where it is from."""

    kind: str
    target: str
    system: str
    code: str
    concept_id: int | None = None
    unit_when_missing: str | None = None
    display: str = ""
    status: str = ""
    reference: str = ""
    source: str = ""  # file:line
    site: bool = False

    @property
    def replace_key(self) -> tuple:
        """A site row replaces the packaged rows with this key."""
        if self.code:
            return (self.kind, self.system, self.code.casefold())
        return (self.kind, "", "", self.concept_id)


@dataclass(frozen=True)
class Concept:
    """A condition concept: free-text aliases and the concept it negates; its codes are the
    ``condition`` rows of codes.csv."""

    name: str
    aliases: tuple[str, ...]
    negates: str
    reference: str


# ---------------------------------------------------------------------------------------------
# reading CSV files
def _open(path: Path | str):
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise VocabularyError(f"{path}: cannot be read ({exc.strerror}).") from None


def _packaged(name: str):
    return resources.files(__package__).joinpath(name).open("r", encoding="utf-8", newline="")


def _read_csv(name: str, required: Sequence[str], *, handle=None) -> tuple[list[str], list[dict]]:
    """(header, rows) of a CSV file; each row has ``_line`` (its line number) and stripped
    values. ``handle``: an open text file (packaged data), else ``name`` is opened."""
    handle = handle if handle is not None else _open(name)
    try:
        with handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise VocabularyError(
                    f"{name} line 1: missing column(s) {', '.join(missing)}; expected a header "
                    f"with {', '.join(required)}.")
            rows = []
            for line, row in enumerate(reader, start=2):
                clean = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else ""
                         for k, v in row.items()}
                clean["_line"] = line
                rows.append(clean)
            return header, rows
    except UnicodeDecodeError:
        raise VocabularyError(f"{name}: not UTF-8 text; save it as UTF-8 CSV.") from None
    except csv.Error as exc:
        raise VocabularyError(f"{name}: not a readable CSV file ({exc}).") from None


def _system(text: str) -> str:
    return SYSTEM_SPELLINGS.get(text.strip().lower(), text.strip())


def read_code_file(path: Path | str, vocab: Vocabulary | None = None, *,
                   site: bool = True) -> list[Code]:
    """The code rows of one file, in the layout of codes.csv (``kind,target,system,code`` plus
    optional ``concept_id,unit_when_missing,display,status,reference``), or in one of the former
    per-reader layouts, recognised by their header:

    * OMOP ``kind,target,vocabulary_id,concept_code,concept_id[,reference]`` (kinds
      ``ventilation_procedure`` / ``ventilation_device`` read as ``support``, ``finding`` as
      ``condition``);
    * MEDS ``code,variable,drug[,unit_when_unk,reference]`` (system MEDS);
    * FHIR ``system,code,kind,target[,display,status,reference]`` is the layout of codes.csv.

    Targets are checked against ``vocab`` when given. Raises :class:`VocabularyError` naming the
    file, line and fix.
    """
    name = str(path)
    header, rows = _read_csv(name, (), handle=None)
    cols = set(header)
    if {"kind", "target", "system", "code"} <= cols:
        layout = "codes"
    elif {"kind", "target"} <= cols and cols & {"vocabulary_id", "concept_code", "concept_id"}:
        layout = "omop"
    elif {"code", "variable", "drug"} <= cols:
        layout = "meds"
    else:
        missing = [c for c in ("kind", "target", "system", "code") if c not in cols]
        raise VocabularyError(
            f"{name} line 1: missing column(s) {', '.join(missing)}; a codes file has the header "
            f"{','.join(CODE_COLUMNS)} (docs/vocabulary.md).")
    out = []
    for row in rows:
        where = f"{name} line {row['_line']}"
        if layout == "meds":
            variable, drug = row.get("variable", ""), row.get("drug", "").lower()
            if bool(variable) == bool(drug):
                raise VocabularyError(f"{where}: code {row.get('code', '')!r} needs exactly one "
                                      f"of variable or drug.")
            kind, target = ("measurement", variable) if variable else ("drug", drug)
            system, code, concept = "MEDS", row.get("code", ""), ""
            unit = row.get("unit_when_unk", "") or row.get("unit_when_missing", "")
        elif layout == "omop":
            kind = _LEGACY_OMOP_KINDS.get(row.get("kind", ""), row.get("kind", ""))
            target, system = row.get("target", ""), _system(row.get("vocabulary_id", ""))
            code, concept = row.get("concept_code", ""), row.get("concept_id", "")
            unit = ""
        else:
            kind, target = row.get("kind", ""), row.get("target", "")
            system, code = _system(row.get("system", "")), row.get("code", "")
            concept, unit = row.get("concept_id", ""), row.get("unit_when_missing", "")
        if kind == "drug":
            target = target.lower()
        out.append(_code(kind, target, system, code, concept, unit, row, where, vocab, site))
    return out


def _code(kind, target, system, code, concept, unit, row, where, vocab, site) -> Code:
    if kind not in CODE_KINDS:
        raise VocabularyError(f"{where}: kind '{kind}' is not one of {', '.join(CODE_KINDS)}.")
    if not target:
        raise VocabularyError(f"{where}: empty target; give {CODE_KINDS[kind]}.")
    if not code and not concept:
        raise VocabularyError(f"{where}: give a code (with its system) or an OMOP concept_id.")
    if code and not system:
        raise VocabularyError(f"{where}: code '{code}' has no system; give e.g. LOINC, SNOMED, "
                              f"RxNorm or MEDS.")
    concept_id = None
    if concept:
        try:
            concept_id = int(concept)
        except ValueError:
            raise VocabularyError(f"{where}, column concept_id: '{concept}' is not an integer "
                                  f"concept id.") from None
    if vocab is not None:
        vocab.check_target(kind, target, where)
    return Code(kind=kind, target=target, system=system, code=code, concept_id=concept_id,
                unit_when_missing=unit or None, display=row.get("display", ""),
                status=row.get("status", ""), reference=row.get("reference", ""),
                source=where, site=site)


# ---------------------------------------------------------------------------------------------
class Vocabulary:
    """The loaded dictionary, optionally extended by a site's unit spellings and codes."""

    def __init__(self, site_units: Path | str | None = None,
                 site_codes: Iterable[Path | str] = ()):
        self.site_units = site_units
        self.site_codes = tuple(Path(p) for p in site_codes)
        self.variables: dict[str, Variable] = {}
        for row in _rows("variables.csv", ("variable", "canonical_unit")):
            self.variables[row["variable"]] = Variable(
                name=row["variable"], label=row["label"],
                short_label=row.get("short_label") or row["label"], kind=row["kind"],
                canonical_unit=row["canonical_unit"],
                accept_min=parse_number(row["accept_min"]),
                accept_max=parse_number(row["accept_max"]),
                extreme_below=parse_number(row["extreme_below"]),
                extreme_above=parse_number(row["extreme_above"]),
                ambiguous_gt=parse_number(row["ambiguous_gt"]),
                ambiguous_lt=parse_number(row["ambiguous_lt"]))
        self.units: dict[tuple[str, str], Unit] = {}
        self._add_units(_rows("units.csv", UNIT_COLUMNS[:3]), "vocabulary/units.csv")
        if site_units is not None:
            path = Path(site_units)
            if not path.is_file():
                raise VocabularyError(f"{path}: site unit file not found.")
            self._add_units(_read_csv(str(path), UNIT_COLUMNS[:3])[1], str(path))
        self.drugs: dict[str, dict] = {
            r["drug"]: r for r in _rows("drugs.csv", ("drug", "drug_class"))}
        self.supports: dict[str, dict] = {
            r["support"]: r for r in _rows("supports.csv", ("support", "label"))}
        self._concept_rows = _rows("concepts.csv", ("concept",))
        self.dose_units: dict[str, dict] = {}
        for r in _rows("dose_units.csv", ("unit", "canonical_unit", "factor")):
            factor = parse_factor(r["factor"])
            self.dose_units[normalize_unit(r["unit"])] = {
                "canonical_unit": r["canonical_unit"], "factor": float(factor),
                "exact_factor": factor}
        packaged = [_code(r["kind"], r["target"], r["system"], r["code"], r["concept_id"],
                          r["unit_when_missing"], r, f"vocabulary/codes.csv line {r['_line']}",
                          self, False)
                    for r in _rows("codes.csv", CODE_COLUMNS[:4])]
        site = []
        # a later --codes file first, so it takes precedence over an earlier one wherever the
        # first matching code is taken
        for path in reversed(self.site_codes):
            if not path.is_file():
                raise VocabularyError(f"{path}: site codes file not found (layout of "
                                      f"vocabulary/codes.csv: {','.join(CODE_COLUMNS)}).")
            site += read_code_file(path, self)
        once: set[tuple] = set()  # of two site rows for the same code, the later file's
        site = [c for c in site if not (c.replace_key in once or once.add(c.replace_key))]
        replaced = {c.replace_key for c in site}
        #: Every code, site rows first; a site row replaces the packaged rows of the same kind,
        #: system and code.
        self.codes: list[Code] = site + [c for c in packaged if c.replace_key not in replaced]
        for drug, r in self.drugs.items():  # the drug's own codes, as drugs.csv once held them
            rx = self.first_code("drug", drug, "RxNorm", with_concept_id=False)
            atc = self.first_code("drug", drug, "ATC")
            r["rxnorm_ingredient"] = rx.code if rx else ""
            r["omop_ingredient_concept_id"] = str(rx.concept_id) if rx and rx.concept_id else ""
            r["atc"] = atc.code if atc else ""

    def with_codes(self, site_codes: Iterable[Path | str] | Path | str | None) -> Vocabulary:
        """This vocabulary plus more site code files (``None`` or empty: itself)."""
        if site_codes is None:
            return self
        paths = [site_codes] if isinstance(site_codes, (str, Path)) else list(site_codes)
        if not paths:
            return self
        return Vocabulary(self.site_units, (*self.site_codes, *paths))

    # -- checks -------------------------------------------------------------------------------
    def check_target(self, kind: str, target: str, where: str) -> None:
        """Raise :class:`VocabularyError` when ``target`` is not a known one of ``kind``."""
        known = {"measurement": (self.variables, "vocabulary/variables.csv"),
                 "drug": (self.drugs, "vocabulary/drugs.csv"),
                 "support": (self.supports, "vocabulary/supports.csv"),
                 "condition": (self.concepts, "vocabulary/concepts.csv"),
                 "event": (EVENT_TYPES, "the event types"),
                 "sex": (SEXES, "the sexes")}.get(kind)
        if known is not None and target not in known[0]:
            noun = "variable" if kind == "measurement" else kind
            raise VocabularyError(f"{where}: {noun} '{target}' is not in {known[1]}; use one "
                                  f"of: {', '.join(sorted(known[0]))}.")

    def _add_units(self, rows: list[dict], source: str) -> None:
        for row in rows:
            variable = row["variable"]
            where = f"{source} line {row['_line']}"
            if variable not in self.variables:
                raise VocabularyError(
                    f"{where}: unknown variable '{variable}'. Known variables: "
                    f"{', '.join(sorted(self.variables))}.")
            status = row.get("status") or "ok"
            if status not in ("ok", "needs_configuration"):
                raise VocabularyError(f"{where}: status '{status}' must be 'ok' or "
                                      f"'needs_configuration'.")
            try:
                factor = parse_factor(row["factor"])
                offset = parse_factor(row.get("offset")) or Fraction(0)
            except (ArithmeticError, ValueError) as exc:
                raise VocabularyError(
                    f"{where}: factor/offset must be numbers or fractions such as 1/2.247 "
                    f"({type(exc).__name__}).") from None
            if status == "ok" and factor is None:
                raise VocabularyError(f"{where}: unit '{row['unit']}' has no factor; give one or "
                                      f"set status to needs_configuration.")
            key = normalize_unit(row["unit"])
            self.units[(variable, key)] = Unit(
                variable=variable, unit=row["unit"], unit_key=key, factor=factor, offset=offset,
                status=status, reference=row.get("reference") or source, source=where)

    # -- look-ups -----------------------------------------------------------------------------
    def unit(self, variable: str, unit: str) -> Unit:
        """The accepted unit ``unit`` of ``variable`` (any spelling of units.csv)."""
        entry = self.units.get((variable, normalize_unit(unit)))
        if entry is None:
            raise VocabularyError(f"'{unit}' is not an accepted unit of {variable} "
                                  f"(vocabulary/units.csv).")
        return entry

    def factor(self, variable: str, unit: str) -> Fraction:
        """The exact factor from ``unit`` to the canonical unit of ``variable`` (offset 0)."""
        entry = self.unit(variable, unit)
        if entry.factor is None or entry.offset:
            raise VocabularyError(f"{variable} in '{unit}' has no plain factor "
                                  f"(status {entry.status}, offset {entry.offset}).")
        return entry.factor

    def convert(self, variable: str, value, unit: str) -> float:
        """Convert one value exactly (for tests and small tools; loaders convert set-based)."""
        entry = self.units.get((variable, normalize_unit(unit)))
        if entry is None or entry.status != "ok":
            raise VocabularyError(f"No conversion for {variable} in '{unit}'.")
        return entry.convert(value)

    def drugs_in_class(self, drug_class: str) -> list[str]:
        return sorted(d for d, r in self.drugs.items() if r["drug_class"] == drug_class)

    def codes_of(self, kind: str | None = None, *, system: str | None = None,
                 target: str | None = None) -> list[Code]:
        """The code rows of one kind (and system, target), site rows first."""
        return [c for c in self.codes if (kind is None or c.kind == kind)
                and (system is None or c.system == system)
                and (target is None or c.target == target)]

    def first_code(self, kind: str, target: str, system: str | None = None, *,
                   with_concept_id: bool = False) -> Code | None:
        for c in self.codes_of(kind, system=system, target=target):
            if c.concept_id is not None or not with_concept_id:
                return c
        return None

    @cached_property
    def concepts(self) -> dict[str, Concept]:
        """The condition concepts of concepts.csv with their codes."""
        out = {}
        for row in self._concept_rows:
            name = row["concept"]
            if not name:
                raise VocabularyError(f"vocabulary/concepts.csv line {row['_line']}: empty "
                                      f"concept name.")
            aliases = tuple(a.strip() for a in row.get("aliases", "").split("|") if a.strip())
            out[name] = Concept(name, aliases, row.get("negates", ""), row.get("reference", ""))
        return out

    def concept_codes(self, concept: str) -> list[Code]:
        return self.codes_of("condition", target=concept)

    # -- tables for set-based joins on the engine ---------------------------------------------
    @cached_property
    def variables_frame(self) -> pd.DataFrame:
        return pd.DataFrame([v.__dict__ for v in self.variables.values()]).rename(
            columns={"name": "variable"})

    @cached_property
    def units_frame(self) -> pd.DataFrame:
        """One row per accepted unit: ``factor`` / ``offset`` as the nearest doubles, and the
        exact conversion ``(value x exact_a + exact_b) / exact_c`` in integers (as doubles; NULL
        when they are not exact below 2**53, then the doubles are used: :mod:`.units`)."""
        rows = []
        for u in self.units.values():
            a = b = c = None
            if u.factor is not None:
                ia, ib, ic = integer_form(u.factor, u.offset)
                if max(abs(ia), abs(ib), ic) < EXACT_LIMIT:
                    a, b, c = float(ia), float(ib), float(ic)
            rows.append({"variable": u.variable, "unit_key": u.unit_key,
                         "factor": None if u.factor is None else float(u.factor),
                         "offset": float(u.offset), "exact_a": a, "exact_b": b, "exact_c": c,
                         "status": u.status, "reference": u.reference})
        frame = pd.DataFrame(rows)
        for col in ("factor", "offset", "exact_a", "exact_b", "exact_c"):
            frame[col] = frame[col].astype("float64")
        return frame

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
        rows = []
        for k, v in self.dose_units.items():
            a, _, c = integer_form(v["exact_factor"])
            rows.append({"unit_key": k, "canonical_unit": v["canonical_unit"],
                         "factor": v["factor"], "exact_a": float(a), "exact_c": float(c)})
        return pd.DataFrame(rows)

    @cached_property
    def codes_frame(self) -> pd.DataFrame:
        """Every code row (site rows first) with its ``priority`` (0 = first)."""
        frame = pd.DataFrame(
            [{"kind": c.kind, "target": c.target, "system": c.system, "code": c.code,
              "concept_id": c.concept_id, "unit_when_missing": c.unit_when_missing,
              "site": c.site, "priority": i} for i, c in enumerate(self.codes)],
            columns=["kind", "target", "system", "code", "concept_id", "unit_when_missing",
                     "site", "priority"])
        frame["concept_id"] = frame["concept_id"].astype("Int64")
        return frame


def _rows(name: str, required: Sequence[str]) -> list[dict]:
    return _read_csv(f"vocabulary/{name}", required, handle=_packaged(name))[1]


def load(site_units: Path | str | None = None, site_codes: Iterable[Path | str] = ()
         ) -> Vocabulary:
    """The dictionary, with a site's unit spellings and codes when given."""
    if site_units is None and not site_codes:
        return default()
    return Vocabulary(site_units, site_codes)


@lru_cache(maxsize=1)
def default() -> Vocabulary:
    """The packaged dictionary (read once per process; treat it as read-only)."""
    return Vocabulary()
