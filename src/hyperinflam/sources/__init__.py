"""Readers that turn a site's data into the canonical tables (``hyperinflam.schema``).

Every reader returns a :class:`LoadReport`: for each canonical table the rows read, loaded and
quarantined (read = loaded + quarantined + already present), and the quarantine counts per reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TableCounts:
    table: str
    source: str
    read: int = 0
    loaded: int = 0
    already_present: int = 0  # identical rows loaded by an earlier run: not duplicated
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return self.read == self.loaded + self.already_present + self.quarantined


@dataclass
class LoadReport:
    source: str
    tables: list[TableCounts] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The load's domain record (sources/domains.py): (domain, kind, label, recorded, basis, rows).
    domains: list[tuple] = field(default_factory=list)

    @property
    def absent_domains(self) -> list[str]:
        """The domains this source does not record (not recorded: unknown, never 'no')."""
        return [d[0] for d in self.domains if not d[3]]

    @property
    def reconciles(self) -> bool:
        return all(t.reconciles for t in self.tables)

    def counts(self, table: str) -> TableCounts:
        for t in self.tables:
            if t.table == table:
                return t
        raise KeyError(table)
