"""Payload filters (docs/USAGE.md "Payload filters"): the documented vectors, read from the
document itself; the rules and the place each broken one names; hypothesis against an
independent reference; and the fan-out, with wildcard types, end to end.

The product is the jsonpath predicate of `webhooks_api.domain.payload_filters`, evaluated
by PostgreSQL with `@@` as the fan-out statement evaluates it. The reference below is a
naive recursive interpreter of the filter over the decoded body: it shares no code with
the product (its own path reader, its own idea of JSON types), decodes numbers exactly
(Decimal, as PostgreSQL's numeric does) and compares strings as Python does, by code point.
"""

from __future__ import annotations

import json
import operator
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.support.engine_support import (
    create_subscription,
    deliveries_of,
    event_row,
    publish_via_api,
)
from tests.support.helpers import wait_for
from webhooks_api.domain.payload_filters import filter_errors, to_jsonpath
from webhooks_api.messaging.names import PUBLISH_QUEUE, PUBLISH_TASK

USAGE = Path(__file__).resolve().parents[2] / "docs" / "USAGE.md"
# What every delivered body carries; a vector's body replaces the fields it shows.
BASE_BODY = {"id": "evt_vector", "type": "invoice.paid", "timestamp": "2026-12-02T12:00:00Z",
             "tenant_id": "tenant_xyz", "data": {}, "metadata": {}}


