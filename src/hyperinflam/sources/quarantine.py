"""Quarantine reasons and the reconciliation report of a load.

Every input row is either loaded, counted as already present (loaded by an earlier run), or written
to the ``quarantine`` table with exactly one reason. When a row has several problems, the reason
reported is the first one in :data:`REASONS` (the priority order below), so that the counts per
reason add up to the quarantined total.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hyperinflam.sources import LoadReport, TableCounts

#: Quarantine reasons in priority order (first applicable wins) with what each means.
REASONS: dict[str, str] = {
    "malformed_line": "the line cannot be split into the header's columns (too many or too few fields, "
                      "unclosed quote)",
    "missing_required_value": "a required column is empty",
    "unparseable_date": "a date is not YYYY-MM-DD",
    "unparseable_time": "a time is not ISO 8601",
    "unparseable_value": "a number (value, dose, weight) is not a plain decimal number",
    "invalid_sex": "sex is not female / male / unknown (F / M accepted)",
    "invalid_boolean": "is_underlying is not true / false",
    "invalid_event_type": "event_type is not infection / death",
    "unknown_variable": "the variable is not in vocabulary/variables.csv",
    "missing_unit": "a value or dose without its unit",
    "unknown_unit": "the unit is not an accepted spelling for that variable (vocabulary/units.csv)",
    "unit_needs_configuration": "a known unit that is never converted without a site rule "
                                "(CRP nmol/L, D-dimer DDU, sCD25 pg/mL)",
    "unknown_drug": "the drug is not a name or alias in vocabulary/drugs.csv",
    "unknown_support": "support is not invasive_ventilation or a vasoactive drug",
    "unknown_dose_unit": "the dose unit is not in vocabulary/dose_units.csv (or does not fit the drug)",
    "ambiguous_value": "FiO2 received strictly between 1 and 21: fraction or percent?",
    "implausible_value": "outside the plausible range after conversion (clinical reference §11.2)",
    "end_before_start": "an end (or discharge) before its start (or admission)",
    "unknown_person": "no such person_id in the database",
    "unknown_stay": "no such stay_id in the database",
    "stay_person_mismatch": "the stay belongs to another person",
    "duplicate_row": "an identical row earlier in the same file",
    "conflicting_duplicate": "an earlier row of the same file has the same key but other values",
    "conflicts_with_existing": "the database already holds a row with the same key but other values",
    "duplicate_value": "a measurement of the same person, time and variable with the same value "
                       "after unit conversion is already loaded (e.g. FiO2 35 % and 0.35)",
    "not_done": "FHIR status says it did not happen (entered-in-error, not-done, cancelled, "
                "refuted, a DeviceUseStatement only intended)",
    "unknown_code": "the source code (LOINC, RxNorm, SNOMED; a DeviceUseStatement's Device type) "
                    "is not in a code file (vocabulary/codes_*.csv, --codes), or the Device it "
                    "names is not in the load",
    "data_absent": "a FHIR Observation with dataAbsentReason instead of a value",
    "no_quantity": "a FHIR Observation whose value is not a plain numeric Quantity (text, coded, censored <5)",
}

#: Order in which reasons are listed (and checked).
REASON_PRIORITY: dict[str, int] = {reason: i for i, reason in enumerate(REASONS)}


@dataclass
class TableLoadCounts(TableCounts):
    """:class:`TableCounts` plus one example location (``file:line``) per quarantine reason."""

    examples: dict[str, str] = field(default_factory=dict)


def render_load_report(report: LoadReport, console: Console) -> None:
    """Print the reconciliation of a load: per table read / loaded / already present /
    quarantined with a check mark when they add up, then the count per reason with an example."""
    summary = Table(title=f"Load of {escape(report.source)}", title_justify="left",
                    caption="read = loaded + already present (a reload) + quarantined",
                    caption_justify="left")
    columns = [("table", "left"), ("read", "right"), ("loaded", "right"),
               ("already\npresent", "right"), ("quaran-\ntined", "right"), ("adds\nup", "center")]
    for name, justify in columns:
        # Nothing is cut: in a very narrow terminal long names fold rather than lose columns.
        summary.add_column(name, justify=justify, no_wrap=name in ("read", "loaded"),
                           overflow="fold")
    totals = [0, 0, 0, 0]
    for t in report.tables:
        totals = [a + b for a, b in zip(totals, (t.read, t.loaded, t.already_present, t.quarantined))]
        # The source under the table name when it says more than the table name (an OMOP table,
        # a file not named after its table), on its own line so that it is never cut.
        label, source = escape(t.table), _source_name(t.source, report.source)
        if source not in (t.table, f"{t.table}.csv"):
            label += f"\n[dim]from {escape(source)}[/]"
        summary.add_row(label, f"{t.read:,}",
                        f"{t.loaded:,}", f"{t.already_present:,}", f"{t.quarantined:,}",
                        "[green]\u2713[/]" if t.reconciles else "[bold red]\u2717[/]")
    summary.add_row("[bold]total[/]", *(f"[bold]{n:,}[/]" for n in totals),
                    "[green]\u2713[/]" if report.reconciles else "[bold red]\u2717[/]",
                    end_section=True)
    console.print(summary)

    reasons = Table(title="Quarantined rows by reason (table quarantine)", title_justify="left")
    for name, justify in (("table", "left"), ("reason", "left"), ("rows", "right"),
                          ("example", "left")):
        reasons.add_column(name, justify=justify)
    total = 0
    for t in report.tables:
        examples = getattr(t, "examples", {})
        for reason, n in sorted(t.reasons.items(),
                                key=lambda kv: (REASON_PRIORITY.get(kv[0], len(REASONS)), kv[0])):
            total += n
            reasons.add_row(escape(t.table), escape(reason), f"{n:,}",
                            escape(examples.get(reason, "")))
    reasons.add_row("[bold]total[/]", "", f"[bold]{total:,}[/]", "")
    if total:
        console.print(reasons)
        console.print("See them, where each came from and its fix: 'hyperinflam quarantine "
                      "--list' (with this load's --db).", highlight=False)
    else:
        console.print("[green]No rows quarantined.[/]")
    for note in report.notes:
        console.print(f"note: {escape(note)}", highlight=False)


def _file_name(source: str) -> str:
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def _source_name(source: str, report_source: str) -> str:
    """What the report shows as a table's source: the source table of a database or folder
    source (``LABEL#table`` where LABEL is the report's source, its title already), else the
    file name."""
    prefix = f"{report_source}#"
    return source[len(prefix):] if source.startswith(prefix) else _file_name(source)
