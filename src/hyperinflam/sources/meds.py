"""Load MEDS data (Medical Event Data Standard) into the canonical tables.

MEDS keeps one row per event in Parquet: ``subject_id``, ``time``, ``code``, ``numeric_value``
(float32). The reader maps the events set-based inside DuckDB and hands each canonical table to
the shared pipeline :func:`hyperinflam.sources.ingest.load_staged` (validation, unit conversion
with clinical reference §11.1 factors, plausible ranges §11.2, quarantine, duplicates, idempotent
reloads). Nothing is validated twice.

Mapping (documented for users in ``docs/sources-meds.md``):

* **Codes** are the ``MEDS`` rows of ``vocabulary/codes.csv`` (plus a site file, ``--codes``): a
  row maps a code *prefix* (``LAB//50924``; the part after the next ``//`` is the unit, e.g. ``ng/mL``) to a
  vocabulary variable, or a medication prefix (``MEDICATION//Dexamethasone``; the part after it is
  the administration status) to a vocabulary drug. Prefixes match case-insensitively and the
  longest prefix wins. ``MEDICATION//<name>`` also maps when ``<name>`` is a drug name or alias of
  ``vocabulary/drugs.csv``. The unit ``UNK`` means "no unit": such rows are quarantined
  (``missing_unit``) unless the code row gives ``unit_when_missing`` (dimensionless variables,
  INR).
* **Intervals**: a ``support`` row (an organ-support kind) or a ``drug`` row whose code is a start
  (:func:`interval_end_code`: ``PROCEDURE//START//225792``, ``INFUSION_START//221906``) pairs the
  k-th start with the k-th end of its end code, per subject in time order (a start without an
  end: no end). A vasoactive's interval is organ support with the start value as its rate, in the
  row's ``unit_when_missing`` (none: no dose, said in the notes); another drug's is a drug
  administration with start, end and rate.
* **Diagnoses**: every ``DIAGNOSIS//ICD//<9|10>//<code>`` is a condition (ICD9CM / ICD10CM, the
  code with its dot, the concept of a matching ``condition`` row of codes.csv as its name), an
  underlying one when recorded before the person's first PICU admission.
* **Weights**: a ``stay_weight`` row (``LAB//226512``, kg) gives stay.weight_kg: the one charted
  nearest the admission, from :data:`STAY_WEIGHT_BEFORE_HOURS` before it to the discharge.
* **Persons** from ``MEDS_BIRTH`` (birth date = the date of its time) and ``GENDER//<M|F>``
  (``unknown`` when the subject has no GENDER event).
* **Stays**: each ``ICU_ADMISSION//<unit>`` is paired with the next ``ICU_DISCHARGE//<unit>`` of the
  same subject (window ``lead()`` over the subject's ICU events; at equal times a discharge comes
  first; the discharge unit may differ after an internal transfer). A discharge without a preceding
  admission is staged with an empty admit time and so quarantined. A stay is a PICU stay when its
  care unit contains one of ``picu_units`` (case-insensitive; default :data:`PICU_UNIT_PATTERNS`),
  or every ICU unit with ``all_icu``, **and** the child's age at admission, in completed years, is
  at most ``max_age_years`` (clinical reference §11.2, "Age 0-21 years at admission (project
  scope)"; ``None`` = no age limit). MIMIC-IV is adult-only: load its demo with ``all_icu=True,
  max_age_years=None`` (CLI ``--all-icu --any-age``).
* **Scope**: the persons with at least one PICU stay, and their mapped events. A measurement, drug
  or death gets the ``stay_id`` of the loaded stay of that person that contains its time
  (admission <= time <= discharge), else none. Events of other persons and codes outside the map
  are not staged; they are counted per code prefix in the report notes (``events_out_of_scope``),
  so that every event is accounted for: events read = events staged + events out of scope.
* **Values**: a float32 value is staged as the shortest decimal that reads back to the same float32
  (DuckDB's ``CAST(FLOAT AS VARCHAR)``, as numpy's ``repr``): 32.7 stored as float32 (32.700001 when
  widened to float64) arrives as 32.7, exactly the precision the source holds; no other rounding.
  ``numeric_value`` and ``value`` are both accepted (``numeric_value`` wins); other columns such as
  a junk ``table`` column are ignored.
* **Times**: naive; read in the site time zone ``tz`` (default UTC), stored as naive UTC. De-
  identified data are often shifted into the future (MIMIC: 2109-2202), where a birth date "in the
  future" would be rejected. ``shift_years`` moves every time back by a multiple of 400 Gregorian
  years (146,097 days exactly), which keeps each calendar date, weekday, time of day, leap day,
  interval and age unchanged; ``None`` (default) chooses the smallest multiple that puts the last
  event in the past (0 for real dates) and says so in the report.
* **Files**: a folder is read only from its files that follow the MEDS data schema
  (:data:`MEDS_COLUMNS`; ``data/`` of a MEDS dataset root, else the folder itself); the others are
  named in the report notes with what departs, so that no event is read twice (a long-form
  extract beside the events file). A file named as PATH is read when it has the columns.
* **Locations**: a quarantined event is filed under its own Parquet file and row (1 = the first
  row of that file); inside the load ``_line`` numbers the events on through the files.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from hyperinflam.errors import SourceError
from hyperinflam.sources import LoadReport
from hyperinflam.sources.atomic import cleanup, forget_rows, load_transaction, on_commit
from hyperinflam.sources.ingest import _q, load_staged, open_load, with_site_codes
from hyperinflam.sources.domains import read_declarations, record_domains
from hyperinflam.sources.infections import derive_infections
from hyperinflam.sources.suspected_infection import derive_suspected_infections
from hyperinflam.sources.load_log import record_load
from hyperinflam.vocabulary import VASOACTIVE_CLASS, Vocabulary

__all__ = ["ADMINISTERED_STATUSES", "DAYS_PER_400_YEARS", "MedsCode", "MedsLoadReport",
           "PICU_UNIT_PATTERNS", "load_meds", "read_meds_codes"]

#: Care-unit name fragments (case-insensitive) that make an ICU stay a PICU stay.
PICU_UNIT_PATTERNS: tuple[str, ...] = ("picu", "pediatric", "paediatric")
#: Project scope, clinical reference §11.2: age 0-21 years at admission (completed years).
MAX_AGE_YEARS: float = 21
#: Administration statuses (the part after the medication name) that count as a dose given.
#: ``Not Given``, ``UNK`` and START/STOP order events are not administrations.
ADMISSION, DISCHARGE = "ICU_ADMISSION", "ICU_DISCHARGE"
ADMINISTERED_STATUSES: tuple[str, ...] = ("Administered", "Delayed Administered",
                                          "Administered in Other Location")
#: 400 Gregorian years, exactly (the calendar repeats: dates, weekdays and leap days unchanged).
DAYS_PER_400_YEARS = 146_097
UNKNOWN_UNIT = "UNK"
#: The code system of MEDS code prefixes in vocabulary/codes.csv.
MEDS_SYSTEM = "MEDS"
VALUE_COLUMNS = ("numeric_value", "value")


@dataclass(frozen=True)
class MedsCode:
    """One MEDS code of the dictionary (a ``MEDS`` row of ``vocabulary/codes.csv``)."""

    code: str
    variable: str | None
    drug: str | None
    unit_when_unk: str | None
    reference: str
    source: str  # file:line
    #: an organ-support kind of supports.csv (kind ``support``)
    support: str | None = None
    #: the code is a stay's admission weight (kind ``stay_weight``, in kg)
    stay_weight: bool = False


@dataclass
class MedsLoadReport(LoadReport):
    """:class:`LoadReport` plus the account of every event read (events read = staged + out of
    scope)."""

    events_read: int = 0
    events_staged: int = 0
    events_out_of_scope: dict[str, int] = field(default_factory=dict)
    shift_years: int = 0
    picu_stays_found: int = 0
    icu_stays_not_picu: int = 0


# ---------------------------------------------------------------------------------------------
# the code map
def read_meds_codes(vocabulary: Vocabulary, site_codes: Iterable[str | Path] = ()) -> list[MedsCode]:
    """The MEDS code map: the ``MEDS`` rows of the dictionary (vocabulary/codes.csv) plus site
    files (layout of codes.csv, or the former ``code,variable,drug,unit_when_unk,reference``); a
    site row replaces a packaged row with the same code. Raises :class:`SourceError` naming
    file, line and fix."""
    vocab = with_site_codes(vocabulary, list(site_codes))
    rows: dict[tuple[str, bool], MedsCode] = {}
    for c in vocab.codes_of(system=MEDS_SYSTEM):
        if c.kind not in MEDS_CODE_KINDS:
            raise SourceError(f"{c.source}: a MEDS code maps to a variable (kind measurement), "
                              f"a drug (kind drug), an organ-support kind (kind support) or a "
                              f"stay's admission weight (kind stay_weight), not '{c.kind}'.")
        # a stay_weight row stands beside the code's measurement row (the same code may be both)
        rows.setdefault((c.code.lower(), c.kind == "stay_weight"), MedsCode(
            code=c.code, variable=c.target if c.kind == "measurement" else None,
            drug=c.target if c.kind == "drug" else None, unit_when_unk=c.unit_when_missing,
            reference=c.reference, source=c.source,
            support=c.target if c.kind == "support" else None,
            stay_weight=c.kind == "stay_weight"))
    return list(rows.values())


#: Kinds of the MEDS rows of the code map.
MEDS_CODE_KINDS = ("measurement", "drug", "support", "stay_weight")


def interval_end_code(code: str) -> str | None:
    """The end code of an interval's start code (``PROCEDURE//START//225792`` ->
    ``PROCEDURE//END//225792``, ``INFUSION_START//221906`` -> ``INFUSION_END//221906``): the
    first ``//`` part that is ``START`` or ends in ``_START``, with END for START; ``None`` for a
    code that is not a start (a one-time event)."""
    parts = code.split("//")
    for i, part in enumerate(parts):
        if part.upper() == "START" or part.upper().endswith("_START"):
            parts[i] = part[:-5] + ("END" if part[-5:].isupper() else "end")
            return "//".join(parts)
    return None


def _register_codes(raw, codes: list[MedsCode], vocab: Vocabulary) -> None:
    """Temp table _meds_codes(code_key, n_parts, variable, drug, unit_when_unk): the explicit map,
    plus MEDICATION//<drug name or alias> for every drug of the vocabulary."""
    import pandas as pd

    columns = ["code_key", "variable", "drug", "support", "unit_when_unk", "role", "pair_key"]
    rows = []
    for c in codes:
        if c.stay_weight:
            continue
        key = c.code.lower()
        end = interval_end_code(c.code) if (c.drug or c.support) else None
        if c.support is not None and end is None:
            role = "event"  # a support recorded at one time: an interval with no end
        else:
            role = "start" if end else "event"
        rows.append({"code_key": key, "variable": c.variable, "drug": c.drug,
                     "support": c.support, "unit_when_unk": c.unit_when_unk, "role": role,
                     "pair_key": key if end else None})
        if end:
            rows.append({"code_key": end.lower(), "variable": None, "drug": c.drug,
                         "support": c.support, "unit_when_unk": None, "role": "end",
                         "pair_key": key})
    explicit = {r["code_key"] for r in rows}
    for _, r in vocab.drug_names_frame.iterrows():  # a few dozen vocabulary rows, not data rows
        key = f"medication//{r['name_key']}"
        if key not in explicit:
            rows.append({"code_key": key, "variable": None, "drug": r["drug"], "support": None,
                         "unit_when_unk": None, "role": "event", "pair_key": None})
            explicit.add(key)
    frame = pd.DataFrame(rows, columns=columns)
    weights = pd.DataFrame([{"code_key": c.code.lower()} for c in codes if c.stay_weight],
                           columns=["code_key"])
    conditions = pd.DataFrame([{"system": c.system, "code": c.code, "target": c.target}
                               for c in vocab.codes_of("condition") if c.system in ICD_SYSTEMS],
                              columns=["system", "code", "target"])
    raw.register("_meds_condition_frame", conditions)
    raw.register("_meds_codes_frame", frame)
    raw.register("_meds_weight_frame", weights)
    try:
        raw.execute("""CREATE OR REPLACE TEMP TABLE _meds_codes AS
            SELECT CAST(code_key AS VARCHAR) AS code_key,
                   len(string_split(code_key, '//')) AS n_parts,
                   CAST(variable AS VARCHAR) AS variable, CAST(drug AS VARCHAR) AS drug,
                   CAST(support AS VARCHAR) AS support,
                   CAST(unit_when_unk AS VARCHAR) AS unit_when_unk, CAST(role AS VARCHAR) AS role,
                   CAST(pair_key AS VARCHAR) AS pair_key
            FROM _meds_codes_frame""")
        raw.execute("""CREATE OR REPLACE TEMP TABLE _meds_condition_codes AS
            SELECT DISTINCT ON (system, upper(code)) CAST(system AS VARCHAR) AS system,
                   upper(CAST(code AS VARCHAR)) AS code, CAST(target AS VARCHAR) AS target
            FROM _meds_condition_frame ORDER BY system, upper(code), target""")
        raw.execute("""CREATE OR REPLACE TEMP TABLE _meds_weight_codes AS
            SELECT CAST(code_key AS VARCHAR) AS code_key FROM _meds_weight_frame""")
        vasoactive = ", ".join(_q(d) for d in vocab.drugs_in_class(VASOACTIVE_CLASS)) or "NULL"
        raw.execute(f"""CREATE OR REPLACE TEMP TABLE _meds_vasoactive AS
            SELECT unnest([{vasoactive}]) AS drug""")
    finally:
        raw.unregister("_meds_codes_frame")
        raw.unregister("_meds_weight_frame")
        raw.unregister("_meds_condition_frame")


