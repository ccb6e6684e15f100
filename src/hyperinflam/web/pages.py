"""The HTML pages of the bedside application: the census (and its CSV export) and the patient
page, server-rendered from the views of :mod:`hyperinflam.web.views`; every view is audited."""

from __future__ import annotations

import io

import pandas as pd
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from markupsafe import Markup

from hyperinflam.web.auth import audit, csrf_token, page_user
from hyperinflam.web.state import User
from hyperinflam.web.views import (FILTERS, census_view, context, get_census, patient_views,
                                   unit_label)

router = APIRouter()

#: A text cell starting with one of these is run as a formula by spreadsheet programs (OWASP,
#: "CSV injection"): it is written with a leading apostrophe, which they show as text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value):
    """A CSV cell that no spreadsheet runs as a formula (numbers are left as they are)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


@router.get("/", include_in_schema=False)
def home():
    return RedirectResponse("/census", status_code=303)


@router.get("/census", response_class=HTMLResponse, include_in_schema=False)
def census_page(request: Request, at: str | None = None, filter: str = "all",
                user: User = Depends(page_user)):
    ctx = context(request)
    census, key = census_view(ctx, user, at, filter)
    rows_html = ctx.views.get_or_build(("census-html",) + key[1:],
                                       lambda: ctx.rows_template.render(census=census))
    audit(user, request, "view_census", detail=f"filter={filter}")
    return ctx.templates.TemplateResponse(request, "census.html", {
        "user": user, "csrf": csrf_token(request), "census": census, "at": at or "",
        "filters": FILTERS, "rows_html": Markup(rows_html)})


@router.get("/census.csv", include_in_schema=False)
def census_export(request: Request, at: str | None = None, filter: str = "all",
                  user: User = Depends(page_user)):
    census = get_census(context(request), user, at, filter)
    audit(user, request, "export_census", detail=f"filter={filter}; rows={census.n_stays}")
    frame = pd.DataFrame([r.model_dump(exclude={"other_results"}) for r in census.rows])
    if "ferritin_unit" in frame.columns:
        frame["ferritin_unit"] = frame["ferritin_unit"].map(unit_label)
    if "admit_time" in frame.columns:  # the zone of every time exported
        frame = frame.rename(columns={"admit_time": "admit_time_utc"})
    buf = io.StringIO()
    frame.map(neutralise_formula).to_csv(buf, index=False)
    return PlainTextResponse(buf.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="census.csv"'})


@router.get("/patient/{key}", response_class=HTMLResponse, include_in_schema=False)
def patient_page(request: Request, key: str, at: str | None = None,
                 user: User = Depends(page_user)):
    ctx = context(request)
    stay, views = patient_views(ctx, user, key, at)
    audit(user, request, "view_patient", stay=stay)
    return ctx.templates.TemplateResponse(request, "patient.html", {
        "user": user, "csrf": csrf_token(request), **views})
