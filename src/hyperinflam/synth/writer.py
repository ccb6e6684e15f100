"""The synthetic cohort written as a folder of CSV files, one per canonical table plus
``truth.csv`` (the layout read by :mod:`hyperinflam.sources.csv`), chunk by chunk with flat memory;
byte-identical files for a seed whatever the chunk size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from hyperinflam.synth.generator import iter_chunks
from hyperinflam.synth.parameters import GROUPS, LAYOUT, SynthParams


class _CsvFolderWriter:
    """Appends formatted tables to one CSV file per table (header written once)."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.writers: dict[str, pacsv.CSVWriter] = {}
        self.sinks: dict[str, pa.NativeFile] = {}
        self.rows: dict[str, int] = {name: 0 for name in LAYOUT}
        # Plain CSV: no quoting (generated text never holds a comma, quote or newline; a test
        # checks it) and a header line written here, unquoted.
        self.options = pacsv.WriteOptions(quoting_style="none", include_header=False)

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.writers:
            path = self.out_dir / f"{name}.csv"
            path.write_text(",".join(table.column_names) + "\n", encoding="utf-8")
            self.sinks[name] = pa.OSFile(str(path), "ab")
            self.writers[name] = pacsv.CSVWriter(self.sinks[name], table.schema,
                                                 write_options=self.options)
        self.writers[name].write_table(table)
        self.rows[name] += table.num_rows

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        for f in self.sinks.values():
            f.close()



def synthesize(out_dir: str | Path, n_stays: int, seed: int, *, chunk_stays: int = 2000,
               progress: Callable[[int, int], None] | None = None,
               params: SynthParams | None = None) -> dict:
    """Write a synthetic PICU cohort of ``n_stays`` stays as the CSV folder layout into ``out_dir``.

    Deterministic for a seed (byte-identical files, whatever ``chunk_stays``); streams by chunks of
    about ``chunk_stays`` stays (rounded to whole blocks of :data:`BLOCK_STAYS`). ``progress`` is
    called after each chunk with (stays written, n_stays). Returns a summary: rows per file, stays
    per group, persons, chunks and the largest number of stays held in memory at once.
    """
    if n_stays < 1:
        raise ValueError("n_stays must be at least 1.")
    if chunk_stays < 1:
        raise ValueError("chunk_stays must be at least 1.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in LAYOUT:  # never append to an earlier run
        (out / f"{name}.csv").unlink(missing_ok=True)
    writer = _CsvFolderWriter(out)
    groups = np.zeros(4, dtype=np.int64)
    done, chunks, max_held = 0, 0, 0
    try:
        for stays, tables, group_counts in iter_chunks(n_stays, seed, chunk_stays=chunk_stays,
                                                       params=params):
            max_held = max(max_held, stays)
            for name, table in tables.items():
                writer.write(name, table)
            del tables
            groups += group_counts
            done += stays
            chunks += 1
            if progress is not None:
                progress(done, n_stays)
    finally:
        writer.close()
    return {
        "out_dir": str(out),
        "seed": seed,
        "stays": done,
        "persons": writer.rows["person"],
        "files": {f"{name}.csv": writer.rows[name] for name in LAYOUT},
        "groups": {name: int(groups[i]) for i, name in enumerate(GROUPS)},
        "chunks": chunks,
        "max_stays_in_memory": max_held,
        "time_zone": "UTC (times written without offset; load with tz='UTC')",
    }
