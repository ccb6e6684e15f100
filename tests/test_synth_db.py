"""hyperinflam.synth.database: the chunked fast path gives the same canonical tables as the CSV path."""

from __future__ import annotations

import pytest

from hyperinflam.engine import connect
from hyperinflam.schema import CANONICAL_TABLES
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.synth.writer import synthesize
from hyperinflam.synth.database import synthesize_to_db

N_STAYS, SEED = 600, 7  # 600 stays = 3 blocks of 250, so chunk_stays=250 gives 3 chunks


def _rows(db, table) -> list[tuple]:
    con = connect(db, read_only=True)
    try:
        cols = ", ".join(c.name for c in table.columns)
        return con.con.execute(f"SELECT {cols} FROM {table.name} ORDER BY ALL").fetchall()
    finally:
        con.disconnect()


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synth_db")
    reference = tmp / "reference.duckdb"  # the documented route: whole CSV folder, one load
    csv_summary = synthesize(tmp / "csv", N_STAYS, SEED)
    con = connect(reference)
    load_csv_folder(con, tmp / "csv")
    con.disconnect()
    fast = tmp / "fast.duckdb"
    summary = synthesize_to_db(fast, N_STAYS, SEED, chunk_stays=250, tmp_dir=tmp)
    return reference, fast, summary, csv_summary, tmp


@pytest.mark.parametrize("table", CANONICAL_TABLES, ids=lambda t: t.name)
def test_same_canonical_rows_as_csv_route(both, table):
    reference, fast, *_ = both
    expected = _rows(reference, table)
    assert _rows(fast, table) == expected


def test_summary_counts_rows_chunks_and_groups(both):
    reference, _, summary, csv_summary, _ = both
    assert summary.chunks == 3
    assert summary.stays == N_STAYS
    assert summary.rows["stay"] == N_STAYS
    assert summary.groups == csv_summary["groups"]
    # every generated row is loaded or quarantined (nothing lost)
    for name in ("person", "stay", "measurement", "drug_administration", "organ_support",
                 "condition", "event"):
        loaded = len(_rows(reference, next(t for t in CANONICAL_TABLES if t.name == name)))
        assert summary.rows[name] == loaded
        assert summary.rows[name] + summary.quarantined[name] == csv_summary["files"][f"{name}.csv"]
    assert summary.rows["quarantine"] == sum(summary.quarantined.values())


def test_scratch_folders_removed(both):
    *_, tmp = both
    assert not list(tmp.glob("hyperinflam-synth-db-*"))


def test_refuses_existing_file_unless_overwrite(both):
    _, fast, *_ = both
    with pytest.raises(FileExistsError, match="overwrite=True"):
        synthesize_to_db(fast, 10, SEED)