# ---------------------------------------------------------------------------------------------
# reading the events
#: The MEDS data schema (meds 0.4 ``DataSchema``): column -> (Parquet type, required).
MEDS_COLUMNS: dict[str, tuple[str, bool]] = {
    "subject_id": ("int64", True), "time": ("timestamp[us]", True), "code": ("string", True),
    "numeric_value": ("float", False), "text_value": ("large_string", False)}


def meds_schema_problems(schema) -> list[str]:
    """How a Parquet schema (``pyarrow.Schema``) departs from the MEDS data schema
    (:data:`MEDS_COLUMNS`; extra columns are allowed), plus the one fallback this reader takes: a
    file without ``numeric_value`` may carry its values in a numeric column ``value``. An empty
    list: the file follows MEDS."""
    import pyarrow as pa

    problems = []
    names = set(schema.names)
    for name, (want, required) in MEDS_COLUMNS.items():
        if name not in names:
            if required:
                problems.append(f"no column {name}")
            continue
        got = str(schema.field(name).type)
        if got != want:
            problems.append(f"{name} is {got}, MEDS requires {want}")
    if "numeric_value" not in names and "value" in names:
        kind = schema.field("value").type
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            problems.append(f"value is {kind}, not a number")
    return problems


def _schema(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow: not Parquet, truncated, unreadable
        raise SourceError(f"{path}: cannot be read as Parquet ({_first_line(exc)}). Give MEDS "
                          f"event files (Parquet: subject_id, time, code, numeric_value).") from None


def _parquet_files(path: Path, report: MedsLoadReport | None = None) -> list[Path]:
    """The event files to read: PATH itself, or the files of a MEDS folder that follow the MEDS
    schema (``data/**/*.parquet`` of a MEDS dataset root, else the folder's ``*.parquet``).

    A folder's files that do not follow MEDS (another layout of the same events, a long-form
    extract) are not read: each is named in the report notes with what departs, so that no event
    is counted twice. A file given as PATH is read when it has the columns subject_id, time and
    code, its departures from MEDS types named in a note."""
    if path.is_file():
        problems = meds_schema_problems(_schema(path))
        if problems and report is not None:
            report.notes.append(f"{path.name} departs from the MEDS schema ({'; '.join(problems)}); "
                                f"read because it was named as PATH.")
        return [path]
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder. Give a MEDS Parquet file or a MEDS "
                          f"dataset folder (its data/ shards are read).")
    root = path / "data" if (path / "data").is_dir() else path
    candidates = sorted(p for p in root.rglob("*.parquet")
                        if "metadata" not in p.relative_to(root).parts)
    if not candidates:
        raise SourceError(f"{path}: no .parquet files found (MEDS events are Parquet files, in "
                          f"data/ for a MEDS dataset folder).")
    files, skipped = [], []
    for f in candidates:
        problems = meds_schema_problems(_schema(f))
        (skipped.append((f, problems)) if problems else files.append(f))
    others = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() != ".parquet"
                    and not p.name.startswith(".")) if root == path else []
    if not files:
        raise SourceError(f"{path}: no file follows the MEDS schema (subject_id int64, time "
                          f"timestamp[us], code string; numeric_value float): " + "; ".join(
                              f"{f.name}: {', '.join(p)}" for f, p in skipped)
                          + ". Name a file as PATH to read it anyway.")
    if report is not None:
        for f, problems in skipped:
            report.notes.append(f"{f.relative_to(path)} not read: it does not follow the MEDS "
                                f"schema ({'; '.join(problems)}). A folder is read only from its "
                                f"MEDS files, so that no event is counted twice; name the file as "
                                f"PATH to read it instead.")
        if others:
            report.notes.append(f"not read (not Parquet): {', '.join(others)}.")
    return files


