"""The bedside web application (FastAPI, server-rendered Jinja templates, inline SVG): the
application factory. Sign-in is :mod:`.auth`, the pages :mod:`.pages`, the JSON API :mod:`.api`,
what they show per role :mod:`.views`.

Pages: /login, /census, /patient/{key}; exports: /census.csv; JSON API under /api (OpenAPI at
/api/openapi.json). No CDN: the only script and stylesheet are packaged under web/static. See
docs/web.md for roles, sign-in limits, audit and the token scheme for scripts.

Security summary: argon2id password hashes (web.state); signed session cookie (Starlette
SessionMiddleware: HttpOnly, SameSite=strict, Secure with --https); a per-session CSRF token
checked on every POST; sign-in limited per user and per address; every patient view and export is
audited; the access log records route templates, never paths (no identifier in the log).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from hyperinflam.criteria import label as criterion_label
from hyperinflam.screening.census import usable_criteria
from hyperinflam.vocabulary import load as load_vocabulary
from hyperinflam.web import api, auth, pages
from hyperinflam.web.auth import SESSION_MAX_AGE_SECONDS, Redirect, session_user
from hyperinflam.web.data import Database
from hyperinflam.web.privacy import Pseudonymizer
from hyperinflam.web.state import StateStore, default_state_path
from hyperinflam.web.views import (ApiError, WebContext, census_view, context, patient_views,
                                   unit_label)

access_log = logging.getLogger("hyperinflam.web.access")
log = logging.getLogger("hyperinflam.web")


@dataclass
class WebSettings:
    db: Path
    state: Path | None = None
    https: bool = False
    criteria: list[str] | None = None
    pinned_now: dt.datetime | None = None
    census_refresh_seconds: float = 60.0
    warm: bool = True


async def log_and_harden(request: Request, call_next):
    """Access log of route templates (never paths: no identifier in the log) and the security
    headers of every response."""
    started = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception:  # noqa: BLE001 - logged with its traceback; the client sees a plain 500
        log.exception("unhandled error on %s %s", request.method,
                      getattr(request.scope.get("route"), "path", "(unmatched)"))
        response = PlainTextResponse("Internal server error: the server log says why.",
                                     status_code=500)
    route = request.scope.get("route")
    template = getattr(route, "path", None) or "(unmatched)"
    access_log.info("%s %s %d %.0fms", request.method, template, response.status_code,
                    (time.perf_counter() - started) * 1000)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if not request.url.path.startswith("/static"):
        response.headers["Cache-Control"] = "no-store"
    return response


async def api_error(request: Request, exc: ApiError):
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    return context(request).templates.TemplateResponse(request, "error.html", {
        "status": exc.status, "message": exc.message, "user": session_user(request)},
        status_code=exc.status)


async def redirect(request: Request, exc: Redirect):
    return RedirectResponse(exc.to, status_code=303)


def create_app(settings: WebSettings) -> FastAPI:
    """The application for one canonical database and one state database."""
    db_path = Path(settings.db)
    if not db_path.exists():
        raise FileNotFoundError(f"No hyperinflam database at {db_path}: load data first "
                                f"('hyperinflam load csv FOLDER --db {db_path}' or "
                                f"'hyperinflam demo --db {db_path}').")
    store = StateStore(settings.state or default_state_path(db_path))
    criteria, skipped = usable_criteria(settings.criteria)
    database = Database(db_path, criteria, settings.census_refresh_seconds, settings.pinned_now,
                        skipped)
    pseudo = Pseudonymizer(store.secret("pseudonym"))
    vocab = load_vocabulary()
    templates = Jinja2Templates(directory=str(resources.files("hyperinflam.web") / "templates"))
    templates.env.filters["unit_label"] = unit_label
    templates.env.filters["criterion_label"] = criterion_label
    ctx = WebContext(
        store=store, database=database, pseudo=pseudo, templates=templates,
        rows_template=templates.env.get_template("census_rows.html"),
        labels={name: v.label for name, v in vocab.variables.items()},
        short_labels={name: v.short_label for name, v in vocab.variables.items()},
        units={name: v.canonical_unit for name, v in vocab.variables.items()})

    app = FastAPI(title="hyperinflam bedside API", version="1",
                  description="Census, patient timeline, criteria and anakinra course. Sign in "
                              "with the session cookie (browser) or 'Authorization: Bearer "
                              "<token>' (scripts; 'hyperinflam users token NAME').",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.web = ctx
    app.state.store, app.state.database, app.state.pseudo = store, database, pseudo
    app.mount("/static", StaticFiles(packages=[("hyperinflam.web", "static")]), name="static")
    app.middleware("http")(log_and_harden)
    app.add_middleware(SessionMiddleware, secret_key=store.secret("session"),
                       session_cookie="hyperinflam_session", max_age=SESSION_MAX_AGE_SECONDS,
                       same_site="strict", https_only=settings.https)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(Redirect, redirect)
    app.include_router(pages.router)
    app.include_router(auth.router)
    app.include_router(api.router)

    # benchmarks call the views directly
    app.state.census_view = lambda user, at, filter_: census_view(ctx, user, at, filter_)
    app.state.patient_views = lambda user, key, at: patient_views(ctx, user, key, at)
    app.router.on_shutdown.append(database.close)
    if settings.warm:
        database.warm()
    return app