def documented_vectors() -> list[tuple[dict, dict, bool]]:
    """(filter, body, matches) of each row of USAGE.md's vector table."""
    section = USAGE.read_text().split("### Payload filters", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\{.*\})` \| `(\{.*\})` \| (yes|no) \|$", section, re.MULTILINE)
    return [(json.loads(f), {**BASE_BODY, **json.loads(b)}, m == "yes") for f, b, m in rows]


VECTORS = documented_vectors()


def matched_by_postgresql(session, pairs: list[tuple[dict, dict]]) -> list[bool]:
    """`body @@ jsonpath` for each (filter, body), in one query."""
    return list(session.execute(text("""
        SELECT CAST(body AS jsonb) @@ CAST(predicate AS jsonpath)
        FROM unnest(CAST(:bodies AS text[]), CAST(:predicates AS text[]))
             WITH ORDINALITY AS pair(body, predicate, n)
        ORDER BY n
    """), {"bodies": [json.dumps(body) for _, body in pairs],
           "predicates": [to_jsonpath(payload_filter) for payload_filter, _ in pairs]}
    ).scalars())


# ---- the reference ----

MISSING = object()
_ORDER = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | Decimal):
        return "number"
    return {type(None): "null", str: "string", list: "array", dict: "object"}[type(value)]


def _segments(path: str) -> list:
    """Runs of escaped or ordinary characters between the dots; digits alone index."""
    return [int(raw) if raw.isascii() and raw.isdigit() else re.sub(r"\\(.)", r"\1", raw)
            for raw in re.findall(r"(?:\\.|[^\\.])+", path)]


def _at(body, path: str):
    value = body
    for segment in _segments(path):
        indexes = isinstance(segment, int) and isinstance(value, list) and segment < len(value)
        if not (indexes or isinstance(segment, str) and isinstance(value, dict)
                and segment in value):
            return MISSING
        value = value[segment]
    return value


def _same(a, b) -> bool:
    return _kind(a) == _kind(b) and a == b


def reference(node: dict, body: dict) -> bool:
    if "all" in node:
        return all(reference(child, body) for child in node["all"])
    if "any" in node:
        return any(reference(child, body) for child in node["any"])
    if "not" in node:
        return not reference(node["not"], body)
    [(name, operand)] = [(key, value) for key, value in node.items() if key != "path"]
    value = _at(body, node["path"])
    if name == "exists":
        return (value is not MISSING) is operand
    if value is MISSING:
        return name in ("ne", "nin")
    if name in ("eq", "ne"):
        return _same(value, operand) is (name == "eq")
    if name in ("in", "nin"):
        return any(_same(value, item) for item in operand) is (name == "in")
    if name == "prefix":
        return isinstance(value, str) and value.startswith(operand)
    return (_kind(value) == _kind(operand) and _kind(value) in ("number", "string")
            and _ORDER[name](value, operand))


def exact(value):
    """A JSON value as the reference reads it: numbers exact, as PostgreSQL stores them."""
    return json.loads(json.dumps(value), parse_float=Decimal)


# ---- the documented vectors ----

def test_the_documented_table_has_its_vectors():
    assert len(VECTORS) >= 30
    assert {True, False} == {matches for _, _, matches in VECTORS}


def test_the_documented_vectors_hold_in_postgresql_and_in_the_reference(session):
    assert [filter_errors(f) for f, _, _ in VECTORS] == [{}] * len(VECTORS)
    expected = [matches for _, _, matches in VECTORS]
    assert matched_by_postgresql(session, [(f, body) for f, body, _ in VECTORS]) == expected
    assert [reference(exact(f), exact(body)) for f, body, _ in VECTORS] == expected


# ---- the rules, and the place each broken one names ----

def _nested(depth: int) -> dict:
    node: dict = {"path": "data.a", "eq": 1}
    for _ in range(depth):
        node = {"not": node}
    return node


@pytest.mark.parametrize(("payload_filter", "place", "says"), [
    ({"path": "data.a", "gt": {"n": 1}}, "filter.gt", "number or a string, not an object"),
    ({"all": [{"path": "data.a", "eq": 1}, {"path": "data.b", "gt": [1]}]}, "filter.all[1].gt",
     "not an array"),
    ({"path": "data.a", "gt": True}, "filter.gt", "not a boolean"),
    ({"path": "data.a", "equals": 1}, "filter.equals", "unknown operator 'equals'"),
    ({"any": [{"path": "data.a", "eq": 1, "regex": "x"}]}, "filter.any[0].regex",
     "unknown operator"),
    ({"path": "body.a", "eq": 1}, "filter.path", "must start with one of id, type"),
    ({"path": "data..a", "eq": 1}, "filter.path", "empty segment"),
    ({"path": "data.", "eq": 1}, "filter.path", "empty segment"),
    ({"path": "data.a\\", "eq": 1}, "filter.path", "lone backslash"),
    ({"path": "data.01", "eq": 1}, "filter.path", "leading zero"),
    ({"path": "data.9999999999", "eq": 1}, "filter.path", "too large"),
    ({"path": 7, "eq": 1}, "filter.path", "must be a string, not a number"),
    ({"eq": 1}, "filter.path", "missing"),
    ({"path": "data.a"}, "filter", "names no operator"),
    ({"path": "data.a", "eq": 1, "ne": 2}, "filter", "2 operators (eq, ne)"),
    ({"path": "data.a", "eq": [1]}, "filter.eq", "not an array"),
    ({"path": "data.a", "in": []}, "filter.in", "non-empty array"),
    ({"path": "data.a", "nin": "EUR"}, "filter.nin", "non-empty array"),
    ({"path": "data.a", "in": [1, {"b": 2}]}, "filter.in[1]", "not an object"),
    ({"path": "data.a", "prefix": 1}, "filter.prefix", "must be a string"),
    ({"path": "data.a", "exists": "yes"}, "filter.exists", "true or false"),
    ({"all": []}, "filter.all", "non-empty array of filters"),
    ({"any": {"path": "data.a", "eq": 1}}, "filter.any", "non-empty array of filters"),
    ({"not": [{"path": "data.a", "eq": 1}]}, "filter.not", "not an array"),
    ({"all": [{"path": "data.a", "eq": 1}], "path": "data.b"}, "filter", "only key"),
    ({"any": [1]}, "filter.any[0]", "not a number"),
    (_nested(9), "filter" + ".not" * 9, "deeper than 8"),
    ({"path": "data.a", "in": ["x" * 100] * 45}, "filter", "at most 4096 bytes"),
])
def test_a_broken_rule_is_named_by_its_place(payload_filter, place, says):
    errors = filter_errors(payload_filter)
    assert place in errors, errors
    assert says in errors[place][0], errors


def test_eight_levels_and_4_kib_are_allowed():
    assert filter_errors(_nested(8)) == {}
    at_limit = {"path": "data.a", "in": ["x" * 100] * 36}
    assert len(json.dumps(at_limit, separators=(",", ":"))) <= 4096
    assert filter_errors(at_limit) == {}


# ---- hypothesis: PostgreSQL's evaluation of the product against the reference ----

# Keys and strings with what a jsonpath literal must escape or keep: dots, backslashes,
# quotes, control characters, digits, non-ASCII and non-BMP characters.
KEYS = st.sampled_from(["a", "b", "amount", "0", "1", "2024", "x.y", "k\\z", 'q"', "\x01",
                        "é", "😀", ""])
STRINGS = st.text(alphabet='aAbB0é"\\\n\x01\x7f.😀', max_size=3)
NUMBERS = st.one_of(st.integers(-3, 3), st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([0.5, 1.0, -2.5, 1e20, 10 ** 20, 2 ** 63]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
VALUES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(KEYS, children, max_size=3)),
    max_leaves=8)
BODIES = st.fixed_dictionaries({
    "id": st.just("evt_1"), "type": st.sampled_from(["invoice.paid", "payment.failed"]),
    "timestamp": st.just("2026-12-02T12:00:00Z"), "tenant_id": st.just("tenant_xyz"),
    "data": st.dictionaries(KEYS, VALUES, max_size=4),
    "metadata": st.dictionaries(KEYS, VALUES, max_size=2)})


def _escaped(key: str) -> str:
    key = key.replace("\\", "\\\\").replace(".", "\\.")
    return "\\" + key if key.isdigit() else key


SEGMENTS = st.one_of(KEYS.filter(bool).map(_escaped), st.integers(0, 2).map(str))
PATHS = st.builds(lambda root, rest: ".".join([root, *rest]),
                  st.sampled_from(["data", "metadata", "type", "id"]),
                  st.lists(SEGMENTS, max_size=3))
OPERANDS = {"eq": SCALARS, "ne": SCALARS, "in": st.lists(SCALARS, min_size=1, max_size=3),
            "nin": st.lists(SCALARS, min_size=1, max_size=3), "gt": NUMBERS | STRINGS,
            "gte": NUMBERS | STRINGS, "lt": NUMBERS | STRINGS, "lte": NUMBERS | STRINGS,
            "prefix": STRINGS, "exists": st.booleans()}
COMPARISONS = st.sampled_from(sorted(OPERANDS)).flatmap(
    lambda name: st.builds(lambda path, operand: {"path": path, name: operand},
                           PATHS, OPERANDS[name]))
FILTERS = st.recursive(COMPARISONS, lambda children: st.one_of(
    st.lists(children, min_size=1, max_size=3).map(lambda nodes: {"all": nodes}),
    st.lists(children, min_size=1, max_size=3).map(lambda nodes: {"any": nodes}),
    children.map(lambda node: {"not": node})), max_leaves=6)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=BODIES, payload_filters=st.lists(FILTERS, min_size=1, max_size=8))
def test_postgresql_evaluates_every_filter_as_the_reference_does(session, body,
                                                                 payload_filters):
    assume(all(filter_errors(f) == {} for f in payload_filters))
    matched = matched_by_postgresql(session, [(f, body) for f in payload_filters])
    assert matched == [reference(exact(f), exact(body)) for f in payload_filters], \
        [to_jsonpath(f) for f in payload_filters]


# ---- the fan-out, end to end ----

def _publish_task(app, event_type: str, data: dict, tenant_id: str) -> str:
    """The other way in: `webhooks.publish` with the event itself (stored and fanned out
    by one statement, where the API's events are stored first, then fanned out)."""
    return app.extensions["celery"].send_task(PUBLISH_TASK, args=[event_type, data, tenant_id],
                                              queue=PUBLISH_QUEUE).id


def test_the_fan_out_stores_deliveries_only_where_the_filter_matches(app, client, tenant,
                                                                     receiver, worker,
                                                                     session, task_events):
    def subscribe(name: str, event_types: list[str], payload_filter: dict | None) -> str:
        return create_subscription(client, tenant, f"{receiver.base_url}/{name}", event_types,
                                   filter=payload_filter)["id"]

    large = subscribe("large", ["invoice.*"], {"path": "data.amount_due", "gte": 10000})
    eur_payments = subscribe("eur", ["*"], {"all": [
        {"path": "type", "prefix": "payment."}, {"path": "data.currency", "in": ["eur"]}]})
    never = subscribe("never", ["*", "invoice.paid"], {"path": "data.amount_due", "lt": 0})
    every_paid = subscribe("paid", ["invoice.paid"], None)

    big = publish_via_api(client, tenant, "invoice.paid", {"amount_due": 20000})
    small = publish_via_api(client, tenant, "invoice.paid", {"amount_due": 50})
    task_events.wait_finished(
        _publish_task(app, "payment.succeeded", {"currency": "eur"}, tenant["id"]),
        _publish_task(app, "payment.failed", {"currency": "usd"}, tenant["id"]))
    wait_for(lambda: len(receiver.posts()) >= 4
             and all(event_row(session, tenant["id"], event_id).fanned_out_at
                     for event_id in (big, small)), message="4 deliveries, 4 events fanned out")

    received = {(post.path, body["type"], json.dumps(body["data"]))
                for post in receiver.posts() for body in [json.loads(post.body)]}
    assert received == {("/large", "invoice.paid", '{"amount_due": 20000}'),
                        ("/paid", "invoice.paid", '{"amount_due": 20000}'),
                        ("/paid", "invoice.paid", '{"amount_due": 50}'),
                        ("/eur", "payment.succeeded", '{"currency": "eur"}')}
    # No row at all where the filter did not match: nothing pending, nothing to replay.
    assert {subscription_id: len(deliveries_of(session, subscription_id))
            for subscription_id in (large, eur_payments, never, every_paid)} == {
        large: 1, eur_payments: 1, never: 0, every_paid: 2}
    assert len(deliveries_of(session)) == 4
    assert session.scalar(text("SELECT count(*) FROM events")) == 4
