"""The bedside web application (issue 7): census, patient timeline and anakinra course, with
sign-in, roles and an audit trail. ``create_app(WebSettings(db=...))`` builds the ASGI app;
``hyperinflam serve`` runs it with uvicorn. See docs/web.md."""

from hyperinflam.web.app import WebSettings, create_app

__all__ = ["WebSettings", "create_app"]
