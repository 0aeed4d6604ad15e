"""The delivery console: one server-rendered page at /console and its static assets.

The page holds no data of its own: its script signs in with the tenant's API key (kept in
sessionStorage, sent as the Bearer header) and reads and changes everything through the
REST API, so the API stays the one source of truth. The response headers forbid any
script, style or connection that is not this origin's own, and framing.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template

from webhooks_api.http.views import API_PREFIX

bp = Blueprint("console", __name__, url_prefix="/console",
               static_folder="static/console", static_url_path="/assets",
               template_folder="templates")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@bp.get("")
def page() -> Response:
    """The console page; its script does the rest through the REST API."""
    response = Response(render_template("console.html", api_prefix=API_PREFIX))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
