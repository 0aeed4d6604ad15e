"""Keyset pagination shared by every list of the API.

A page is `{"items": [...], "next_cursor": "..." | null}`. The cursor is opaque to clients:
URL-safe base64 of the JSON list of the last item's sort key. Lists of stored rows run
newest first on (created_at DESC, id DESC) and continue strictly after the cursor's key,
so rows inserted while a client pages land before its position: nothing is skipped or
returned twice, however many rows arrive meanwhile. The `id` breaks ties between rows
created by one statement (which share `created_at`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from webhooks_api.domain.ids import ID_PATTERN
from webhooks_api.errors import InvalidInputError

DEFAULT_LIMIT = 50
MAX_LIMIT = 250


@dataclass(frozen=True)
class Page:
    items: Sequence[Any]
    next_cursor: str | None


def encode_cursor(key: list) -> str:
    raw = json.dumps(key, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, parse: Callable[[list], tuple]) -> tuple:
    """The sort key in `cursor`; `parse` checks its parts and raises ValueError when they
    are not what this list's cursors hold. Any malformed cursor is a 422 on `cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw.decode("utf-8"))
        if not isinstance(key, list):
            raise ValueError("not a list")
        return parse(key)
    except (binascii.Error, UnicodeError, ValueError, TypeError, OverflowError):
        raise InvalidInputError(
            "the cursor is not valid",
            {"cursor": ["not a cursor returned by this list; start again without one"]},
        ) from None


def _created_at_and_id(key: list) -> tuple[datetime, str]:
    created_at, row_id = key
    moment = datetime.fromisoformat(created_at)
    if moment.tzinfo is None or not ID_PATTERN.match(row_id):
        raise ValueError("not a (created_at, id) key")
    return moment.astimezone(UTC), row_id


def newest_first(session: Session, statement: Select, model, limit: int,
                 cursor: str | None) -> Page:
    """One page of `statement` (a select of `model` rows, already filtered to one tenant),
    ordered by (created_at DESC, id DESC)."""
    key_columns = tuple_(model.created_at, model.id)
    if cursor:
        statement = statement.where(key_columns < tuple_(*decode_cursor(cursor,
                                                                        _created_at_and_id)))
    rows = session.scalars(
        statement.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    ).all()
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None)
    last = rows[limit - 1]
    return Page(items=rows[:limit],
                next_cursor=encode_cursor([last.created_at.isoformat(), last.id]))
