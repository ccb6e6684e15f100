"""``hyperinflam info``: what a database holds (sources/inventory.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hyperinflam.cli.common import console, db_option, fail, plural, say


def info_command(db: Optional[Path] = db_option()):
    """Show what a database holds: tables, loads, domains and quarantine.

    Its tables and row counts; the loads that wrote it (when, reader, source, site time zone,
    hyperinflam version, counts); the domains its data records; the quarantine counts.

    Without --db it shows the default database (and where that is). Example: hyperinflam info
    --db site.duckdb
    """
    from hyperinflam.engine import connect, resolve_db_path, storage
    from hyperinflam.errors import EngineError, SourceError
    from hyperinflam.sources.inventory import inventory

    path = resolve_db_path(db)
    try:
        con = connect(db, read_only=True)
    except (EngineError, SourceError, FileNotFoundError) as exc:
        fail(str(exc))
    try:
        manifest = storage.read_manifest(path) if path.is_dir() else None
        inv = inventory(con, path, manifest=manifest)
    except SourceError as exc:
        fail(str(exc))
    finally:
        con.disconnect()
    _render(inv)


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} bytes"  # pragma: no cover


def _render(inv) -> None:
    from rich.table import Table
    from rich.text import Text

    say(f"{inv.path.resolve()} ({inv.kind}, {_size(inv.size_bytes)})", style="bold")
    if inv.written_by:
        say(f"Written by hyperinflam {', '.join(inv.written_by)}.")
    elif not inv.has_load_log:
        say("No load log: loaded by a hyperinflam version that did not record its loads.")

    tables = Table(title="Tables", title_justify="left")
    tables.add_column("table")
    tables.add_column("rows", justify="right")
    for name, n in inv.tables:
        tables.add_row(Text(name), "absent" if n < 0 else f"{n:,}")
    console.print(tables)

    if inv.loads:
        say(f"\nLoads ({plural(len(inv.loads), 'load')}, oldest first; read = loaded + already "
            f"present + quarantined):", style="bold")
        for load in inv.loads:
            say(f"  #{load['load_id']} {load['loaded_at']:%Y-%m-%d %H:%M:%S} UTC  "
                f"{load['reader']}  {load['source']}")
            say(f"     --tz {load['time_zone']}, hyperinflam {load['version']}: read "
                f"{load['read']:,} = loaded {load['loaded']:,} + already present "
                f"{load['already_present']:,} + quarantined {load['quarantined']:,}")
        console.print()
    elif inv.has_load_log:
        say("No loads recorded yet.")

    if inv.domains_recorded:
        _domains_recorded(console, say, inv.domains_recorded)
    if inv.domains_present:
        present = Table(title="Domains in the data", title_justify="left",
                        caption=None if inv.domains_recorded else
                        "what was loaded; a domain missing here may simply not be recorded by "
                        "the source", caption_justify="left")
        for name, justify in (("domain", "left"), ("what", "left"), ("rows", "right")):
            present.add_column(name, justify=justify, overflow="fold")
        for domain, what, n in inv.domains_present:
            present.add_row(Text(domain), Text(str(what)), f"{n:,}")
        console.print(present)

    if inv.quarantine:
        total = sum(n for _, _, n, _, _ in inv.quarantine)
        quarantine = Table(title=f"Quarantine ({plural(total, 'row')})", title_justify="left")
        for name, justify in (("table", "left"), ("reason", "left"), ("rows", "right")):
            quarantine.add_column(name, justify=justify)
        for target, reason, n, _, _ in inv.quarantine:
            quarantine.add_row(Text(target), Text(reason), f"{n:,}")
        console.print(quarantine)
        say(f"The rows, their sources and fixes: hyperinflam quarantine --db {inv.path} --list")
    else:
        say("Quarantine: empty.")
    if inv.n_stays == 0:
        say(f"It holds no PICU stays yet: load a site's data, e.g. 'hyperinflam load csv FOLDER "
            f"--db {inv.path}'.")
    else:
        say(f"Next: hyperinflam screen --db {inv.path} --out screen.csv")


def _domains_recorded(console, say, rows: list[dict]) -> None:
    """The loads' domain record: one row per domain but the measurement variables, which are
    summed up in one line (those not recorded named)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Domains the sources record (any load)", title_justify="left",
                  caption="not recorded: unknown in every score and table, never 'no' or 0; a "
                          "site declares a domain complete or absent with --domains "
                          "(docs/sources.md)", caption_justify="left")
    for name, justify in (("domain", "left"), ("recorded", "left"), ("basis", "left"),
                          ("rows", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    measures = [r for r in rows if r["kind"] == "measurement"]
    for r in rows:
        if r["kind"] != "measurement":
            table.add_row(Text(r["domain"]), "yes" if r["recorded"] else "NOT RECORDED",
                          Text(str(r["basis"])), f"{int(r['rows'] or 0):,}")
    console.print(table)
    if measures:
        absent = [r["domain"].split(":", 1)[-1] for r in measures if not r["recorded"]]
        say(f"Measurement variables: {len(measures) - len(absent)} of {len(measures)} recorded"
            + (f"; not recorded: {', '.join(absent)}." if absent else "."))
