"""Infections from the diagnoses a site records (issue 12 item 5, first part).

Most health records do not write an "infection" event: they code a diagnosis (ICD-10-CM or,
before October 2015 in the US, ICD-9-CM in claims and problem lists, SNOMED CT in FHIR and
OMOP). Every reader therefore calls :func:`derive_infections` at the end of its load: each new
``condition`` row whose code is an infection or sepsis code (the ``event,infection`` rows of
``vocabulary/codes.csv``: ICD-10-CM and ICD-9-CM by code prefix within their own system, dots
ignored, e.g. ``A41`` matches ``A41.9`` and ``038`` matches ICD-9-CM ``038.9``; SNOMED CT by
exact code) and that has an onset time becomes an ``event`` row of type ``infection`` at that
time, with the diagnosis in ``detail``. A reader may give a second code per condition row
(:data:`SOURCE_CODES`: OMOP's condition_source_concept_id / condition_source_value behind the
standard concept, clinical reference §12.41); the row then matches by either code. It is then the suspected infection of Phoenix and IPSCC
(clinical reference §5.1, §8.3) and an "infection after the index" of the study, like a
recorded infection event.

Not derived: an underlying condition (``is_underlying``: chronic HIV, chronic hepatitis are
conditions, not an infection episode), and a diagnosis without an onset time (the load counts
them). The derived rows are their own line of the reconciliation (``event`` from
``<source>#diagnoses with infection codes``): read = loaded + already present (a reload).
"""

from __future__ import annotations

import pandas as pd

from hyperinflam.sources.atomic import PENDING_PREFIX, append_rows, in_load_transaction
from hyperinflam.sources.quarantine import TableLoadCounts

__all__ = ["EXACT_SYSTEMS", "FAMILY", "PREFIX_SYSTEMS", "SOURCE_CODES", "append_new_infections",
           "derive_infections", "infection_codes"]

#: Folded code systems (letters and digits, upper case) matched by code prefix / exact code.
PREFIX_SYSTEMS = ("ICD10CM", "ICD10", "ICD9CM", "ICD9")
EXACT_SYSTEMS = ("SNOMED", "SNOMEDCT", "SCT")
#: The family of each folded system: a code matches only the rows of its own family (an
#: ICD-9-CM prefix never matches an ICD-10-CM code, nor the reverse).
FAMILY = {"ICD10CM": "ICD10", "ICD10": "ICD10", "ICD9CM": "ICD9", "ICD9": "ICD9",
          "SNOMED": "SNOMED", "SNOMEDCT": "SNOMED", "SCT": "SNOMED"}
SOURCE_SUFFIX = "#diagnoses with infection codes"
#: The temporary table of the condition rows' source codes a reader may give (OMOP).
SOURCE_CODES = "_hi_condition_source_codes"


def _fold(system: str) -> str:
    """A code system folded as the SQL below folds condition.code_system ('ICD-9-CM' ->
    'ICD9CM')."""
    return "".join(ch for ch in (system or "") if ch.isascii() and ch.isalnum()).upper()


def infection_codes(vocab) -> pd.DataFrame:
    """The infection codes: (match, family, key, display); match 'prefix' or 'exact', family
    the code system's (:data:`FAMILY`), key folded."""
    rows = []
    for code in vocab.codes_of("event"):
        if code.target != "infection" or not code.code:
            continue
        system = _fold(code.system)
        match = "prefix" if system in PREFIX_SYSTEMS else \
            "exact" if system in EXACT_SYSTEMS else None
        if match:
            rows.append((match, FAMILY[system], code.code.strip().upper().replace(".", ""),
                         code.display or code.code))
    return pd.DataFrame(rows, columns=["match", "family", "key", "display"]).drop_duplicates()


def _has(raw, name: str) -> bool:
    return bool(raw.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'temp' "
                            "AND table_name = ?", [name]).fetchone()[0])



def append_new_infections(raw, derived: str) -> int:
    """Append the timed rows of the temp table ``derived`` (person_id, stay_id, time, detail) to
    ``event`` as type 'infection', except where the person already has an infection event at
    that time (a recorded one, another rule's, an earlier load's); returns how many were
    already present. Shared by the infections derived from diagnoses (here) and from a test
    with antimicrobials (:mod:`hyperinflam.sources.suspected_infection`)."""
    present = raw.execute(f"""SELECT count(*) FROM {derived} i SEMI JOIN event e
        ON e.person_id = i.person_id AND e.event_type = 'infection' AND e.time = i.time
        WHERE i.time IS NOT NULL""").fetchone()[0]
    append_rows(raw, "event", ["person_id", "stay_id", "event_type", "time", "detail"], f"""
        SELECT i.person_id, i.stay_id, 'infection', i.time, i.detail FROM {derived} i
        WHERE i.time IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM event e WHERE e.person_id = i.person_id
              AND e.event_type = 'infection' AND e.time = i.time)
        ORDER BY i.person_id, i.time""")
    return present

