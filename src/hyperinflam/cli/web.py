"""``hyperinflam serve`` (the bedside web application), ``hyperinflam users`` (its accounts) and
``hyperinflam audit`` (its audit trail); web/, docs/web.md."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import (SITE_TZ_OPTION, check_db_or_fail, console, db_option, fail,
                                    parse_at, say, warn)

users_app = typer.Typer(help="Accounts of the web application (stored in the state database).",
                        no_args_is_help=True)

STATE_HELP = ("State database of the web application (users, audit). Default: "
              "DB.web.sqlite next to --db.")
STATE_OPTION = typer.Option(None, "--state", metavar="FILE", help=STATE_HELP)


#: The one line a missing web extra prints (the web modules need fastapi, uvicorn, argon2-cffi).
WEB_EXTRA_MISSING = ("the web application needs the [web] extra: pip install "
                     "'hyperinflam[web]' (missing: {module})")


def _require_web_extra() -> None:
    """Fail with one line naming the pip command when a package of the [web] extra is missing."""
    import importlib.util

    for module in ("fastapi", "uvicorn", "argon2", "multipart", "itsdangerous"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # a module set to None in sys.modules (how tests remove one)
            found = False
        if not found:
            fail(WEB_EXTRA_MISSING.format(module=module))  # fail() keeps the brackets


def _state_store(db: Optional[Path], state: Optional[Path]):
    _require_web_extra()
    path = check_db_or_fail(db)
    from hyperinflam.web.state import StateStore, default_state_path

    if state is not None and state.is_dir():
        fail(f"--state {state} is a folder: give a file name for the state database, e.g. "
             f"--state {state / 'web.sqlite'}.")
    return StateStore(state or default_state_path(path))


def serve(
    db: Optional[Path] = db_option(),
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS",
                             help="Address to listen on."),
    port: int = typer.Option(8000, "--port", metavar="PORT", help="Port to listen on."),
    state: Optional[Path] = STATE_OPTION,
    https: bool = typer.Option(False, "--https", help="Mark the session cookie Secure (set when "
                               "a TLS proxy serves the app over https)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", metavar="TIME", help="Pin 'now' to "
                                        "this time (ISO 8601, read in --tz; an offset is "
                                        "honoured), e.g. to show the demo data as a live "
                                        "census."),
    tz: str = SITE_TZ_OPTION,
    refresh: float = typer.Option(60.0, "--refresh", min=1, metavar="SECONDS",
                                  help="Seconds between live census recomputations."),
    forwarded_allow_ips: Optional[str] = typer.Option(
        None, "--forwarded-allow-ips", metavar="ADDRESSES", help="Addresses of the reverse proxy "
        "(comma-separated, or '*') whose X-Forwarded-For / X-Forwarded-Proto headers are "
        "trusted. Default: none, the client address is the connection's (audit rows, sign-in "
        "limits)."),
):
    """Serve the bedside web application: census, patient timeline, anakinra course.

    Create an account first: 'hyperinflam users add NAME --role clinician'. Then open
    http://HOST:PORT/ and sign in. The access log records route templates only, never a patient
    identifier; every patient view is written to the audit table ('hyperinflam audit').
    """
    import logging

    _require_web_extra()
    import uvicorn

    from hyperinflam.engine import open_engine, resolve_db_path
    from hyperinflam.errors import EngineError
    from hyperinflam.web import WebSettings, create_app

    pinned = parse_at(as_of, tz, "--as-of") if as_of else None
    path = check_db_or_fail(db)
    try:  # the database must open before the server starts (not in a worker thread)
        open_engine(path).disconnect()
    except (EngineError, FileNotFoundError) as exc:
        fail(str(exc))
    try:
        application = create_app(WebSettings(db=resolve_db_path(db), state=state, https=https,
                                             pinned_now=pinned, census_refresh_seconds=refresh))
    except FileNotFoundError as exc:
        fail(str(exc))
    if not application.state.store.list_users():
        warn("no account yet: create one with 'hyperinflam users add NAME --role clinician'.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    say(f"Serving on http://{host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(application, **uvicorn_options(host, port, forwarded_allow_ips))


def uvicorn_options(host: str, port: int, forwarded_allow_ips: Optional[str]) -> dict:
    """uvicorn's settings for ``serve``: forwarded headers are read only from the proxies named
    (uvicorn's own default trusts 127.0.0.1, which lets any local process forge an address)."""
    return {"host": host, "port": port, "access_log": False, "log_level": "warning",
            "proxy_headers": bool(forwarded_allow_ips),
            "forwarded_allow_ips": forwarded_allow_ips or ""}


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User name (no spaces).", metavar="NAME"),
    role: str = typer.Option(..., "--role", metavar="ROLE", help="clinician (identified "
                             "patients) or researcher (pseudonymous ids, shifted dates)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from "
                                        "standard input instead of prompting."),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing user's password "
                                 "and role."),
    db: Optional[Path] = db_option(),
    state: Optional[Path] = STATE_OPTION,
):
    """Create a local account (password hashed with argon2id)."""
    import sys

    from hyperinflam.errors import StateError

    store = _state_store(db, state)  # a missing extra or a wrong --db before the prompt
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = store.add_user(name, role, password, replace=replace)
    except StateError as exc:
        fail(str(exc))
    say(f"User {user.name} ({user.role}) saved.")


