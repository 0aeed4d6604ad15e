"""The Blueprint every API view module uses: authentication, strict JSON bodies, and the
documentation of every status code an operation can answer.

Unknown query parameters and body fields are refused (422). Request bodies are JSON only:
a body sent with another content type answers 415, a body that is not JSON (or nests too
deep to parse) answers 400, one over the size limit 413, and one that breaks the schema
422; an absent body counts as `{}`.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

import marshmallow as ma
from flask_smorest import Blueprint, abort
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from webhooks_api.auth import authenticate

# Any authenticated operation can answer these: a bad key, or the database being down.
AUTHENTICATED_ERRORS = (401, 503)
# Any operation that reads a JSON body can answer these besides 422.
BODY_ERRORS = (400, 413, 415)
# Any operation at all: the web server refuses a request line or headers over its limits
# before the app sees the request (webhooks_api.http.gunicorn_conf).
SERVER_LIMIT_ERRORS = (414, 431)


class JsonBodyParser(FlaskParser):
    # Unknown query parameters are refused like unknown body fields: a typo in a filter
    # name must not silently widen a list.
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": ma.RAISE}

    def _raw_load_json(self, req):
        body = req.get_data(cache=True)  # over MAX_CONTENT_LENGTH: 413 here
        if not body:
            return core.missing
        if not is_json_request(req):
            abort(415, message="send the request body as application/json")
        try:
            return core.parse_json(body)
        except RecursionError:
            abort(400, message="the body nests too deeply",
                  errors={"json": ["nested too deeply"]})

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        abort(400, message=f"the body is not valid JSON: {error}",
              errors={"json": ["not valid JSON"]})


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = JsonBodyParser()

    def __init__(self, *args, authenticated: bool = True,
                 authenticate_with: Callable[[], None] = authenticate, **kwargs):
        """`authenticate_with`: the before_request hook that checks the credential (the
        tenant's API key unless told otherwise)."""
        super().__init__(*args, **kwargs)
        self.authenticated = authenticated
        if authenticated:
            self.before_request(authenticate_with)

    def errors(self, *codes: int):
        """Document error responses (the shared error schema) on an operation."""

        def decorator(func):
            for code in codes:
                func = self.alt_response(code, response=HTTPStatus(code).name)(func)
            return func

        return decorator

    def response(self, status_code, schema=None, **kwargs):
        """flask-smorest's response, plus the errors every operation of this blueprint
        can answer."""
        document = super().response(status_code, schema, **kwargs)
        codes = SERVER_LIMIT_ERRORS + (AUTHENTICATED_ERRORS if self.authenticated else ())
        common = self.errors(*codes)
        return lambda func: common(document(func))

    def arguments(self, schema, *, location="json", **kwargs):
        parse = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return parse
        body_errors = self.errors(*BODY_ERRORS)
        return lambda func: body_errors(parse(func))
