"""Suspected infection from what a site records: a test for infection ordered and antimicrobials
given (issue 12 item 5, second part).

The Phoenix authors' operational rule (clinical reference §5.1, "Suspected infection
(operational)" [P — EHR notes]): a test for infection **ordered** (its result is irrelevant)
**and** at least **two doses** of a systemic antimicrobial (antibacterial, antiviral or
antifungal) by a systemic route (IV, IM, oral/enteral, SC, ...; not ophthalmic, otic, nasal,
topical). Every reader calls :func:`derive_suspected_infections` at the end of its load, next to
:func:`hyperinflam.sources.infections.derive_infections`, inside the load transaction:

* a test for infection is an ``event`` row of type ``infection_test`` (time = order or
  collection time, detail = the test): an events.csv row, a FHIR Observation whose code is a
  culture code of ``vocabulary/codes.csv`` (kind ``event``, target ``infection_test``), an OMOP
  culture as the OMOP reader maps it (FHIR DiagnosticReport / ServiceRequest / Specimen and
  MEDS cultures are not read yet);
* an antimicrobial dose is a ``drug_administration`` row whose drug is of class
  ``antimicrobial`` (``vocabulary/drugs.csv``) and whose route is systemic: any route but those
  :data:`NON_SYSTEMIC_ROUTE` matches (ophthalmic, otic, nasal, topical / cutaneous, and inhaled
  or nebulised: an inhaled antibiotic is not systemic); a dose with no route counts as systemic
  (:data:`MISSING_ROUTE_IS_SYSTEMIC`; clinical reference §12.42, VERIFY).

A test at time t and at least two such doses at distinct start times in
[t - :data:`ANTIMICROBIAL_BEFORE_TEST_HOURS`, t + :data:`ANTIMICROBIAL_AFTER_TEST_HOURS`] (the
Sepsis-3 convention: §12.42) give one ``infection`` event at min(t, first such dose), detail
"suspected infection: <test> + <n> antimicrobial doses (<drugs>)". Tests and doses are those of
this load and those already in the database for the persons of this load (a culture loaded
earlier and the antimicrobials now still give it); a pairing needs a test or a dose of this
load. An infection event already at that time (a diagnosis-derived one, a recorded one, an
earlier load's) is not written again. The derived rows are their own reconciliation line
(``event`` from ``<source>#tests for infection with antimicrobials``): read = loaded + already
present.
"""

from __future__ import annotations

from hyperinflam.sources.atomic import PENDING_PREFIX, in_load_transaction
from hyperinflam.sources.infections import append_new_infections
from hyperinflam.sources.quarantine import TableLoadCounts

__all__ = ["ANTIMICROBIAL_AFTER_TEST_HOURS", "ANTIMICROBIAL_BEFORE_TEST_HOURS",
           "ANTIMICROBIAL_CLASS", "INFECTION_TEST", "MIN_ANTIMICROBIAL_DOSES",
           "MISSING_ROUTE_IS_SYSTEMIC", "NON_SYSTEMIC_ROUTE", "derive_suspected_infections"]

#: The event type of a test for infection ordered (schema ``event.event_type``).
INFECTION_TEST = "infection_test"
#: The drug class of systemic antibacterials, antivirals and antifungals (vocabulary/drugs.csv).
ANTIMICROBIAL_CLASS = "antimicrobial"
#: At least this many doses (distinct start times): clinical reference §5.1.
MIN_ANTIMICROBIAL_DOSES = 2
#: The window of the doses around the test (hours): Sepsis-3 (Seymour et al., JAMA 2016;
#: 315(8):762-774): an antimicrobial within 72 h after the culture, or the culture within 24 h
#: after the antimicrobial. Clinical reference §12.42 (VERIFY against the Phoenix supplement).
ANTIMICROBIAL_BEFORE_TEST_HOURS = 24
ANTIMICROBIAL_AFTER_TEST_HOURS = 72
#: Routes that are not systemic (a regular expression on the lower-cased route): §5.1 excludes
#: ophthalmic, otic, nasal and topical; hyperinflam also excludes inhaled / nebulised (§12.42).
NON_SYSTEMIC_ROUTE = (r"ophth|ocular|\beye|intravitreal|otic|auricular|\bear\b|nasal|\bnose"
                      r"|topical|cutaneous|dermal|\bskin|inhal|nebul")
#: A dose with no route counts as systemic (§12.42, VERIFY): antimicrobials in a PICU
#: administration record are nearly all systemic, and a site that never records the route would
#: otherwise never give a suspected infection.
MISSING_ROUTE_IS_SYSTEMIC = True
SOURCE_SUFFIX = "#tests for infection with antimicrobials"