def _stage_events(raw, files: list[Path], shift_years: int | None, report: MedsLoadReport) -> None:
    """Temp table _meds_ev: _line, subject_id, time (shifted), code, value (text), p1..p3."""
    lists = "[" + ", ".join(_q(str(f)) for f in files) + "]"
    try:
        columns = {name: str(ctype).upper() for name, ctype, *_ in raw.execute(
            f"DESCRIBE SELECT * FROM read_parquet({lists}, union_by_name = true)").fetchall()}
        sizes = raw.execute(f"""SELECT file_name, sum(row_group_num_rows)
            FROM (SELECT DISTINCT file_name, row_group_id, row_group_num_rows
                  FROM parquet_metadata({lists})) GROUP BY file_name""").fetchall()
    except Exception as exc:  # duckdb: not Parquet, truncated file, unreadable
        raise SourceError(f"{_names(files)}: cannot be read as Parquet ({_first_line(exc)}). Give "
                          f"MEDS event files (Parquet: subject_id, time, code, numeric_value).") \
            from None
    missing = [c for c in ("subject_id", "time", "code") if c not in columns]
    value_col = next((c for c in VALUE_COLUMNS if c in columns), None)
    if missing or value_col is None:
        need = missing + ([] if value_col else ["numeric_value (or value)"])
        raise SourceError(f"{_names(files)}: missing MEDS column(s) {', '.join(need)}; found "
                          f"{', '.join(columns)}. MEDS events need subject_id, time, code and "
                          f"numeric_value.")
    time_type = columns["time"]
    if not (time_type.startswith("TIMESTAMP") or time_type == "DATE"):
        raise SourceError(f"{_names(files)}: column time is {time_type}, not a timestamp; MEDS "
                          f"times are Parquet timestamps.")
    time_expr = ("(time AT TIME ZONE 'UTC')" if "WITH TIME ZONE" in time_type
                 else "CAST(time AS TIMESTAMP)")
    size_by_file = {str(Path(name)): int(n) for name, n in sizes}
    offsets, start = [], 0
    for f in files:
        offsets.append((str(f), start))
        start += size_by_file.get(str(f), 0)
    offset_rows = ", ".join(f"({_q(f)}, {o})" for f, o in offsets)
    # where each event came from: _line = off + row, row 1 = the first row of its file
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _meds_files AS
        SELECT path, off, n FROM (VALUES {", ".join(
            f"({_q(f)}, {o}, {size_by_file.get(f, 0)})" for f, o in offsets)}) v(path, off, n)""")
    try:
        raw.execute(f"""CREATE OR REPLACE TEMP TABLE _meds_raw AS
            SELECT o.off + e.file_row_number + 1 AS _line,
                   CAST(e.subject_id AS VARCHAR) AS subject_id, {time_expr} AS time,
                   CAST(e.code AS VARCHAR) AS code, CAST(e.{value_col} AS VARCHAR) AS value
            FROM read_parquet({lists}, union_by_name = true, filename = true,
                              file_row_number = true) e
            JOIN (VALUES {offset_rows}) o(fname, off) ON o.fname = e.filename""")
        latest = raw.execute("SELECT max(time) FROM _meds_raw").fetchone()[0]
    except Exception as exc:
        raise SourceError(f"{_names(files)}: cannot be read as MEDS events ({_first_line(exc)}).") \
            from None
    if shift_years is None:
        shift_years = _auto_shift_years(latest)
    if shift_years % 400:
        raise SourceError(f"--shift-years {shift_years}: must be a multiple of 400 (400 Gregorian "
                          f"years keep every date, weekday and leap day).")
    report.shift_years = shift_years
    if shift_years:
        report.notes.append(
            f"times were shifted back by {shift_years} years ({shift_years // 400 * DAYS_PER_400_YEARS:,}"
            f" days, a whole number of 400-year Gregorian cycles: dates, weekdays, intervals and ages "
            f"unchanged) because the source is date-shifted into the future (last event {latest}).")
    shift = f" - INTERVAL {shift_years // 400 * DAYS_PER_400_YEARS} DAY" if shift_years else ""
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _meds_ev AS
        SELECT _line, subject_id, time{shift} AS time, code, value,
               split_part(code, '//', 1) AS p1
        FROM _meds_raw""")
    raw.execute("DROP TABLE _meds_raw")


