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


#: Headers of census.csv, in the census's own words with units (issue 14 item 5): one per
#: column of the census rows (views.CensusRow), in that order. Every time is in UTC.
CENSUS_CSV_HEADERS = {
    "key": "Page key (/patient/KEY)", "patient": "Patient", "stay": "Stay",
    "admit_time": "Admitted (UTC)", "hours_since_admit": "Hours in PICU",
    "age_years": "Age (years)", "sex": "Sex",
    "hscore_points": "HScore (points)",
    "hscore_max_possible": "HScore, maximum possible with the missing items (points)",
    "hscore_ge_169": "{hscore}",
    "hlh2004_met_count": "HLH-2004 criteria met (of 8)",
    "hlh2004_unknown_count": "HLH-2004 criteria unknown (of 8)",
    "hlh2004_result": "{hlh2004}",
    "phoenix_score": "Phoenix score (points)", "phoenix_septic_shock": "Phoenix septic shock",
    "psofa_score": "pSOFA score (points)",
    "ferritin_last": "Ferritin, last value", "ferritin_previous": "Ferritin, previous value",
    "ferritin_unit": "Ferritin unit", "ferritin_trend": "Ferritin trend",
    "anakinra_running": "Anakinra running",
    "meets_phenotype": "Meets a hyperinflammatory phenotype criterion",
    "phenotype_met": "Phenotype criteria met",
    "meets_severity": "Meets an organ dysfunction or severity criterion",
    "severity_met": "Organ dysfunction and severity criteria met",
    "approaching_any": "Approaching a criterion", "approaching": "Criteria approached",
    "outside_validated_ages": "Outside the validated ages of",
    "recognition": "Recognition to treatment",
    "recognition_to_treatment_hours":
        "Hours from a phenotype criterion first met to the first anakinra dose",
}
#: Tri-state words of the criteria (criteria._toolkit) as the census shows them.
_RESULT_WORDS = {"met": "met", "not_met": "not met", "unknown": "unknown",
                 "indeterminate": "indeterminate"}


def census_csv_frame(rows: list[dict]) -> pd.DataFrame:
    """The census rows as census.csv writes them: human headers with units, tri-state results
    and yes/no in words, units as people write them, hours to 0.1 h; no spreadsheet formula."""
    from hyperinflam.criteria import label

    columns = list(CENSUS_CSV_HEADERS)
    frame = pd.DataFrame(rows, columns=columns)
    if "ferritin_unit" in frame.columns:
        frame["ferritin_unit"] = frame["ferritin_unit"].map(unit_label)
    for column in ("hscore_ge_169", "hlh2004_result", "phoenix_septic_shock"):
        frame[column] = frame[column].map(lambda v: _RESULT_WORDS.get(v, v))
    for column in frame.columns:
        if frame[column].dtype == bool:
            frame[column] = frame[column].map({True: "yes", False: "no"})
    frame["hours_since_admit"] = frame["hours_since_admit"].round(1)
    frame = frame.rename(columns={c: CENSUS_CSV_HEADERS[c].format(
        hscore=label("hscore"), hlh2004=label("hlh2004")) for c in columns})
    return frame.map(neutralise_formula)


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
    frame = census_csv_frame([r.model_dump(exclude={"other_results"}) for r in census.rows])
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
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
