"""Domain errors raised by services, and their mapping to the one JSON error shape.

Services know nothing of HTTP; this module turns each domain error, each HTTP error of
Flask and webargs, and a database outage into `{"code", "status", "message", "errors"?,
"error_code"?}` (flask-smorest's shape, with `message` always present and webargs'
per-location field errors flattened to `{field: [messages]}`; `error_code` where a client
must tell refusals of one status apart, e.g. an expired from a revoked portal session).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import marshmallow as ma
from flask import Flask, jsonify
from flask_smorest import Api
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import RequestEntityTooLarge

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """Base of the errors a service raises on purpose; `http_status` maps it for the API."""

    http_status = 400

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None,
                 headers: dict[str, str] | None = None, error_code: str | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.error_code = error_code


class UnauthorizedError(DomainError):
    http_status = 401


class ForbiddenError(DomainError):
    http_status = 403


class NotFoundError(DomainError):
    http_status = 404


class ConflictError(DomainError):
    http_status = 409


class InvalidInputError(DomainError):
    """Input that is well-formed but breaks a rule (unknown type, schema mismatch...)."""

    http_status = 422


class PayloadTooLargeError(DomainError):
    http_status = 413


class TooManyRequestsError(DomainError):
    """A bound on concurrent work is reached; `Retry-After` says when to try again."""

    http_status = 429

    def __init__(self, message: str, retry_after_seconds: int):
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


class UnavailableError(DomainError):
    http_status = 503


def error_body(code: int, message: str, errors: dict | None = None,
               error_code: str | None = None) -> dict:
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        body["errors"] = errors
    if error_code:
        body["error_code"] = error_code
    return body


class ErrorSchema(ma.Schema):
    """The body of every error response (documentation only)."""

    code = ma.fields.Integer(required=True, metadata={"description": "The HTTP status code"})
    status = ma.fields.String(required=True, metadata={"description": "Its reason phrase"})
    message = ma.fields.String(required=True, metadata={"description": "What went wrong"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Raw(),
        metadata={"description": "Messages per field, e.g. {\"url\": [\"...\"]}"},
    )
    error_code = ma.fields.String(metadata={
        "description": "Why, where one status has several causes a client must tell "
                       "apart: portal_session_expired, portal_session_revoked, "
                       "portal_session_invalid, portal_session_read_only, "
                       "portal_session_bound"})


_DEFAULT_MESSAGES = {
    400: "the request is malformed",
    422: "the request is not valid; see `errors` for each field",
}


def _flatten(messages: dict) -> dict:
    """webargs nests field errors under their location ({"json": {"url": [...]}}); the API
    answers {"url": [...]}. A location's own message list stays under its name."""
    flat: dict = {}
    for location, errors in messages.items():
        if isinstance(errors, dict):
            flat.update(errors)
        else:
            flat[location] = errors
    return flat


class WebhooksApi(Api):
    """flask-smorest's Api with the error shape of DESIGN.md on every HTTP error."""

    ERROR_SCHEMA = ErrorSchema
    # Every status an operation returns is documented on the operation itself.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def handle_http_exception(self, error):
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or (_flatten(data["messages"]) if data.get("messages")
                                         else None)
        message = (data.get("message") or _DEFAULT_MESSAGES.get(error.code)
                   or error.description or error.name)
        if error.code >= 500:
            logger.error("request failed with %s: %s", error.code, message)
        # Keep werkzeug's own headers (Allow on a 405, WWW-Authenticate...), not its HTML type.
        headers = {name: value for name, value in error.get_headers()
                   if name.lower() != "content-type"}
        headers.update(data.get("headers") or {})
        return error_body(error.code, message, errors), error.code, headers


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        body = error_body(error.http_status, error.message, error.errors, error.error_code)
        return jsonify(body), error.http_status, error.headers

    @app.errorhandler(OperationalError)
    def handle_database_unavailable(error: DBAPIError):
        """PostgreSQL is down or unreachable: a 503 the client may retry, not a 500."""
        logger.error("database unavailable: %s", type(error.orig).__name__, exc_info=True)
        return jsonify(error_body(503, "the database is unavailable; retry later")), 503
    @app.errorhandler(RequestEntityTooLarge)
    def handle_request_too_large(error: RequestEntityTooLarge):
        """Werkzeug's own 413 (body over MAX_CONTENT_LENGTH) says nothing of the limit."""
        limit = app.config["MAX_CONTENT_LENGTH"]
        message = f"the request body is larger than the limit of {limit} bytes"
        return jsonify(error_body(413, message)), 413
