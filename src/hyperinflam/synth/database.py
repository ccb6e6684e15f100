"""Write a large synthetic cohort straight into a DuckDB file, chunk by chunk (benchmark data).

``hyperinflam.synth.generator.synthesize`` writes one CSV folder for the whole cohort; loading 100,000
stays (~33 M measurement rows) through the validating CSV reader in one go took more than 13
minutes here, because every reload check (``sources.ingest._final_sql``) joins the incoming rows
against ``SELECT DISTINCT`` of the whole target table: the cost of each further file grows with
the table already loaded.

This module keeps the validating reader as the only path into the canonical tables (unit
conversion to canonical units per clinical reference §11.1, quarantine, time parsing) but
runs it on one chunk at a time, into an **empty in-memory** database (so the reload check is
skipped: the chunk's keys are new by construction, stay and person ids are numbered over the
whole cohort by :func:`hyperinflam.synth.generator.iter_chunks`), then appends the chunk's canonical rows
to the target file with a plain ``INSERT ... SELECT`` over an attached database. The cost is
linear in the number of stays and memory is bounded by one chunk.

The result is the same database as ``synthesize`` + ``load_csv_folder`` for the same seed
(``synthesize`` is byte-identical whatever its chunk size), except that quarantine rows name the
chunk file (``chunk-000003/measurement.csv``) instead of the whole-cohort file.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.csv as pacsv

from hyperinflam.engine import connect, connect_memory
from hyperinflam.schema import ALL_TABLES, CANONICAL_TABLES
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.synth.generator import iter_chunks
from hyperinflam.synth.parameters import GROUPS
from hyperinflam.vocabulary import Vocabulary

#: Stays per chunk: ~330,000 measurement rows per 1,000 stays, so 2,000 stays is ~0.7 M rows
#: (a little over 100 MB in the in-memory chunk database).
DEFAULT_CHUNK_STAYS = 2000


@dataclass
class SynthDbSummary:
    """What :func:`synthesize_to_db` wrote and where the time went (seconds)."""

    db_path: str
    seed: int
    stays: int = 0
    chunks: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    generate_seconds: float = 0.0
    csv_seconds: float = 0.0
    validate_seconds: float = 0.0
    append_seconds: float = 0.0

    @property
    def total_seconds(self) -> float:
        return self.generate_seconds + self.csv_seconds + self.validate_seconds + self.append_seconds


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def synthesize_to_db(db_path: str | Path, n_stays: int, seed: int, *,
                     chunk_stays: int = DEFAULT_CHUNK_STAYS, overwrite: bool = False,
                     tmp_dir: str | Path | None = None,
                     progress: Callable[[int, int], None] | None = None) -> SynthDbSummary:
    """Generate ``n_stays`` synthetic stays (seed ``seed``) into a new DuckDB file ``db_path``.

    Streams chunks of about ``chunk_stays`` stays: each chunk is written as the CSV layout to a
    temporary folder (under ``tmp_dir``, default the system temp), loaded by
    :func:`hyperinflam.sources.csv.load_csv_folder` into an empty in-memory database, and its
    canonical tables and quarantine are appended to ``db_path``. ``progress(stays_done, n_stays)``
    is called after each chunk. Refuses an existing file unless ``overwrite``.
    """
    if n_stays < 1:
        raise ValueError("n_stays must be at least 1.")
    path = Path(db_path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (or choose a new path) to "
                                  f"write a fresh synthetic database.")
        path.unlink()
        Path(f"{path}.wal").unlink(missing_ok=True)
    target = connect(path)  # creates the canonical tables
    target.disconnect()

    vocabulary = Vocabulary()
    summary = SynthDbSummary(db_path=str(path), seed=seed,
                             rows={t.name: 0 for t in ALL_TABLES},
                             quarantined={t.name: 0 for t in CANONICAL_TABLES})
    group_totals = [0] * len(GROUPS)
    scratch = Path(tempfile.mkdtemp(prefix="hyperinflam-synth-db-", dir=tmp_dir))
    chunk_con = None
    try:
        started = time.perf_counter()
        for stays, tables, group_counts in iter_chunks(n_stays, seed, chunk_stays=chunk_stays,
                                                       vocabulary=vocabulary):
            generated = time.perf_counter()
            summary.generate_seconds += generated - started
            folder = scratch / f"chunk-{summary.chunks:06d}"
            folder.mkdir()
            for name, table in tables.items():
                if name == "truth":
                    continue  # the generator's answer key, not a canonical table
                pacsv.write_csv(table, folder / f"{name}.csv",
                                pacsv.WriteOptions(quoting_style="none"))
            del tables
            written = time.perf_counter()
            summary.csv_seconds += written - generated

            chunk_con = connect_memory()
            report = load_csv_folder(chunk_con, folder, vocabulary=vocabulary)
            for counts in report.tables:
                summary.quarantined[counts.table] += counts.quarantined
            validated = time.perf_counter()
            summary.validate_seconds += validated - written

            raw = chunk_con.con
            raw.execute(f"ATTACH {_sql_string(str(path))} AS synth_target")
            try:
                raw.execute("BEGIN TRANSACTION")
                for table in ALL_TABLES:
                    n = raw.execute(f"SELECT count(*) FROM memory.main.{table.name}").fetchone()[0]
                    raw.execute(f"INSERT INTO synth_target.main.{table.name} "
                                f"SELECT * FROM memory.main.{table.name}")
                    summary.rows[table.name] += n
                raw.execute("COMMIT")
            finally:
                raw.execute("DETACH synth_target")
            chunk_con.disconnect()
            chunk_con = None
            shutil.rmtree(folder)
            summary.append_seconds += time.perf_counter() - validated

            summary.stays += stays
            summary.chunks += 1
            for i, n in enumerate(group_counts):
                group_totals[i] += int(n)
            if progress is not None:
                progress(summary.stays, n_stays)
            started = time.perf_counter()
    finally:
        if chunk_con is not None:
            chunk_con.disconnect()
        shutil.rmtree(scratch, ignore_errors=True)
    summary.groups = dict(zip(GROUPS, group_totals))
    return summary