def _auto_shift_years(latest) -> int:
    if latest is None:
        return 0
    now = _dt.datetime.now()
    years = 0
    while latest - _dt.timedelta(days=years // 400 * DAYS_PER_400_YEARS) > now and years < 40_000:
        years += 400
    return years


def _names(files: list[Path]) -> str:
    return str(files[0]) if len(files) == 1 else f"{files[0].parent} ({len(files)} files)"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# mapping
def _map_events(raw) -> None:
    """Temp table _meds_mapped: events whose code matches the code map (longest prefix)."""
    parts = raw.execute("SELECT coalesce(max(n_parts), 1) FROM _meds_codes").fetchone()[0]
    joins = " UNION ALL ".join(
        f"""SELECT e._line, c.n_parts, c.variable, c.drug, c.support, c.unit_when_unk,
                   c.role, c.pair_key, list_slice(string_split(e.code, '//'), {n + 1}, len(string_split(e.code, '//'))) AS rest
            FROM _meds_ev e JOIN _meds_codes c
              ON c.n_parts = {n}
             AND c.code_key = lower(array_to_string(list_slice(string_split(e.code, '//'), 1, {n}),
                                                    '//'))"""
        for n in range(1, parts + 1))
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _meds_mapped AS
        SELECT m._line, e.subject_id, e.time, e.value, m.variable, m.drug, m.support, m.role,
               m.pair_key, m.unit_when_unk,
               CASE WHEN m.variable IS NULL THEN NULL
                    WHEN len(m.rest) = 0 OR array_to_string(m.rest, '//') = '' THEN NULL
                    WHEN array_to_string(m.rest, '//') = {_q(UNKNOWN_UNIT)} THEN m.unit_when_unk
                    ELSE array_to_string(m.rest, '//') END AS unit,
               CASE WHEN m.drug IS NULL THEN NULL ELSE array_to_string(m.rest, '//') END AS status,
               array_to_string(m.rest, '//') AS rest
        FROM ({joins}) m JOIN _meds_ev e ON e._line = m._line
        QUALIFY row_number() OVER (PARTITION BY m._line ORDER BY m.n_parts DESC) = 1""")
    # intervals: the k-th start of a code pairs with the k-th end of its end code (per subject,
    # both in time order); a support code without START is an interval with no end
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _meds_intervals AS
        WITH s AS (
            SELECT _line, subject_id, time, value, drug, support, pair_key,
                   CASE WHEN rest IN ('', {_q(UNKNOWN_UNIT)}) THEN unit_when_unk ELSE rest END
                       AS dose_unit,
                   row_number() OVER (PARTITION BY subject_id, pair_key ORDER BY time, _line) AS k
            FROM _meds_mapped WHERE role = 'start'),
        e AS (
            SELECT _line, subject_id, time, pair_key,
                   row_number() OVER (PARTITION BY subject_id, pair_key ORDER BY time, _line) AS k
            FROM _meds_mapped WHERE role = 'end')
        SELECT s._line, s.subject_id, s.time AS start_time, e.time AS end_time,
               e._line AS end_line, s.value, s.dose_unit, s.drug, s.support,
               coalesce(s.drug IN (SELECT drug FROM _meds_vasoactive), false) AS is_vasoactive
        FROM s LEFT JOIN e USING (subject_id, pair_key, k)
        UNION ALL
        SELECT _line, subject_id, time, NULL, NULL, value,
               CASE WHEN rest IN ('', {_q(UNKNOWN_UNIT)}) THEN unit_when_unk ELSE rest END,
               NULL, support, false
        FROM _meds_mapped WHERE role = 'event' AND support IS NOT NULL""")