def _has(raw, name: str) -> bool:
    return bool(raw.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'temp' "
                            "AND table_name = ?", [name]).fetchone()[0])


def derive_suspected_infections(raw, report) -> TableLoadCounts | None:
    """Infection events from tests for infection with two systemic antimicrobial doses (see the
    module docstring); adds their reconciliation line and a note to ``report``. Call it inside
    the reader's load transaction, after ``derive_infections`` and before ``record_domains``."""
    new_event, new_drug = PENDING_PREFIX + "event", PENDING_PREFIX + "drug_administration"
    if not in_load_transaction(raw) or not _has(raw, new_event) or not _has(raw, new_drug):
        return None
    route_ok = (f"(d.route IS NULL AND {str(MISSING_ROUTE_IS_SYSTEMIC).upper()}) OR "
                f"(d.route IS NOT NULL AND NOT regexp_matches(lower(d.route), "
                f"'{NON_SYSTEMIC_ROUTE}'))")
    try:
        raw.execute(f"""CREATE OR REPLACE TEMP TABLE _hi_suspected AS
            WITH persons AS (
                SELECT person_id FROM temp.main.{new_event} WHERE event_type = '{INFECTION_TEST}'
                UNION SELECT person_id FROM temp.main.{new_drug}
                WHERE drug_class = '{ANTIMICROBIAL_CLASS}'),
            tests AS (
                SELECT e.person_id, e.stay_id, e.time, coalesce(e.detail, 'test for infection')
                       AS test,
                       EXISTS (SELECT 1 FROM temp.main.{new_event} n WHERE n.person_id =
                               e.person_id AND n.event_type = e.event_type AND n.time = e.time)
                       AS new
                FROM event e SEMI JOIN persons p ON p.person_id = e.person_id
                WHERE e.event_type = '{INFECTION_TEST}' AND e.time IS NOT NULL),
            doses AS (
                SELECT d.person_id, d.drug, d.start_time,
                       EXISTS (SELECT 1 FROM temp.main.{new_drug} n WHERE n.person_id =
                               d.person_id AND n.drug = d.drug AND n.start_time = d.start_time)
                       AS new
                FROM drug_administration d SEMI JOIN persons p ON p.person_id = d.person_id
                WHERE d.drug_class = '{ANTIMICROBIAL_CLASS}' AND d.start_time IS NOT NULL
                  AND ({route_ok})),
            pairs AS (
                SELECT t.person_id, t.stay_id, t.time, t.test, t.new AS test_new,
                       count(DISTINCT d.start_time) AS n, min(d.start_time) AS first_dose,
                       string_agg(DISTINCT d.drug, ', ' ORDER BY d.drug) AS drugs,
                       bool_or(d.new) AS dose_new
                FROM tests t JOIN doses d ON d.person_id = t.person_id
                 AND d.start_time BETWEEN t.time - INTERVAL {ANTIMICROBIAL_BEFORE_TEST_HOURS} HOUR
                                      AND t.time + INTERVAL {ANTIMICROBIAL_AFTER_TEST_HOURS} HOUR
                GROUP BY ALL)
            SELECT person_id, least(time, first_dose) AS time, min(stay_id) AS stay_id,
                   string_agg('suspected infection: ' || test || ' + ' || n ||
                              ' antimicrobial doses (' || drugs || ')', '; '
                              ORDER BY time, test) AS detail
            FROM pairs WHERE n >= {MIN_ANTIMICROBIAL_DOSES} AND (test_new OR dose_new)
            GROUP BY person_id, least(time, first_dose)""")
        n = raw.execute("SELECT count(*) FROM _hi_suspected").fetchone()[0]
        if not n:
            return None
        present = append_new_infections(raw, "_hi_suspected")
    finally:
        raw.execute("DROP TABLE IF EXISTS _hi_suspected")
    counts = TableLoadCounts(table="event", source=report.source + SOURCE_SUFFIX,
                             read=n, loaded=n - present, already_present=present)
    report.tables.append(counts)
    report.notes.append(
        f"suspected infections: {n:,} infection event(s) from a test for infection ordered with "
        f">= {MIN_ANTIMICROBIAL_DOSES} systemic antimicrobial doses from "
        f"{ANTIMICROBIAL_BEFORE_TEST_HOURS} h before to {ANTIMICROBIAL_AFTER_TEST_HOURS} h after "
        f"it (clinical reference §5.1, §12.42; docs/sources.md)"
        + (f"; {present:,} already present" if present else "") + ".")
    return counts
