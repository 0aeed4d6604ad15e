"""Payload matches of the delivery search: `?data.invoice_id=inv_42` as JSON containment.

A query parameter named `data.<path>` or `metadata.<path>` asks for the deliveries whose
event body (DESIGN.md: `{"id", "type", "timestamp", "tenant_id", "data", "metadata"}`)
holds that value at that path, dots separating the keys of nested objects:
`data.customer.id=cus_1` is the body containing `{"data": {"customer": {"id": "cus_1"}}}`.

A query string carries text only, so the value is matched as the string it is and, when it
is spelled as a JSON number, `true`, `false` or `null`, also as that JSON value:
`data.amount=100` matches `100`, `100.0` and `"100"`; `data.paid=true` matches `true` and
`"true"`; `data.invoice_id=inv_42` matches `"inv_42"` only. Each match is therefore a few
JSON documents, any of which the body must contain (PostgreSQL's jsonb `@>`, which a GIN
index answers). The documents are written here as JSON text, the number as it was typed, so
PostgreSQL's numeric compares it exactly (no float rounding on the way). Keys that contain
a dot cannot be named, and a path does not reach into arrays.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from webhooks_api.domain.json_values import MAX_DEPTH, text_error

PREFIXES = ("data", "metadata")
# Matches a request may combine: each is a containment test on the body.
MAX_MATCHES = 10
MAX_VALUE_LENGTH = 1024
# JSON's number grammar (RFC 8259) and its three literals, nothing around them. An exponent
# of at most three digits keeps every such number within PostgreSQL's numeric.
_JSON_SCALAR = re.compile(
    r"true|false|null|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,3})?")


@dataclass(frozen=True)
class PayloadMatch:
    """One `data.…`/`metadata.…` parameter: the body must contain one of `documents`."""

    parameter: str
    documents: tuple[str, ...]


def is_payload_parameter(name: str) -> bool:
    return name.partition(".")[0] in PREFIXES and "." in name


def _nested(keys: list[str], leaf: str) -> str:
    """`{"k1": {"k2": leaf}}` as JSON text; `leaf` is JSON text already."""
    document = leaf
    for key in reversed(keys):
        document = f"{{{json.dumps(key, ensure_ascii=False)}:{document}}}"
    return document


def payload_match(parameter: str, value: str) -> PayloadMatch:
    """The match of one query parameter; ValueError with a message for the client when
    the name or the value cannot be one."""
    keys = parameter.split(".")
    if not all(keys[1:]):
        raise ValueError(f"name the field after '{keys[0]}.', with one dot between keys "
                         f"(e.g. {keys[0]}.customer.id)")
    if len(keys) > MAX_DEPTH:
        raise ValueError(f"a path of at most {MAX_DEPTH} keys")
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"a value of at most {MAX_VALUE_LENGTH} characters")
    if error := text_error(parameter) or text_error(value):
        raise ValueError(error)
    leaves = [json.dumps(value, ensure_ascii=False)]
    if _JSON_SCALAR.fullmatch(value):
        leaves.append(value)
    return PayloadMatch(parameter, tuple(_nested(keys, leaf) for leaf in leaves))
