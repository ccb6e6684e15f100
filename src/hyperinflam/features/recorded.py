"""Domains a source does not record, as the features see them: unknown, never "no".

The loads record per source and domain whether the source provides it (table ``source_domains``,
:mod:`hyperinflam.sources.domains`). A feature computed from a domain no load recorded is NULL
(unknown): with organ support not recorded, "invasive ventilation" and the vasoactive count are
unknown rather than "no" / 0, so each score treats them as its authors treat a missing input
(Phoenix, pSOFA and IPSCC, clinical reference §5.4, §6.3, §8.4: counted as normal and listed
among the inputs not observed). Which domain a feature reads (:func:`feature_domain`):

* organ support of one kind: ``support:<kind>``; a vasoactive agent or the vasoactive class:
  ``vasoactive`` (as organ support or as drug administrations);
* drug administrations: ``drugs``.

Conditions and events are already unknown when absent (§12.21; an infection is TRUE or NULL), and
a measurement without values is NULL. The rule is one one-row table of flags cross-joined to the
wide table (:func:`domain_flags`), read from the database at run time, so a compiled plan holds
no data. A database without a domain record (written before it, a Parquet folder, Spark) reads
every domain as recorded, as before.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from hyperinflam.features.spec import FeatureSpec
from hyperinflam.vocabulary.domain import (DRUGS_DOMAIN, SUPPORT_GROUPS, VASOACTIVE_CLASS,
                                           VASOACTIVE_DOMAIN, support_domain)

__all__ = ["RECORD_TABLE", "domain_flags", "feature_domain", "flag_column", "not_recorded_labels",
           "recorded_domains_in"]

#: The table of the loads' domain record.
RECORD_TABLE = "source_domains"


def feature_domain(spec: FeatureSpec, vocab) -> str | None:
    """The domain a feature is computed from, when it can be absent (None otherwise)."""
    if spec.source == "organ_support":
        vasoactive = set(vocab.drugs_in_class(VASOACTIVE_CLASS)) | {VASOACTIVE_CLASS}
        if spec.variable in vasoactive:
            return VASOACTIVE_DOMAIN
        if spec.variable in SUPPORT_GROUPS:  # a group of kinds: recorded when any kind is
            return tuple(support_domain(k) for k in SUPPORT_GROUPS[spec.variable])
        return support_domain(spec.variable)
    if spec.source == "drug":
        return DRUGS_DOMAIN
    return None


def flag_column(domain: str | tuple[str, ...]) -> str:
    text = "|".join(domain) if isinstance(domain, tuple) else domain
    return "_rec__" + "".join(c if c.isalnum() else "_" for c in text)


def has_record(con) -> bool:
    try:
        return RECORD_TABLE in con.list_tables()
    except Exception:  # noqa: BLE001 - a backend that cannot list: no record
        return False


def domain_flags(con, domains) -> ir.Table | None:
    """One row, one BOOLEAN column per domain (:func:`flag_column`): recorded by any load, or
    TRUE for every domain when no load recorded domains; None without a record table."""
    domains = sorted(set(domains), key=str)
    if not domains or not has_record(con):
        return None
    rec = con.table(RECORD_TABLE)
    any_row = rec.count() > 0
    aggs = {}
    for d in domains:
        which = rec.domain.isin(list(d)) if isinstance(d, tuple) else rec.domain == d
        hit = rec.recorded.cast("int64").max(where=which).fill_null(0) > 0
        aggs[flag_column(d)] = ibis.ifelse(any_row, hit, True)
    return rec.aggregate(**aggs)


def recorded_domains_in(con) -> dict[str, bool] | None:
    """Domain -> recorded by any load (executed); None when the database has no domain record
    or no load recorded domains."""
    if not has_record(con):
        return None
    rec = con.table(RECORD_TABLE)
    rows = rec.group_by("domain").aggregate(
        recorded=rec.recorded.cast("int64").max()).to_pyarrow().to_pylist()
    return {r["domain"]: bool(r["recorded"]) for r in rows} if rows else None


def not_recorded_labels(con, vocab=None) -> list[str]:
    """The words of the domains no load recorded, measurement variables left out (the bedside
    census says "not recorded at this site" for them); empty without a domain record."""
    from hyperinflam.vocabulary import default
    from hyperinflam.vocabulary.domain import domain_catalogue

    record = recorded_domains_in(con)
    if not record:
        return []
    return [label for domain, kind, label in domain_catalogue(vocab or default())
            if kind != "measurement" and record.get(domain) is False]