@users_app.command("list")
def users_list(db: Optional[Path] = db_option(), state: Optional[Path] = STATE_OPTION):
    """List the accounts."""
    from rich.table import Table
    from rich.text import Text

    users = _state_store(db, state).list_users()
    table = Table("name", "role", "created (UTC)", "disabled")
    for u in users:
        table.add_row(*(Text(str(v)) for v in (u["name"], u["role"], u["created_at"],
                                               "yes" if u["disabled"] else "")))
    console.print(table)
    if not users:
        say("No account yet: create one with 'hyperinflam users add NAME --role clinician'.")


@users_app.command("remove")
def users_remove(name: str = typer.Argument(..., metavar="NAME", help="User name."),
                 db: Optional[Path] = db_option(), state: Optional[Path] = STATE_OPTION):
    """Remove an account and its API tokens."""
    from hyperinflam.errors import StateError

    try:
        _state_store(db, state).remove_user(name)
    except StateError as exc:
        fail(str(exc))
    say(f"User {name} removed.")


@users_app.command("token")
def users_token(name: str = typer.Argument(..., metavar="NAME", help="User name."),
                label: str = typer.Option("", "--label", metavar="TEXT",
                                          help="What the token is for (shown in the list)."),
                db: Optional[Path] = db_option(), state: Optional[Path] = STATE_OPTION):
    """Create an API token for scripts ('Authorization: Bearer TOKEN'); shown once."""
    from hyperinflam.errors import StateError

    try:
        token = _state_store(db, state).create_token(name, label)
    except StateError as exc:
        fail(str(exc))
    say(token)


def audit_command(
    limit: int = typer.Option(50, "--limit", min=1, metavar="N", help="Rows to show, newest "
                              "first."),
    user: Optional[str] = typer.Option(None, "--user", metavar="NAME", help="Only this user."),
    action: Optional[str] = typer.Option(None, "--action", metavar="ACTION", help="Only this "
                                         "action, e.g. view_patient."),
    db: Optional[Path] = db_option(),
    state: Optional[Path] = STATE_OPTION,
):
    """List the audit trail of the web application: who viewed which patient, when, from where."""
    from rich.table import Table
    from rich.text import Text

    from hyperinflam.cli.common import plural

    rows = _state_store(db, state).audit_rows(limit=limit, user=user, action=action)
    table = Table("time (UTC)", "user", "role", "action", "stay", "person", "address", "detail",
                  title=f"audit ({plural(len(rows), 'row')}, newest first)")
    for r in rows:
        table.add_row(*(Text(str(r[k] or "")) for k in ("time", "user", "role", "action",
                                                        "stay_id", "person_id", "address",
                                                        "detail")))
    console.print(table)