def _build_stays(raw, picu_units: tuple[str, ...], all_icu: bool,
                 max_age_years: float | None) -> None:
    """Temp tables _meds_icu (every ICU stay, with is_picu) and _meds_persons (in-scope subjects).

    Pairing: each admission takes the next ICU event of the subject when it is a discharge
    (window lead() ordered by time, discharges first at equal times, then row)."""
    unit_match = "true" if all_icu else ("(" + " OR ".join(
        f"contains(lower(care_unit), {_q(p.lower())})" for p in picu_units) + ")"
        if picu_units else "false")
    age_ok = "true" if max_age_years is None else (
        f"(b.birth IS NOT NULL AND date_diff('year', b.birth, CAST(start_time AS DATE)) - "
        f"CASE WHEN strftime(CAST(start_time AS DATE), '%m%d') < strftime(b.birth, '%m%d') "
        f"THEN 1 ELSE 0 END <= {float(max_age_years)!r})")
    raw.execute("""CREATE OR REPLACE TEMP TABLE _meds_birth AS
        SELECT subject_id, min(CAST(time AS DATE)) AS birth, min(_line) AS birth_line
        FROM _meds_ev WHERE code = 'MEDS_BIRTH' GROUP BY subject_id""")
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _meds_icu AS
        WITH icu AS (
            SELECT _line, subject_id, time, p1, substr(code, len(p1) + 3) AS unit,
                   lead(p1) OVER w AS next_p1, lead(time) OVER w AS next_time,
                   lead(substr(code, len(p1) + 3)) OVER w AS next_unit,
                   lag(p1) OVER w AS prev_p1
            FROM _meds_ev WHERE p1 IN ({_q(ADMISSION)}, {_q(DISCHARGE)})
            WINDOW w AS (PARTITION BY subject_id ORDER BY time, p1 = {_q(ADMISSION)}, _line)),
        s AS (
            SELECT _line, subject_id, time AS admit_time,
                   CASE WHEN next_p1 = {_q(DISCHARGE)} THEN next_time END AS discharge_time,
                   unit AS care_unit, CASE WHEN next_p1 = {_q(DISCHARGE)} THEN next_unit END
                       AS discharge_unit, time AS start_time
            FROM icu WHERE p1 = {_q(ADMISSION)}
            UNION ALL  -- a discharge with no admission before it: staged, then quarantined
            SELECT _line, subject_id, NULL, time, unit, unit, time
            FROM icu WHERE p1 = {_q(DISCHARGE)} AND coalesce(prev_p1, '') <> {_q(ADMISSION)})
        SELECT s.*, subject_id || '-icu' || row_number() OVER (PARTITION BY subject_id
                   ORDER BY start_time, _line) AS stay_id,
               ({unit_match.replace('care_unit', 's.care_unit')}
                OR {unit_match.replace('care_unit', "coalesce(s.discharge_unit, '')")})
               AND {age_ok} AS is_picu
        FROM s LEFT JOIN _meds_birth b USING (subject_id)""")
    raw.execute("""CREATE OR REPLACE TEMP TABLE _meds_persons AS
        SELECT DISTINCT subject_id FROM _meds_icu WHERE is_picu""")


# ---------------------------------------------------------------------------------------------
# the staged selects (text columns named as in the CSV layout)
_PERSON_SQL = """
    SELECT coalesce(b.birth_line, f.first_line) AS _line, p.subject_id AS person_id,
           CAST(b.birth AS VARCHAR) AS birth_date,
           coalesce(g.sex, 'unknown') AS sex
    FROM _meds_persons p
    LEFT JOIN _meds_birth b USING (subject_id)
    LEFT JOIN (SELECT subject_id, min(_line) AS first_line FROM _meds_ev GROUP BY subject_id) f
           USING (subject_id)
    LEFT JOIN (SELECT subject_id, min(substr(code, 9)) AS sex FROM _meds_ev
               WHERE p1 = 'GENDER' GROUP BY subject_id) g USING (subject_id)"""

#: An admission weight counts for a stay from this many hours before its admission to its
#: discharge (MIMIC-IV charts 226512 around the ICU admission time, in the demo up to 18 h before
#: the ICU_ADMISSION event; mimic-code weight_durations.sql joins it by stay_id, which MEDS drops).
STAY_WEIGHT_BEFORE_HOURS = 24

_STAY_SQL = f"""
    SELECT i._line, i.stay_id, i.subject_id AS person_id,
           strftime(i.admit_time, '%Y-%m-%d %H:%M:%S.%f') AS admit_time,
           strftime(i.discharge_time, '%Y-%m-%d %H:%M:%S.%f') AS discharge_time,
           w.weight_kg
    FROM _meds_icu i
    LEFT JOIN (  -- the admission weight (a stay_weight code, in kg) charted nearest the admission
        SELECT i.stay_id, arg_min(e.value, (abs(epoch(e.time) - epoch(i.admit_time)), e._line))
                   AS weight_kg
        FROM _meds_icu i JOIN _meds_ev e ON e.subject_id = i.subject_id
         AND e.time >= i.admit_time - INTERVAL {STAY_WEIGHT_BEFORE_HOURS} HOUR
         AND (i.discharge_time IS NULL OR e.time <= i.discharge_time)
        JOIN _meds_weight_codes c ON lower(e.code) = c.code_key || '//kg'
        WHERE i.is_picu AND e.value IS NOT NULL GROUP BY 1) w ON w.stay_id = i.stay_id
    WHERE i.is_picu"""


def _with_stay(select: str, time_col: str = "time") -> str:
    """Attach the loaded stay (of this load) that contains the event's time."""
    return f"""
        WITH x AS ({select}),
        st AS (SELECT s.stay_id, s.person_id, s.admit_time, s.discharge_time FROM stay s
               SEMI JOIN _meds_icu i ON i.stay_id = s.stay_id AND i.is_picu)
        SELECT x.* EXCLUDE (_t), st.stay_id,
               strftime(x._t, '%Y-%m-%d %H:%M:%S.%f') AS {time_col}
        FROM x LEFT JOIN st ON st.person_id = x.person_id AND x._t >= st.admit_time
             AND (st.discharge_time IS NULL OR x._t <= st.discharge_time)
        QUALIFY row_number() OVER (PARTITION BY x._line ORDER BY st.admit_time) = 1"""


