"""The JSON API of the bedside application under /api (OpenAPI at /api/openapi.json): the signed-in
user, the census and one stay's timeline, criteria and anakinra course, the same views as the
pages (:mod:`hyperinflam.web.views`), audited alike."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from hyperinflam.web.auth import api_user, audit
from hyperinflam.web.state import User
from hyperinflam.web.views import (AT_HELP, AT_SCHEMA, AnakinraCourse, Census, Criteria, Me, Timeline, census_view,
                                   context, patient_views)

router = APIRouter()


@router.get("/api/me", response_model=Me, tags=["session"])
def api_me(user: User = Depends(api_user)):
    return Me(user=user.name, role=user.role)


@router.get("/api/census", response_model=Census, tags=["census"],
            responses={401: {"description": "not signed in"},
                       422: {"description": "bad parameter"}})
def api_census(request: Request, at: Optional[str] = Query(None, description=AT_HELP, json_schema_extra=AT_SCHEMA),
               filter: Literal["all", "meets", "approaching"] = Query("all"),
               user: User = Depends(api_user)):
    ctx = context(request)
    census, key = census_view(ctx, user, at, filter)
    body = ctx.views.get_or_build(("census-json",) + key[1:], census.model_dump_json)
    audit(user, request, "api_census", detail=f"filter={filter}")
    return Response(body, media_type="application/json")


def _patient_view(request: Request, user: User, key: str, at, part: str):
    """One of a stay's views (timeline, criteria, anakinra), audited as api_patient_<part>."""
    stay, views = patient_views(context(request), user, key, at)
    audit(user, request, f"api_patient_{part}", stay=stay)
    return views[part]


responses = {401: {"description": "not signed in"}, 404: {"description": "unknown stay"},
             422: {"description": "bad parameter"}}


@router.get("/api/patients/{key}/timeline", response_model=Timeline, tags=["patient"],
            responses=responses)
def api_timeline(request: Request, key: str,
                 at: Optional[str] = Query(None, description=AT_HELP, json_schema_extra=AT_SCHEMA),
                 user: User = Depends(api_user)):
    return _patient_view(request, user, key, at, "timeline")


@router.get("/api/patients/{key}/criteria", response_model=Criteria, tags=["patient"],
            responses=responses)
def api_criteria(request: Request, key: str,
                 at: Optional[str] = Query(None, description=AT_HELP, json_schema_extra=AT_SCHEMA),
                 user: User = Depends(api_user)):
    return _patient_view(request, user, key, at, "criteria")


@router.get("/api/patients/{key}/anakinra", response_model=AnakinraCourse, tags=["patient"],
            responses=responses)
def api_anakinra(request: Request, key: str,
                 at: Optional[str] = Query(None, description=AT_HELP, json_schema_extra=AT_SCHEMA),
                 user: User = Depends(api_user)):
    return _patient_view(request, user, key, at, "anakinra")