def derive_infections(raw, report, vocab, source_codes: str | None = None
                      ) -> TableLoadCounts | None:
    """Infection events from this load's new diagnoses (see the module docstring); adds their
    reconciliation line and a note to ``report``. Call it inside the reader's load
    transaction, before :func:`hyperinflam.sources.domains.record_domains`.

    ``source_codes``: a temporary table (:data:`SOURCE_CODES`) of a second code per condition
    row, the code the site recorded when the row's own code is the standard concept it was
    mapped to (OMOP condition_source_concept_id / condition_source_value): columns person_id,
    condition, onset_time (the condition table's key, in UTC) and code_system, code,
    standard_system, standard_code. A condition row this load wrote matches by its own code
    or by its source code; only rows this load wrote count (the join is on their key), and
    the table is dropped."""
    pending = PENDING_PREFIX + "condition"
    try:
        if not in_load_transaction(raw) or not _has(raw, pending) \
                or not _has(raw, PENDING_PREFIX + "event"):
            return None
        return _derive(raw, report, vocab, pending,
                       source_codes if source_codes and _has(raw, source_codes) else None)
    finally:
        if source_codes:
            raw.execute(f"DROP TABLE IF EXISTS {source_codes}")


def _derive(raw, report, vocab, pending: str, source_codes: str | None
            ) -> TableLoadCounts | None:
    raw.register("_hi_infection_codes", infection_codes(vocab))
    families = "CASE c.sys " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in FAMILY.items()) \
        + " END"
    fold = lambda col: f"upper(regexp_replace(coalesce({col}, ''), '[^A-Za-z0-9]', '', 'g'))"  # noqa: E731
    label = ("'diagnosis ' || coalesce(x.code_system, '') || ' ' || x.code || ': ' || "
             "x.condition")
    by_source = "" if source_codes is None else f"""
                UNION ALL
                SELECT x.person_id, x.stay_id, x.condition, s.code_system, s.code, x.onset_time,
                       {fold('s.code_system')} AS sys, upper(replace(trim(s.code), '.', '')) AS key,
                       'diagnosis ' || s.code_system || ' ' || s.code || ' (source code of ' ||
                       coalesce(x.code_system || ' ' || x.code, 'the condition') || '): ' ||
                       x.condition AS label,
                       (x.condition, x.stay_id, x.code_system, x.code) AS row_key
                FROM temp.main.{pending} x JOIN {source_codes} s
                  ON s.person_id = x.person_id AND s.condition = x.condition
                 AND s.onset_time IS NOT DISTINCT FROM x.onset_time
                WHERE NOT x.is_underlying AND s.code IS NOT NULL"""
    try:
        raw.execute(f"""CREATE OR REPLACE TEMP TABLE _hi_infections AS
            WITH c AS (
                SELECT x.person_id, x.stay_id, x.condition, x.code_system, x.code, x.onset_time,
                       {fold('x.code_system')} AS sys,
                       upper(replace(trim(x.code), '.', '')) AS key, {label} AS label,
                       (x.condition, x.stay_id, x.code_system, x.code) AS row_key
                FROM temp.main.{pending} x
                WHERE x.code IS NOT NULL AND NOT x.is_underlying{by_source}),
            m AS (
                SELECT c.* FROM c SEMI JOIN _hi_infection_codes k
                  ON k.family = ({families})
                 AND ((k.match = 'prefix' AND c.sys IN {PREFIX_SYSTEMS}
                       AND starts_with(c.key, k.key))
                      OR (k.match = 'exact' AND c.sys IN {EXACT_SYSTEMS} AND c.key = k.key)))
            SELECT person_id, onset_time AS time, min(stay_id) AS stay_id,
                   string_agg(DISTINCT label, '; ' ORDER BY label) AS detail,
                   count(DISTINCT row_key) AS n  -- diagnosis rows, each once
            FROM m GROUP BY person_id, onset_time""")
    finally:
        raw.unregister("_hi_infection_codes")
    try:
        n_timed, n_untimed = raw.execute(
            "SELECT count(*) FILTER (WHERE time IS NOT NULL), "
            "coalesce(sum(n) FILTER (WHERE time IS NULL), 0) FROM _hi_infections").fetchone()
        if not n_timed and not n_untimed:
            return None
        present = append_new_infections(raw, "_hi_infections")
    finally:
        raw.execute("DROP TABLE IF EXISTS _hi_infections")
    counts = TableLoadCounts(table="event", source=report.source + SOURCE_SUFFIX,
                             read=n_timed, loaded=n_timed - present, already_present=present)
    report.tables.append(counts)
    note = (f"infections from diagnoses: {n_timed:,} infection event(s) from diagnoses with an "
            f"infection or sepsis code (vocabulary/codes.csv, kind event; ICD-10-CM and "
            f"ICD-9-CM by prefix, SNOMED CT exact; docs/sources.md)")
    if n_untimed:
        note += f"; {n_untimed:,} such diagnosis(es) without an onset time gave none"
    report.notes.append(note + ".")
    return counts