_MEASUREMENT_SQL = _with_stay("""
    SELECT m._line, m.subject_id AS person_id, m.time AS _t, m.variable, m.value, m.unit
    FROM _meds_mapped m SEMI JOIN _meds_persons p ON p.subject_id = m.subject_id
    WHERE m.variable IS NOT NULL""")


_TS = "'%Y-%m-%d %H:%M:%S.%f'"


def _drug_sql() -> str:
    statuses = ", ".join(_q(s.lower()) for s in ADMINISTERED_STATUSES)
    return _with_stay(f"""
        SELECT m._line, m.subject_id AS person_id, m.time AS _t, m.drug,
               NULL::VARCHAR AS dose, NULL::VARCHAR AS dose_unit, NULL::VARCHAR AS end_time
        FROM _meds_mapped m SEMI JOIN _meds_persons p ON p.subject_id = m.subject_id
        WHERE m.drug IS NOT NULL AND m.role = 'event' AND lower(m.status) IN ({statuses})
        UNION ALL  -- infusions of drugs that are not vasoactive: start, end, rate
        SELECT i._line, i.subject_id, i.start_time, i.drug,
               CASE WHEN i.dose_unit IS NOT NULL THEN i.value END,
               CASE WHEN i.value IS NOT NULL THEN i.dose_unit END, strftime(i.end_time, {_TS})
        FROM _meds_intervals i SEMI JOIN _meds_persons p ON p.subject_id = i.subject_id
        WHERE i.drug IS NOT NULL AND NOT i.is_vasoactive""", "start_time")


_SUPPORT_SQL = _with_stay(f"""
    SELECT i._line, i.subject_id AS person_id, i.start_time AS _t,
           coalesce(i.support, i.drug) AS support, strftime(i.end_time, {_TS}) AS end_time,
           CASE WHEN i.dose_unit IS NOT NULL THEN i.value END AS dose,
           CASE WHEN i.value IS NOT NULL THEN i.dose_unit END AS dose_unit
    FROM _meds_intervals i SEMI JOIN _meds_persons p ON p.subject_id = i.subject_id
    WHERE i.support IS NOT NULL OR i.is_vasoactive""", "start_time")

#: Code systems of MEDS diagnoses (DIAGNOSIS//ICD//<version>//<code>), as codes.csv names them.
ICD_SYSTEMS = ("ICD9CM", "ICD10CM")


def _icd_dotted(code: str, version: str) -> str:
    """An ICD-9-CM / ICD-10-CM code with its dot, as codes.csv and OMOP spell it: after the
    third character (ICD-9-CM E codes: after the fourth); MEDS (MIMIC) writes them without."""
    e_code = f"({version} = '9' AND {code} LIKE 'E%')"
    cut = f"CASE WHEN {e_code} THEN 4 ELSE 3 END"
    return (f"CASE WHEN length({code}) > {cut} AND {version} IN ('9', '10') AND "
            f"position('.' IN {code}) = 0 THEN {code}[1:{cut}] || '.' || {code}[{cut} + 1:] "
            f"ELSE {code} END")


