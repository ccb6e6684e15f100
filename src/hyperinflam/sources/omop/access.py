"""Access to an OMOP CDM source (v5.4, and v5.3 where it differs): what it is and which tables and
columns it has, before any mapping.

SOURCE is a DuckDB file, a folder of Parquet or CSV files in OMOP layout (``person.parquet`` or
``person.csv``, any case; or a folder of Parquet files per table, as Spark writes them), or a
``postgresql://`` URL (read through DuckDB's postgres extension, shipped by the
``duckdb-extension-postgres-scanner`` wheel: projections and filters are pushed down into
PostgreSQL). :func:`attach_omop` attaches it to a DuckDB connection as catalog :data:`CATALOG`;
:class:`OmopSource` looks up its tables and columns (a CDM 5.3 source's renamed columns by their
5.4 names) for the mapping (:mod:`hyperinflam.sources.omop.mapping`) on DuckDB or Spark.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hyperinflam.errors import SourceError
from hyperinflam.sources.ingest import _q

__all__ = ["CATALOG", "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS", "V53_RENAMED", "V54_ONLY_USED",
           "OmopSource", "attach_omop", "find_omop_files", "load_postgres_extension",
           "quote_identifier", "redact_url"]

#: The DuckDB catalog an attached source is read from.
CATALOG = "_omop_src"
#: OMOP tables read, with the columns the reader needs (others optional; v5.3 lacks the ones
#: listed in OPTIONAL_COLUMNS).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "gender_concept_id", "year_of_birth"),
    "visit_occurrence": ("visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date"),
    "visit_detail": ("visit_detail_id", "person_id", "visit_detail_concept_id",
                     "visit_detail_start_date"),
    "measurement": ("measurement_id", "person_id", "measurement_concept_id", "measurement_date",
                    "value_as_number", "unit_concept_id"),
    "drug_exposure": ("drug_exposure_id", "person_id", "drug_concept_id",
                      "drug_exposure_start_date"),
    "procedure_occurrence": ("procedure_occurrence_id", "person_id", "procedure_concept_id",
                             "procedure_date"),
    "device_exposure": ("device_exposure_id", "person_id", "device_concept_id",
                        "device_exposure_start_date"),
    "condition_occurrence": ("condition_occurrence_id", "person_id", "condition_concept_id",
                             "condition_start_date"),
    "observation": ("observation_id", "person_id", "observation_concept_id", "observation_date"),
    "death": ("person_id", "death_date"),
    "concept": ("concept_id", "vocabulary_id", "concept_code", "concept_name"),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "care_site": ("care_site_id", "place_of_service_concept_id"),
}
#: CDM 5.3 names of columns that 5.4 renamed: (table, 5.4 name) -> 5.3 name. The reader asks
#: for the 5.4 name and gets the 5.3 column from a 5.3 source.
V53_RENAMED: dict[tuple[str, str], str] = {
    (table, new): old
    for table in ("visit_occurrence", "visit_detail")
    for new, old in (("admitted_from_concept_id", "admitting_source_concept_id"),
                     ("admitted_from_source_value", "admitting_source_value"),
                     ("discharged_to_concept_id", "discharge_to_concept_id"),
                     ("discharged_to_source_value", "discharge_to_source_value"))
} | {("visit_detail", "parent_visit_detail_id"): "visit_detail_parent_id"}
#: Columns the reader uses that CDM 5.3 lacks (read as empty), and what is then missing.
V54_ONLY_USED = {
    ("procedure_occurrence", "procedure_end_datetime"): "invasive ventilation end times from "
                                                        "procedure_occurrence",
    ("observation", "observation_event_id"): "dosing weights linked to their drug exposure",
}
OPTIONAL_COLUMNS = {
    "person": ("month_of_birth", "day_of_birth", "birth_datetime", "gender_source_value",
               "person_source_value"),
    "visit_occurrence": ("visit_start_datetime", "visit_end_date", "visit_end_datetime",
                         "visit_source_value", "care_site_id"),
    "visit_detail": ("visit_detail_start_datetime", "visit_detail_end_date",
                     "visit_detail_end_datetime", "visit_detail_source_value", "care_site_id",
                     "visit_occurrence_id"),
    "measurement": ("measurement_datetime", "measurement_source_value", "unit_source_value",
                    "value_source_value", "visit_occurrence_id", "visit_detail_id"),
    "drug_exposure": ("drug_exposure_start_datetime", "drug_exposure_end_date",
                      "drug_exposure_end_datetime", "quantity", "route_concept_id",
                      "route_source_value", "dose_unit_source_value", "drug_source_value",
                      "visit_occurrence_id", "visit_detail_id"),
    "procedure_occurrence": ("procedure_datetime", "procedure_end_date", "procedure_end_datetime",
                             "visit_occurrence_id", "visit_detail_id"),  # end: v5.4 only
    "device_exposure": ("device_exposure_start_datetime", "device_exposure_end_date",
                        "device_exposure_end_datetime", "visit_occurrence_id", "visit_detail_id"),
    "condition_occurrence": ("condition_start_datetime", "condition_end_date",
                             "condition_source_value", "condition_status_source_value",
                             "visit_occurrence_id", "visit_detail_id"),
    "observation": ("observation_datetime", "value_as_number", "value_as_string",
                    "visit_occurrence_id", "visit_detail_id", "observation_event_id"),
    "death": ("death_datetime",),
}


def _extension_path() -> Path:
    try:
        import duckdb_extension_postgres_scanner as pkg
    except ImportError:
        raise SourceError("Reading PostgreSQL needs the package duckdb-extension-postgres-scanner "
                          "(same version as duckdb): pip install "
                          "duckdb-extension-postgres-scanner==1.5.5") from None
    import duckdb

    path = (Path(pkg.__file__).parent / "extensions" / f"v{duckdb.__version__}"
            / "postgres_scanner.duckdb_extension")
    if not path.is_file():
        raise SourceError(f"{path} not found: install duckdb-extension-postgres-scanner=="
                          f"{duckdb.__version__} (it must equal duckdb's version).")
    return path


def load_postgres_extension(raw) -> None:
    """LOAD the postgres extension from the wheel (never INSTALL from the internet)."""
    raw.execute(f"SET extension_directory = {_q(tempfile.gettempdir() + '/hyperinflam-duckdb-ext')}")
    raw.execute(f"LOAD {_q(str(_extension_path()))}")


def find_omop_files(folder: Path) -> dict[str, Path]:
    """OMOP tables of a folder: ``person.parquet`` / ``person.csv`` files (Parquet wins), or a
    folder of Parquet files per table (``person/part-0.parquet``, as Spark writes them)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem, suffix = path.stem.lower(), path.suffix.lower()
        if path.is_dir() and not path.name.startswith((".", "_")) \
                and any(path.rglob("*.parquet")):
            found.setdefault(path.name.lower(), path)
        elif suffix in (".parquet", ".csv") and path.is_file():
            if stem in found and found[stem].suffix.lower() == ".parquet":
                continue
            found[stem] = path
    return found


