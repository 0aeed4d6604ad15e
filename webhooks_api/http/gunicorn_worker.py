"""The web's gunicorn worker: gunicorn's threaded worker (`gthread`), answering its own
errors for oversized requests in the API's JSON error shape.

gunicorn refuses a request line over `limit_request_line` (414) and headers over
`limit_request_fields` or `limit_request_field_size` (431) before the app sees the
request, and writes an HTML page for them in `Worker.handle_error`. Those are what a
client with a long query string or a large header meets; this worker writes them as
`{"code", "status", "message"}` like every other error of the API (docs/API.md). Other
errors gunicorn raises itself (a request that is not HTTP) keep its own page.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from gunicorn import util
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.gthread import ThreadWorker

from webhooks_api.errors import error_body


class ApiWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc) -> None:
        answer = self._oversized_request_error(exc)
        if answer is None:
            super().handle_error(req, client, addr, exc)
            return
        status, message = answer
        self.log.warning("Invalid request from ip=%s: %s", addr[0] if addr else "", exc)
        body = json.dumps(error_body(status, message)).encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                "Connection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        try:
            util.write_nonblock(client, head + body)
        except OSError:
            self.log.debug("Failed to send error message.")

    def _oversized_request_error(self, exc: BaseException) -> tuple[int, str] | None:
        if isinstance(exc, LimitRequestLine):
            return 414, (f"the request line is longer than the limit of "
                         f"{self.cfg.limit_request_line} bytes")
        if isinstance(exc, LimitRequestHeaders):
            return 431, (f"the request headers are over the limit of "
                         f"{self.cfg.limit_request_fields} fields of at most "
                         f"{self.cfg.limit_request_field_size} bytes each")
        return None
