"""The delivery console at /console, and the same page as the embeddable portal at
/portal/<session id>, with their static assets.

The page holds no data of its own: its script reads and changes everything through the
REST API, so the API stays the one source of truth. The console signs in with the tenant's
API key (kept in sessionStorage, sent as the Bearer header) against /api/v1/webhooks; the
portal reads a portal session token from the URL's fragment (which no browser sends to a
server, so it is in no access log) and calls /api/v1/portal with it.

The response headers forbid any script, style or connection that is not this origin's
own. Framing: the console never (`frame-ancestors 'none'`); a portal page by the origins
its tenant allowed (portal settings), and an unknown session's 404 by none. Neither sends
X-Frame-Options, which browsers would apply on top of the CSP (and DENY would forbid the
allowed origins too).
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template

from webhooks_api.domain.origins import frame_ancestors
from webhooks_api.extensions import db
from webhooks_api.http.views import API_PREFIX, PORTAL_API_PREFIX
from webhooks_api.services.portal_sessions import PAGE_PATH
from webhooks_api.services.portal_settings import portal_page_settings

bp = Blueprint("console", __name__, url_prefix="/console",
               static_folder="static/console", static_url_path="/assets",
               template_folder="templates")
portal_bp = Blueprint("portal_page", __name__, url_prefix=PAGE_PATH)

DEFAULT_TITLE = "Webhooks console"
DEFAULT_PORTAL_TITLE = "Webhooks"


def content_security_policy(ancestors: str = "'none'") -> str:
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {ancestors}"
    )


def _secured(response: Response, ancestors: str = "'none'") -> Response:
    response.headers["Content-Security-Policy"] = content_security_policy(ancestors)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
def page() -> Response:
    """The console page; its script does the rest through the REST API."""
    return _secured(Response(render_template(
        "console.html", mode="console", title=DEFAULT_TITLE, api_prefix=API_PREFIX)))


@portal_bp.get("/<string:session_id>")
def portal_page(session_id: str) -> Response:
    """The portal page of a session, framable by its tenant's allowed origins. A revoked
    or expired session still gets its page, which says so; an unknown one a 404."""
    settings = portal_page_settings(db.session, session_id)
    if settings is None:
        return _secured(Response(render_template("portal_unknown.html"), status=404))
    return _secured(Response(render_template(
        "console.html", mode="portal", title=settings.title or DEFAULT_PORTAL_TITLE,
        accent_color=settings.accent_color, api_prefix=PORTAL_API_PREFIX,
    )), frame_ancestors(settings.allowed_origins))