_CONDITION_SQL = _with_stay(f"""
    WITH d AS (
        SELECT _line, subject_id, time, split_part(code, '//', 3) AS version,
               upper(split_part(code, '//', 4)) AS bare
        FROM _meds_ev WHERE p1 = 'DIAGNOSIS' AND split_part(code, '//', 2) = 'ICD'),
    coded AS (
        SELECT *, 'ICD' || version || 'CM' AS system, {_icd_dotted('bare', 'version')} AS code
        FROM d),
    first_stay AS (SELECT subject_id, min(admit_time) AS first_admit FROM _meds_icu
                   WHERE is_picu AND admit_time IS NOT NULL GROUP BY 1)
    SELECT c._line, c.subject_id AS person_id, c.time AS _t,
           coalesce(cc.target, c.system || ' ' || c.code) AS condition,
           c.system AS code_system, c.code,
           CASE WHEN c.time < f.first_admit THEN 'true' ELSE 'false' END AS is_underlying
    FROM coded c SEMI JOIN _meds_persons p ON p.subject_id = c.subject_id
    LEFT JOIN first_stay f ON f.subject_id = c.subject_id
    LEFT JOIN _meds_condition_codes cc ON cc.system = c.system AND cc.code = c.code""",
                            "onset_time")


_EVENT_SQL = _with_stay("""
    SELECT e._line, e.subject_id AS person_id, e.time AS _t, 'death' AS event_type,
           e.code AS detail
    FROM _meds_ev e SEMI JOIN _meds_persons p ON p.subject_id = e.subject_id
    WHERE e.code = 'MEDS_DEATH'""")


# ---------------------------------------------------------------------------------------------
def load_meds(con, path, *, vocabulary: Vocabulary | None = None, codes: Iterable[str | Path] = (),
              picu_units: Iterable[str] = PICU_UNIT_PATTERNS, all_icu: bool = False,
              max_age_years: float | None = MAX_AGE_YEARS, shift_years: int | None = None,
              tz: str = "UTC", progress: Callable[[str], None] | None = None,
              domains: Iterable[str | Path] = ()) -> MedsLoadReport:
    """Load MEDS events (a Parquet file, or a MEDS folder of shards) into the canonical tables.

    ``con`` comes from :func:`hyperinflam.engine.connect`. ``codes`` are site code files (layout
    of ``vocabulary/codes.csv``, or the former ``code,variable,drug,unit_when_unk`` layout). PICU
    stays: see the module docstring (``picu_units``, ``all_icu``, ``max_age_years``); ``shift_years`` (a multiple of 400, ``None`` = automatic)
    undoes a de-identification shift into the future. Returns a :class:`MedsLoadReport` whose
    tables reconcile (read = loaded + already present + quarantined) and which accounts for every
    event (read = staged + out of scope). Raises :class:`SourceError` for an unreadable source, a
    missing MEDS column, a bad codes file or time zone.
    """
    path = Path(path)
    raw, vocab = open_load(con, vocabulary, tz)
    picu_units = tuple(p for p in picu_units if p.strip())
    site_vocab = with_site_codes(vocab, list(codes))  # the dictionary plus the site's rows
    code_map = read_meds_codes(site_vocab)
    declared = read_declarations(domains, vocab)
    report = MedsLoadReport(source=str(path.resolve()))
    files = _parquet_files(path, report)
    step = progress or (lambda _: None)
    temp = ("_meds_ev", "_meds_raw", "_meds_codes", "_meds_mapped", "_meds_birth", "_meds_icu",
            "_meds_persons", "_meds_files", "_meds_intervals", "_meds_weight_codes",
            "_meds_vasoactive", "_meds_condition_codes")
    try:
        step("reading events")
        _stage_events(raw, files, shift_years, report)
        _register_codes(raw, code_map, site_vocab)
        _map_events(raw)
        _build_stays(raw, picu_units, all_icu, max_age_years)
        source = str(path.resolve())
        with load_transaction(raw):  # every table or none (sources/atomic.py)
            on_commit(raw, lambda: record_load(raw, report, reader="meds", tz=tz))
            for table, sql in (("person", _PERSON_SQL), ("stay", _STAY_SQL),
                               ("measurement", _MEASUREMENT_SQL),
                               ("drug_administration", _drug_sql()),
                               ("organ_support", _SUPPORT_SQL), ("condition", _CONDITION_SQL),
                               ("event", _EVENT_SQL)):
                step(table)
                report.tables.append(_load_table(con, table, sql, f"{source}#{table}", vocab, tz,
                                                 report))
            derive_infections(raw, report, site_vocab)
            derive_suspected_infections(raw, report)
            record_domains(raw, report, vocab, reader="meds", declared=declared)
        _account(raw, report, picu_units, all_icu, max_age_years)
        _interval_notes(raw, report)
    finally:
        cleanup(raw, [f"DROP TABLE IF EXISTS {t}" for t in temp])
    return report


def _load_table(con, table: str, sql: str, placeholder: str, vocab: Vocabulary, tz: str,
                report: MedsLoadReport):
    """Load one canonical table through the shared pipeline, then file its quarantine rows under
    the event's own file and row (row 1 = the first row of that Parquet file)."""
    raw = con.con
    # a reload replaces the quarantine rows of these files (the pipeline those of ``placeholder``)
    forget_rows(raw, "quarantine", "target_table = ? AND source_file IN (SELECT path FROM "
                "_meds_files)", [table])
    counts = load_staged(con, table, sql, source=placeholder, vocabulary=vocab, tz=tz)
    if table == "measurement":
        _missing_unit_note(raw, placeholder, report)
    raw.execute("""UPDATE quarantine SET source_file = f.path, source_line = quarantine.source_line - f.off
        FROM _meds_files f
        WHERE quarantine.target_table = ? AND quarantine.source_file = ?
          AND quarantine.source_line > f.off AND quarantine.source_line <= f.off + f.n""",
                [table, placeholder])
    files = raw.execute("SELECT path, off, n FROM _meds_files ORDER BY off").fetchall()
    if len(files) == 1:  # the table's rows all come from that file (quarantine.source_file)
        counts.source = files[0][0]
    for reason, example in counts.examples.items():
        line = int(example.rsplit(":", 1)[-1])
        where = next(((p, line - o) for p, o, n in files if o < line <= o + n), None)
        if where is not None:
            counts.examples[reason] = f"{Path(where[0]).name}:{where[1]}"
    return counts


