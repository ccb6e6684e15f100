"""Sign-in for the bedside application: the signed session cookie's user, API tokens, the
per-session CSRF token checked on every POST, sign-in limits per user name and per client address
(argon2id password hashes are checked by :mod:`hyperinflam.web.state`), and the audit trail of who
did what. The sign-in and sign-out pages are this module's routes.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from hyperinflam.web.state import User
from hyperinflam.web.views import ApiError, client_address, context

#: Sign-in limits (documented in docs/web.md): failures counted over the window, per user name
#: and per client address; above either limit sign-in is refused until the window has passed.
SIGN_IN_WINDOW_SECONDS = 15 * 60
SIGN_IN_MAX_FAILURES_PER_USER = 5
SIGN_IN_MAX_FAILURES_PER_ADDRESS = 20
SESSION_MAX_AGE_SECONDS = 12 * 3600

router = APIRouter()


def session_user(request: Request) -> User | None:
    """The user of the request's session: the cookie's session id must name a live session in
    the state database (sign-out, a password or role change and removal end it there)."""
    sid = request.session.get("sid")
    if not sid:
        return None
    user = context(request).store.session_user(sid)
    if user is None:
        request.session.clear()
    return user


def api_user(request: Request) -> User:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = context(request).store.user_for_token(auth[7:].strip())
        if user is None:
            raise ApiError(401, "invalid token: create one with 'hyperinflam users token NAME'")
        return user
    user = session_user(request)
    if user is None:
        raise ApiError(401, "sign in first (session cookie) or send 'Authorization: Bearer "
                            "<token>'")
    return user


def page_user(request: Request) -> User:
    user = session_user(request)
    if user is None:
        raise Redirect("/login")
    return user


class Redirect(Exception):
    def __init__(self, to: str):
        self.to = to


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, sent: str) -> None:
    expected = request.session.get("csrf")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise ApiError(403, "the form expired or was not sent by this site (CSRF check "
                            "failed): reload the page and try again")


def audit(user: User | None, request: Request, action: str, *, stay: dict | None = None,
          detail: str | None = None) -> None:
    context(request).store.audit(
        user=user.name if user else None, role=user.role if user else None, action=action,
        address=client_address(request), stay_id=stay["stay_id"] if stay else None,
        person_id=stay["person_id"] if stay else None, detail=detail)


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request):
    return context(request).templates.TemplateResponse(request, "login.html", {
        "csrf": csrf_token(request), "error": None, "user": None})


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
def login(request: Request, username: str = Form(""), password: str = Form(""),
          csrf_token_: str = Form("", alias="csrf_token")):
    ctx = context(request)
    store = ctx.store
    check_csrf(request, csrf_token_)
    address = client_address(request)
    name = store.sign_in_name(username)  # never a password typed as the name
    error = None
    if (store.recent_failures(user=name, window_s=SIGN_IN_WINDOW_SECONDS)
            >= SIGN_IN_MAX_FAILURES_PER_USER or
            store.recent_failures(address=address, window_s=SIGN_IN_WINDOW_SECONDS)
            >= SIGN_IN_MAX_FAILURES_PER_ADDRESS):
        store.audit(user=name, role=None, action="sign_in_refused_rate_limit",
                    address=address)
        error = (f"Too many failed sign-ins: try again in {SIGN_IN_WINDOW_SECONDS // 60} "
                 f"minutes, or ask an administrator.")
        return ctx.templates.TemplateResponse(request, "login.html", {
            "csrf": csrf_token(request), "error": error, "user": None}, status_code=429)
    user = store.verify_password(username, password)
    if user is None:
        store.record_failure(name, address)
        store.audit(user=name, role=None, action="sign_in_failed", address=address)
        return ctx.templates.TemplateResponse(request, "login.html", {
            "csrf": csrf_token(request), "error": "Wrong user name or password.",
            "user": None}, status_code=401)
    store.clear_failures(user.name)
    store.end_session(request.session.get("sid"))
    request.session.clear()  # new session: no fixation
    request.session.update(sid=store.create_session(user, SESSION_MAX_AGE_SECONDS),
                           csrf=secrets.token_urlsafe(32))
    store.audit(user=user.name, role=user.role, action="sign_in", address=address)
    return RedirectResponse("/census", status_code=303)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, csrf_token_: str = Form("", alias="csrf_token")):
    check_csrf(request, csrf_token_)
    user = session_user(request)
    if user:
        audit(user, request, "sign_out")
    context(request).store.end_session(request.session.get("sid"))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