def attach_omop(raw, source: str | Path, schema: str | None = None) -> tuple[str, str]:
    """Attach SOURCE to the DuckDB connection ``raw`` as catalog :data:`CATALOG`.

    Returns (prefix for table names, label). Raises SourceError with one clear message for a
    missing path or a connection that fails."""
    raw.execute(f"DETACH DATABASE IF EXISTS {CATALOG}")
    text = str(source)
    if text.startswith(("postgresql://", "postgres://")):
        load_postgres_extension(raw)
        try:
            raw.execute(f"ATTACH {_q(text)} AS {CATALOG} (TYPE postgres, READ_ONLY)")
        except Exception as exc:
            raise SourceError(f"cannot connect to {redact_url(text)}: {str(exc).splitlines()[0]} "
                              f"Check host, port, database and user in the URL "
                              f"(postgresql://user@host:5432/database).") from None
        schema = schema or "public"
        exists = raw.execute("SELECT count(*) FROM duckdb_schemas() WHERE database_name = ? AND "
                             "schema_name = ?", [CATALOG, schema]).fetchone()[0]
        if not exists:
            raise SourceError(f"{redact_url(text)}: no schema '{schema}'; give the CDM schema with "
                              f"--schema NAME.")
        return f"{CATALOG}.{quote_identifier(schema)}", f"{redact_url(text)} schema {schema}"
    path = Path(text)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder. Give a DuckDB file, a folder of "
                          f"OMOP Parquet/CSV files, or a postgresql:// URL.")
    if path.is_dir():
        files = find_omop_files(path)
        if not files:
            raise SourceError(f"{path}: no .parquet or .csv files; expected OMOP tables such as "
                              f"person.parquet or person.csv.")
        raw.execute(f"ATTACH ':memory:' AS {CATALOG}")
        for name, file in files.items():
            if file.is_dir():
                reader = f"read_parquet({_q(str(file / '**' / '*.parquet'))})"
            else:
                reader = (f"read_parquet({_q(str(file))})" if file.suffix.lower() == ".parquet" else
                          f"read_csv({_q(str(file))}, header = true, all_varchar = true, "
                          f"auto_detect = true)")
            raw.execute(f"CREATE VIEW {CATALOG}.main.{quote_identifier(name)} AS SELECT * "
                        f"FROM {reader}")
        return f"{CATALOG}.main", str(path)
    try:
        raw.execute(f"ATTACH {_q(str(path))} AS {CATALOG} (READ_ONLY)")
    except Exception as exc:
        raise SourceError(f"{path}: cannot be opened as a DuckDB database "
                          f"({str(exc).splitlines()[0]}).") from None
    schema = schema or "main"
    return f"{CATALOG}.{quote_identifier(schema)}", f"{path} schema {schema}"


