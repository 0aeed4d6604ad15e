"""What PostgreSQL can store from a client's JSON: checked before anything is written.

PostgreSQL refuses NUL characters in `text` and `jsonb`, psycopg2 cannot encode a lone
UTF-16 surrogate, `jsonb` has no NaN or Infinity, and very deep nesting only costs. Each of
those would otherwise surface as a 500 at INSERT time; here it becomes a field message.
"""

from __future__ import annotations

import json
import math

MAX_DEPTH = 32


def text_error(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no unpaired surrogates)"
    return None


def json_value_error(value: object, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a decoded JSON value cannot be stored as jsonb, or None. Iterative, so a deep
    value cannot exhaust the stack."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return f"must not nest deeper than {max_depth} levels"
        if isinstance(item, str):
            if error := text_error(item):
                return error
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "must not contain NaN or Infinity"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return "object keys must be strings"
                if error := text_error(key):
                    return error
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif item is not None and not isinstance(item, bool | int):
            return f"unsupported JSON value of type {type(item).__name__}"
    return None


def json_size(value: object) -> int:
    """Bytes of the compact JSON encoding, the size limits' unit."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