def _missing_unit_note(raw, placeholder: str, report: MedsLoadReport) -> None:
    """Name the mapped codes whose events carry no unit (UNK), and the codes row that loads
    them once the site states the unit."""
    rows = raw.execute("""
        SELECT array_to_string(list_slice(string_split(e.code, '//'), 1,
                                          len(string_split(e.code, '//')) - 1), '//') AS prefix,
               min(m.variable), count(*)
        FROM quarantine q JOIN _meds_ev e ON e._line = q.source_line
        JOIN _meds_mapped m ON m._line = q.source_line
        WHERE q.target_table = 'measurement' AND q.source_file = ? AND q.reason = 'missing_unit'
        GROUP BY 1 ORDER BY 3 DESC, 1""", [placeholder]).fetchall()
    for prefix, variable, n in rows:
        report.notes.append(
            f"{prefix}//{UNKNOWN_UNIT} ({variable}): {n:,} events without a unit, quarantined as "
            f"missing_unit (a unit is never guessed from the values). If the site knows the unit, "
            f"a site codes file (--codes) row loads them: measurement,{variable},MEDS,{prefix},,"
            f"<unit>,,,<your reference> (unit_when_missing = the unit, e.g. % or 1 for FiO2; "
            f"docs/sources-meds.md).")


def _interval_notes(raw, report: MedsLoadReport) -> None:
    """Say which interval codes (organ support, infusions) of the loaded persons came without an
    end, and whose start values (rates) were not loaded as doses because the code map gives no
    dose unit for them (a unit is never guessed)."""
    rows = raw.execute("""
        SELECT coalesce(i.support, i.drug) AS what,
               count(*) FILTER (WHERE i.end_time IS NULL AND i.end_line IS NULL
                                AND m.role = 'start') AS open_ended,
               count(*) FILTER (WHERE i.value IS NOT NULL AND i.dose_unit IS NULL) AS no_unit
        FROM _meds_intervals i SEMI JOIN _meds_persons p ON p.subject_id = i.subject_id
        JOIN _meds_mapped m ON m._line = i._line
        GROUP BY 1 ORDER BY 1""").fetchall()
    for what, open_ended, no_unit in rows:
        if open_ended:
            report.notes.append(f"{what}: {open_ended:,} start events without a matching end "
                                f"event: loaded as intervals with no end (still running).")
        if no_unit:
            report.notes.append(f"{what}: {no_unit:,} rates not loaded as doses: the code map "
                                f"gives no dose unit for them (unit_when_missing of its MEDS "
                                f"row; docs/sources-meds.md); the intervals are loaded.")


def _account(raw, report: MedsLoadReport, picu_units, all_icu, max_age_years) -> None:
    """Every event: staged (in one of the tables' reads) or out of scope, per code prefix."""
    statuses = ", ".join(_q(s.lower()) for s in ADMINISTERED_STATUSES)
    rows = raw.execute(f"""
        WITH persons AS (SELECT subject_id FROM _meds_persons),
        staged AS (
            SELECT e._line FROM _meds_ev e SEMI JOIN persons p ON p.subject_id = e.subject_id
            WHERE e.code = 'MEDS_BIRTH' OR e.p1 = 'GENDER' OR e.code = 'MEDS_DEATH'
            UNION ALL SELECT _line FROM _meds_icu WHERE is_picu
            UNION ALL SELECT i._line FROM _meds_ev i JOIN _meds_icu s
                ON s.subject_id = i.subject_id AND s.is_picu AND i.p1 = {_q(DISCHARGE)}
               AND s.admit_time IS NOT NULL AND i.time = s.discharge_time
            UNION ALL SELECT m._line FROM _meds_mapped m SEMI JOIN persons p
                ON p.subject_id = m.subject_id
            WHERE m.variable IS NOT NULL
               OR (m.role = 'event' AND (lower(m.status) IN ({statuses}) OR m.support IS NOT NULL))
               OR m.role = 'start'
            UNION ALL SELECT i.end_line FROM _meds_intervals i SEMI JOIN persons p
                ON p.subject_id = i.subject_id WHERE i.end_line IS NOT NULL
            UNION ALL SELECT e._line FROM _meds_ev e SEMI JOIN persons p
                ON p.subject_id = e.subject_id
            WHERE e.p1 = 'DIAGNOSIS' AND split_part(e.code, '//', 2) = 'ICD')
        SELECT CASE WHEN s._line IS NULL THEN e.p1 END AS prefix, count(*)
        FROM _meds_ev e LEFT JOIN (SELECT DISTINCT _line FROM staged) s ON s._line = e._line
        GROUP BY ALL ORDER BY 2 DESC""").fetchall()
    report.events_read = sum(n for _, n in rows)
    report.events_staged = sum(n for p, n in rows if p is None)
    report.events_out_of_scope = {str(p): n for p, n in rows if p is not None}
    n_picu, n_other = raw.execute(
        "SELECT count(*) FILTER (WHERE is_picu), count(*) FILTER (WHERE NOT is_picu) "
        "FROM _meds_icu").fetchone()
    report.picu_stays_found, report.icu_stays_not_picu = n_picu, n_other
    rule = ("every ICU unit" if all_icu else "care units containing "
            + " / ".join(repr(p) for p in picu_units))
    age = "any age" if max_age_years is None else f"age <= {max_age_years:g} completed years"
    report.notes.append(f"PICU stays: {n_picu:,} found ({rule}, {age}); {n_other:,} other ICU "
                        f"stays were not loaded (--picu-unit, --all-icu, --max-age, --any-age).")
    out = sum(report.events_out_of_scope.values())
    top = ", ".join(f"{p} {n:,}" for p, n in list(report.events_out_of_scope.items())[:8])
    report.notes.append(
        f"events: {report.events_read:,} read = {report.events_staged:,} staged + {out:,} out of "
        f"scope (codes outside the code map, orders not given, or persons without a PICU stay"
        f"{': ' + top if top else ''}).")
