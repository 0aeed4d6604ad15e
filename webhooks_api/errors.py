"""Domain errors raised by services, and their mapping to the one JSON error shape.

Services know nothing of HTTP; this module turns each domain error into flask-smorest's
shape `{"code", "status", "message", "errors"?}`.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import Flask, jsonify
from werkzeug.exceptions import RequestEntityTooLarge


class DomainError(Exception):
    """Base of the errors a service raises on purpose; `http_status` maps it for the API."""

    http_status = 400

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors


class NotFoundError(DomainError):
    http_status = 404


class ConflictError(DomainError):
    http_status = 409


class InvalidInputError(DomainError):
    """Input that is well-formed but breaks a rule (unknown type, schema mismatch...)."""

    http_status = 422


class PayloadTooLargeError(DomainError):
    http_status = 413


class UnavailableError(DomainError):
    http_status = 503


def error_body(code: int, message: str, errors: dict | None = None) -> dict:
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return body


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        return jsonify(error_body(error.http_status, error.message, error.errors)), \
            error.http_status

    @app.errorhandler(RequestEntityTooLarge)
    def handle_request_too_large(error: RequestEntityTooLarge):
        """Werkzeug's own 413 (body over MAX_CONTENT_LENGTH) says nothing of the limit."""
        limit = app.config["MAX_CONTENT_LENGTH"]
        message = f"the request body is larger than the limit of {limit} bytes"
        return jsonify(error_body(413, message)), 413