def redact_url(url: str) -> str:
    """A URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}@{host}"
    return url


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class OmopSource:
    """Column lookup over the attached OMOP tables (lower-case names)."""

    def __init__(self, raw, prefix: str, label: str,
                 tables: dict[str, tuple[str, list[str]]] | None = None):
        """``tables`` (another engine): {lower-case OMOP table: (name to query it by, its
        columns[, {lower-case column: (name as written, DuckDB type name)}])}; else the tables
        of the attached DuckDB catalog ``prefix``."""
        self.raw, self.prefix, self.label = raw, prefix, label
        self.tables: dict[str, str] = {}
        self.columns: dict[str, set[str]] = {}
        #: (lower-case table, lower-case column) -> (the name as written, its type in upper case;
        #: '' when the engine does not say)
        self.written: dict[tuple[str, str], tuple[str, str]] = {}
        #: tables read from CSV files (every column text by nature)
        self.text_tables: set[str] = set()
        if tables is not None:
            for low, (name, cols, *written) in tables.items():
                self.tables[low] = name
                self.columns[low] = {c.lower() for c in cols}
                self.written.update({(low, c.lower()): (c, "") for c in cols})
                if written:  # {lower-case column: (name as written, DuckDB type name)}
                    self.written.update({(low, c): w for c, w in written[0].items()})
            return
        catalog, schema = prefix.split(".", 1)
        schema = schema.strip('"')
        rows = raw.execute("SELECT lower(table_name), table_name, lower(column_name), column_name, "
                           "upper(data_type) FROM duckdb_columns() WHERE database_name = ? AND "
                           "schema_name = ?", [catalog, schema]).fetchall()
        for low, name, col, written, kind in rows:
            self.tables[low] = name
            self.columns.setdefault(low, set()).add(col)
            self.written[(low, col)] = (written, kind)
        self.text_tables = {r[0] for r in raw.execute(
            "SELECT lower(view_name) FROM duckdb_views() WHERE database_name = ? AND "
            "schema_name = ? AND sql ILIKE '%read_csv(%'", [catalog, schema]).fetchall()}

    def has(self, table: str) -> bool:
        return table in self.tables

    def ref(self, table: str) -> str:
        name = quote_identifier(self.tables[table])
        return f"{self.prefix}.{name}" if self.prefix else name

    def check(self, table: str) -> None:
        missing = [c for c in REQUIRED_COLUMNS[table] if c not in self.columns[table]]
        if missing:
            raise SourceError(f"{self.label}: table {table} lacks column(s) {', '.join(missing)} "
                              f"(OMOP CDM 5.4/5.3); check the schema (--schema) or the export.")

    def col(self, table: str, column: str, alias: str = "") -> str:
        """The column (by its CDM 5.4 name; a CDM 5.3 source's old name is found too), or NULL
        when the table (v5.3, a partial export) does not have it."""
        have = self.columns.get(table, set())
        if column not in have:
            column = V53_RENAMED.get((table, column), column)
        if column in have:
            return f"{alias + '.' if alias else ''}{quote_identifier(column)}"
        return "NULL"

    def cdm_version(self) -> tuple[str, str]:
        """(version '5.4' / '5.3', how it was found): cdm_source.cdm_version when present
        ('5.4', 'v5.4', 'v5.3.1' ...), else from the column names renamed between 5.3 and 5.4,
        else 5.4 (assumed)."""
        import re

        if self.has("cdm_source") and "cdm_version" in self.columns["cdm_source"]:
            text = self.raw.execute(f"SELECT min(CAST(cdm_version AS VARCHAR)) FROM "
                                    f"{self.ref('cdm_source')} WHERE cdm_version IS NOT NULL"
                                    ).fetchone()[0]
            match = re.search(r"(\d+)\.(\d+)", text or "")
            if match:
                return f"{match.group(1)}.{match.group(2)}", f"cdm_source.cdm_version '{text}'"
        for (table, new), old in V53_RENAMED.items():
            if old in self.columns.get(table, set()):
                return "5.3", f"column {table}.{old} (renamed {new} in 5.4)"
            if new in self.columns.get(table, set()):
                return "5.4", f"column {table}.{new} (new name in 5.4)"
        return "5.4", "assumed: no cdm_source.cdm_version and no version-specific column"

    def oddities(self, used: dict[str, tuple[str, ...]]) -> list[str]:
        """Notes naming how the source departs from the CDM as written (none stops a load):
        tables missing, tables without rows (an empty export, a CSV of a header only), column
        names not in lower case, numbers stored as text and DATE values in datetime columns
        (the last two for typed sources: a CSV file is text by nature). ``used``: the tables
        read, with the columns each needs (:data:`REQUIRED_COLUMNS`)."""
        notes = []
        missing = [t for t in used if not self.has(t)]
        if missing:
            notes.append(f"tables not in the source: {', '.join(missing)} (what they would hold "
                         f"is not recorded; the load goes on without them).")
        present = [t for t in used if self.has(t)]
        if present:
            probe = " UNION ALL ".join(
                f"SELECT {i} AS i, count(*) AS n FROM (SELECT 1 AS one FROM {self.ref(t)} LIMIT 1) x"
                for i, t in enumerate(present))
            empty = [present[i] for i, n in self.raw.execute(probe).fetchall() if n == 0]
            if empty:
                notes.append(f"empty tables (no rows; a CSV file of its header only is one): "
                             f"{', '.join(sorted(empty))}.")
        wanted = {(t, c) for t in present for c in used[t] + OPTIONAL_COLUMNS.get(t, ())}
        cased = sorted(f"{self.tables[t]}.{self.written[(t, c)][0]}" for t, c in wanted
                       if (t, c) in self.written and self.written[(t, c)][0] != c)
        if cased:
            notes.append(f"column names in upper or mixed case ({_some(cased)}): matched without "
                         f"regard to case.")
        typed = [(t, c) for t, c in sorted(wanted) if (t, c) in self.written
                 and t not in self.text_tables and self.written[(t, c)][1]]
        as_text = [f"{t}.{c}" for t, c in typed if _is_number_column(c)
                   and self.written[(t, c)][1] in ("VARCHAR", "TEXT", "STRING")]
        if as_text:
            notes.append(f"numbers stored as text ({_some(as_text)}): read as numbers; a value "
                         f"that is not a number reads as missing and its row is quarantined "
                         f"where the value is required.")
        dates = [f"{t}.{c}" for t, c in typed if c.endswith("_datetime")
                 and self.written[(t, c)][1] == "DATE"]
        if dates:
            notes.append(f"dates without a time in datetime columns ({_some(dates, 30)}): read as "
                         f"the date at 00:00 (an end at 23:59:59), as the date columns are.")
        return notes

    def count(self, table: str) -> int:
        return self.raw.execute(f"SELECT count(*) FROM {self.ref(table)}").fetchone()[0]


#: Columns named *_id that hold text in the CDM (vocabulary keys), not numbers.
TEXT_ID_COLUMNS = ("vocabulary_id", "domain_id", "concept_class_id", "relationship_id")


def _is_number_column(column: str) -> bool:
    """Whether the CDM types the column as a number (integer ids, concept ids, birth parts,
    values): a VARCHAR one is a number stored as text."""
    return (column.endswith(("_id", "_of_birth")) and column not in TEXT_ID_COLUMNS) or column in (
        "value_as_number", "quantity", "range_low", "range_high", "days_supply", "refills")


def _some(names: list[str], limit: int = 6) -> str:
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")
