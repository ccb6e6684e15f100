"""Which domains a source provides: the domain record of a load (table ``source_domains``).

Every reader calls :func:`record_domains` as the last step of its load (inside
:func:`hyperinflam.sources.atomic.load_transaction`). For every domain of
:func:`hyperinflam.vocabulary.domain.domain_catalogue` (each measurement variable, drug
administrations, each organ-support kind, vasoactive agents, conditions, infections, deaths,
weight) it writes one row, in the load's final transaction, saying whether the source provides it:

* ``declared complete`` / ``declared absent``: the site said so (:func:`read_declarations`:
  ``domains.csv`` in a CSV folder, or ``--domains FILE`` on any loader). A declaration wins over
  the rows: a domain declared complete with no rows means "none happened"; one declared absent
  is not recorded even when some rows were loaded (the load says so).
* ``rows``: the load added rows of it; ``rows (earlier load)``: it added none because they were
  already present (a reload) and an earlier load of the same source recorded the domain.
* ``no rows``: nothing of it; the domain is **not recorded** (unknown, never "no"). Respiratory
  support is one record: when the load has rows of any organ-support kind of supports.csv, a
  kind without rows is recorded (``no rows (organ support recorded)``: none happened) unless the
  site declares it absent; vasoactive agents are decided by their own rows.

A domain is recorded in a database when any load recorded it (:func:`recorded_in_database`);
a database with no domain record at all (written before it existed, a Parquet folder, the
synthetic generator's database) falls back to the data itself (features: every domain recorded;
the study: a domain with at least one row). The load report lists the domains not recorded.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hyperinflam.errors import SourceError
from hyperinflam.sources.atomic import PENDING_PREFIX, in_load_transaction, on_commit
from hyperinflam.vocabulary.domain import (CONDITIONS_DOMAIN, DECLARED_STATUSES, DOMAIN_GROUPS,
                                           DRUGS_DOMAIN, MEASUREMENT_DOMAIN_PREFIX,
                                           SUPPORT_DOMAIN_PREFIX, VASOACTIVE_CLASS,
                                           VASOACTIVE_DOMAIN, WEIGHT_DOMAIN, domain_catalogue,
                                           domain_group_members)

__all__ = ["DOMAINS_FILE", "read_declarations", "record_domains", "domain_counts",
           "recorded_in_database"]

#: The declarations file a CSV folder may hold (docs/csv-layout.md).
DOMAINS_FILE = "domains.csv"
#: Which table each kind of domain lives in (for a reload: rows already present there).
_KIND_TABLES = {"measurement": ("measurement",), "drug": ("drug_administration",),
                "support": ("organ_support", "drug_administration"), "condition": ("condition",),
                "event": ("event",), "weight": ("stay", "drug_administration", "measurement")}


def _names(vocab) -> dict[str, list[str]]:
    """Every name a declaration may use -> the domains it stands for."""
    names: dict[str, list[str]] = {}
    for domain, _, _ in domain_catalogue(vocab):
        names[domain] = [domain]
        for prefix in (MEASUREMENT_DOMAIN_PREFIX, SUPPORT_DOMAIN_PREFIX):
            if domain.startswith(prefix):
                names.setdefault(domain.removeprefix(prefix), [domain])
    names.update({"infections": ["infection"], "deaths": ["death"],
                  "condition": [CONDITIONS_DOMAIN], "drug_administration": [DRUGS_DOMAIN]})
    for group in DOMAIN_GROUPS:
        names[group] = domain_group_members(group, vocab)
    return names


def read_declarations(paths, vocab) -> dict[str, str]:
    """The site's declarations: domain -> 'complete' or 'absent', from CSV files with the
    columns ``domain,status`` (later lines and later files win). A domain is a name of
    ``source_domains.domain``, without its prefix (``ferritin``, ``invasive_ventilation``) or
    a group of :data:`DOMAIN_GROUPS` (``organ_support``, ``labs``, ...). A bad file is a
    :class:`SourceError` naming the file, the line and the fix."""
    names = _names(vocab)
    out: dict[str, str] = {}
    for path in [Path(p) for p in (paths or ())]:
        if not path.is_file():
            raise SourceError(f"{path}: no such domains file; give a CSV file with the columns "
                              f"domain,status (docs/sources.md, 'Domains a source records').")
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            if "domain" not in header or "status" not in header:
                raise SourceError(f"{path}:1: a domains file needs the columns domain,status "
                                  f"(found: {', '.join(header) or 'nothing'}).")
            reader.fieldnames = header
            for line, row in enumerate(reader, start=2):
                name = (row.get("domain") or "").strip().lower()
                status = (row.get("status") or "").strip().lower()
                if not name and not status:
                    continue
                if name not in names:
                    raise SourceError(
                        f"{path}:{line}: '{name}' is not a domain; use a measurement variable "
                        f"(ferritin), an organ-support kind (invasive_ventilation), vasoactive, "
                        f"drugs, conditions, infection, death, weight or a group "
                        f"({', '.join(DOMAIN_GROUPS)}).")
                if status not in DECLARED_STATUSES:
                    raise SourceError(f"{path}:{line}: status '{status}' for {name}: write "
                                      f"'complete' (the source records every one: none means "
                                      f"none) or 'absent' (the source does not record it).")
                for domain in names[name]:
                    out[domain] = status
    return out


def _pending(raw, table: str) -> str | None:
    name = PENDING_PREFIX + table
    found = raw.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'temp' "
                        "AND table_name = ?", [name]).fetchone()[0]
    return f"temp.main.{name}" if found else None


def domain_counts(raw, vocab, tables: dict[str, str]) -> dict[str, int]:
    """Rows per domain in the given canonical tables (name -> table or query to read)."""
    vaso = ", ".join("'" + d.replace("'", "''") + "'" for d in
                     vocab.drugs_in_class(VASOACTIVE_CLASS)) or "NULL"
    parts = []
    if "measurement" in tables:
        m = tables["measurement"]
        parts += [f"SELECT '{MEASUREMENT_DOMAIN_PREFIX}' || variable, count(*) FROM {m} GROUP BY 1",
                  f"SELECT '{WEIGHT_DOMAIN}', count(*) FROM {m} WHERE variable = 'weight'"]
    if "drug_administration" in tables:
        d = tables["drug_administration"]
        parts += [f"SELECT '{DRUGS_DOMAIN}', count(*) FROM {d}",
                  f"SELECT '{VASOACTIVE_DOMAIN}', count(*) FROM {d} "
                  f"WHERE drug_class = '{VASOACTIVE_CLASS}'",
                  f"SELECT '{WEIGHT_DOMAIN}', count(weight_kg) FROM {d}"]
    if "organ_support" in tables:
        o = tables["organ_support"]
        parts += [f"SELECT '{SUPPORT_DOMAIN_PREFIX}' || support, count(*) FROM {o} "
                  f"WHERE support NOT IN ({vaso}) GROUP BY 1",
                  f"SELECT '{VASOACTIVE_DOMAIN}', count(*) FROM {o} WHERE support IN ({vaso})"]
    if "condition" in tables:
        parts.append(f"SELECT '{CONDITIONS_DOMAIN}', count(*) FROM {tables['condition']}")
    if "event" in tables:
        parts.append(f"SELECT event_type, count(*) FROM {tables['event']} GROUP BY 1")
    if "stay" in tables:
        parts.append(f"SELECT '{WEIGHT_DOMAIN}', count(weight_kg) FROM {tables['stay']}")
    if not parts:
        return {}
    out: dict[str, int] = {}
    for domain, n in raw.execute(" UNION ALL ".join(f"({p})" for p in parts)).fetchall():
        out[domain] = out.get(domain, 0) + int(n or 0)
    return out


def _earlier(raw, source: str) -> set[str]:
    """Domains an earlier load of the same source recorded."""
    return {d for (d,) in raw.execute("SELECT DISTINCT domain FROM source_domains WHERE "
                                      "source = ? AND recorded", [source]).fetchall()}


def _has_table(raw) -> bool:
    return bool(raw.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = "
                            "'source_domains' AND NOT temporary").fetchone()[0])


def record_domains(raw, report, vocab, *, reader: str,
                   declared: dict[str, str] | None = None) -> list[tuple]:
    """Decide, per domain, whether the source of this load provides it; write the rows to
    ``source_domains`` with the load (its final transaction) and note the domains not recorded
    in ``report``. Call it as the last step inside the reader's load transaction (it counts the
    load's pending rows). Returns the rows (domain, kind, label, recorded, basis, rows); nothing
    happens outside a DuckDB load (the Spark load, a table loaded on its own)."""
    if not in_load_transaction(raw) or not _has_table(raw):
        return []
    declared = declared or {}
    pending = {t: p for t in ("measurement", "drug_administration", "organ_support",
                              "condition", "event", "stay") if (p := _pending(raw, t))}
    counts = domain_counts(raw, vocab, pending)
    earlier = _earlier(raw, report.source)
    again = {t.table for t in report.tables if t.already_present}
    rows = []
    for domain, kind, label in domain_catalogue(vocab):
        n = counts.get(domain, 0)
        status = declared.get(domain)
        if status == "complete":
            recorded, basis = True, "declared complete"
        elif status == "absent":
            recorded, basis = False, "declared absent"
        elif n:
            recorded, basis = True, "rows"
        elif domain in earlier and again & set(_KIND_TABLES[kind]):
            recorded, basis = True, "rows (earlier load)"
        else:
            recorded, basis = False, "no rows"
        rows.append([domain, kind, label, recorded, basis, n])
    # respiratory support is one record: a source with rows of any kind records every kind it
    # does not declare absent (no CPAP row among ventilation records means no CPAP); vasoactive
    # agents stand alone (sources often hold them as drugs, apart from procedures)
    support = [r for r in rows if r[1] == "support" and r[0] != VASOACTIVE_DOMAIN]
    if any(r[3] and r[4] != "declared complete" for r in support):
        for r in support:
            if r[4] == "no rows":
                r[3], r[4] = True, "no rows (organ support recorded)"
    rows = [tuple(r) for r in rows]
    _note(report, rows)
    source = report.source

    def write() -> None:
        load_id = raw.execute("SELECT max(load_id) FROM load_log").fetchone()[0] \
            if raw.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'load_log' "
                           "AND NOT temporary").fetchone()[0] else None
        raw.executemany("INSERT INTO source_domains VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(load_id or 0, reader, source, d, k, rec, basis, n)
                         for d, k, _, rec, basis, n in rows])

    on_commit(raw, write)
    report.domains = rows
    return rows


def _note(report, rows: list[tuple]) -> None:
    absent = [r for r in rows if not r[3]]
    contradicted = [r for r in rows if r[4] == "declared absent" and r[5]]
    if absent:
        measured = [r for r in absent if r[1] == "measurement"]
        n_measures = sum(1 for r in rows if r[1] == "measurement")
        others = [r[2] for r in absent if r[1] != "measurement"]
        parts = others[:]
        if measured:
            parts.append(f"{len(measured)} of {n_measures} measurement variables ("
                         + ", ".join(r[0].removeprefix(MEASUREMENT_DOMAIN_PREFIX)
                                     for r in measured) + ")")
        report.notes.append(
            "not recorded by this source (unknown in every score and table, never 'no'): "
            + "; ".join(parts) + ". If the source records one of them and none happened, "
            "declare it complete in a domains file (--domains; docs/sources.md).")
    for r in contradicted:
        report.notes.append(f"{r[0]}: declared absent, yet {r[5]} row(s) were loaded; it stays "
                            f"not recorded (the declaration wins).")


def recorded_in_database(raw) -> dict[str, bool] | None:
    """Domain -> recorded by any load of the database; None when no load recorded domains
    (then callers fall back to the data)."""
    if not _has_table(raw):
        return None
    rows = raw.execute("SELECT domain, bool_or(recorded) FROM source_domains GROUP BY 1"
                       ).fetchall()
    return {d: bool(r) for d, r in rows} if rows else None
