"""Payload filters: a subscription's optional predicate over the event as delivered
(docs/USAGE.md "Payload filters" has the grammar and the semantics table).

This module owns both halves of a filter's life: the rules it must meet on create and
PATCH (`filter_errors`, each message keyed by its place, e.g. `filter.all[1].gt`), and its
translation to a PostgreSQL SQL/JSON path predicate (`to_jsonpath`), stored beside it. The
fan-out evaluates that predicate with `body @@ filter_jsonpath` inside its one INSERT, so a
filtered fan-out costs no extra statement and no Python per subscription, and a
subscription whose filter does not match gets no delivery row.

Why the translation looks the way it does:
- `strict` mode: lax mode unwraps arrays (`data.tags == "x"` would match `["x", "y"]`)
  and walks into arrays on key access; strict mode does neither.
- Each comparison `R` is wrapped as `exists($ ? (R))`: in SQL/JSON a missing path or a
  comparison of different types is *unknown*, not false, and `!unknown` is unknown; the
  filter `$ ? (R)` keeps the root only when `R` is true, so every comparison becomes
  plainly true or false and `not`, `ne` and `nin` negate a two-valued result (a missing
  path is "not equal").
- PostgreSQL compares numbers by value (`1 == 1.0`), never a number with a string or a
  boolean (unknown, hence false), and strings by code point (byte order in UTF-8).

The stored jsonpath is derived data: a change to the translation needs a migration that
recomputes `filter_jsonpath` from `filter` for every subscription.
"""

from __future__ import annotations

import json
import math

from webhooks_api.domain.json_values import json_size, text_error

MAX_FILTER_BYTES = 4096  # as compact JSON
MAX_FILTER_DEPTH = 8  # all / any / not inside one another
MAX_INDEX_DIGITS = 9  # an array index below 10**9 (PostgreSQL's are 32-bit)
# The top-level keys of the delivered body (DESIGN.md "The delivery on the wire").
PATH_ROOTS = ("id", "type", "timestamp", "tenant_id", "data", "metadata")
COMBINATORS = ("all", "any", "not")
EQUALITIES = ("eq", "ne", "in", "nin")
ORDERINGS = ("gt", "gte", "lt", "lte")
OPERATORS = (*EQUALITIES, *ORDERINGS, "exists", "prefix")
_JSONPATH_OPERATORS = {"eq": "==", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_SHAPE = ('must be an object: {"path": ..., "<operator>": value}, or one of '
          '{"all": [...]}, {"any": [...]}, {"not": {...}}')


class PathError(ValueError):
    """Why a path string is not one."""


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _a(value: object) -> str:
    """`a string`, `an object`: the type of `value` as a message says it."""
    kind = json_type(value)
    return f"an {kind}" if kind[0] in "ao" else f"a {kind}"


def _segment(characters: list[str], escaped: bool) -> str | int:
    text = "".join(characters)
    if not text:
        raise PathError("has an empty segment (a dot in a key is written \\.)")
    if escaped or not (text.isascii() and text.isdigit()):
        return text
    if len(text) > 1 and text.startswith("0"):
        raise PathError(f"array index {text} has a leading zero (a key of digits starts "
                        "with a backslash: \\" + text + ")")
    if len(text) > MAX_INDEX_DIGITS:
        raise PathError(f"array index {text} is too large")
    return int(text)


def parse_path(path: str) -> list[str | int]:
    """The segments of a dotted path: keys, and array indexes for the segments made of
    digits alone. A backslash takes the next character literally (`\\.` a dot inside a
    key, `\\\\` a backslash, `\\2024` a key of digits). Raises PathError."""
    segments: list[str | int] = []
    characters: list[str] = []
    escaped = False
    iterator = iter(path)
    for character in iterator:
        if character == "\\":
            following = next(iterator, None)
            if following is None:
                raise PathError("ends with a lone backslash")
            characters.append(following)
            escaped = True
        elif character == ".":
            segments.append(_segment(characters, escaped))
            characters, escaped = [], False
        else:
            characters.append(character)
    segments.append(_segment(characters, escaped))
    if segments[0] not in PATH_ROOTS:
        raise PathError(f"must start with one of {', '.join(PATH_ROOTS)}")
    return segments


def _scalar_error(value: object) -> str | None:
    if isinstance(value, dict | list):
        return f"must be a string, number, boolean or null, not {_a(value)}"
    return _storable_error(value)


def _storable_error(value: object) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if isinstance(value, str):
        return text_error(value)
    return None


def _value_errors(operator: str, value: object, place: str) -> dict[str, list[str]]:
    kind = json_type(value)
    if operator in ("eq", "ne"):
        error = _scalar_error(value)
    elif operator in ("in", "nin"):
        if not isinstance(value, list) or not value:
            error = ("must be a non-empty array of strings, numbers, booleans or nulls, not "
                     + ("an empty one" if isinstance(value, list) else _a(value)))
        else:
            return {f"{place}[{index}]": [error] for index, item in enumerate(value)
                    if (error := _scalar_error(item))}
    elif operator in ORDERINGS:
        error = (_storable_error(value) if kind in ("number", "string")
                 else f"must be a number or a string, not {_a(value)}")
    elif operator == "prefix":
        error = text_error(value) if kind == "string" else f"must be a string, not {_a(value)}"
    else:  # exists
        error = None if kind == "boolean" else f"must be true or false, not {_a(value)}"
    return {place: [error]} if error else {}


def _comparison_errors(node: dict, place: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    operators = [key for key in node if key in OPERATORS]
    unknown = [key for key in node if key != "path" and key not in OPERATORS]
    for key in unknown:
        errors[f"{place}.{key}"] = [f"unknown operator {key!r}; the operators are "
                                    f"{', '.join(OPERATORS + COMBINATORS)}"]
    path = node.get("path")
    if not isinstance(path, str):
        errors[f"{place}.path"] = ["missing: a comparison names a path, e.g. data.amount"
                                   if "path" not in node else
                                   f"must be a string, not {_a(path)}"]
    else:
        try:
            if error := text_error(path):
                raise PathError(error)
            parse_path(path)
        except PathError as error:
            errors[f"{place}.path"] = [str(error)]
    if len(operators) > 1:
        errors[place] = [f"has {len(operators)} operators ({', '.join(operators)}): one "
                         "per comparison, joined with all or any"]
    elif not operators and not unknown:
        errors[place] = [f"names no operator; one of {', '.join(OPERATORS)}"]
    for operator in operators:
        errors.update(_value_errors(operator, node[operator], f"{place}.{operator}"))
    return errors


def _node_errors(node: object, place: str, depth: int) -> dict[str, list[str]]:
    if not isinstance(node, dict):
        return {place: [f"{_SHAPE}, not {_a(node)}"]}
    combinators = [key for key in node if key in COMBINATORS]
    if not combinators:
        return _comparison_errors(node, place)
    if len(node) > 1:
        others = ", ".join(key for key in node if key != combinators[0])
        return {place: [f"{combinators[0]} must be the only key of its object, not with "
                        f"{others}"]}
    combinator = combinators[0]
    where = f"{place}.{combinator}"
    if depth >= MAX_FILTER_DEPTH:
        return {where: [f"nests deeper than {MAX_FILTER_DEPTH} levels of all, any and not"]}
    children = node[combinator]
    if combinator == "not":
        return _node_errors(children, where, depth + 1)
    if not isinstance(children, list) or not children:
        return {where: ["must be a non-empty array of filters"]}
    errors: dict[str, list[str]] = {}
    for index, child in enumerate(children):
        errors.update(_node_errors(child, f"{where}[{index}]", depth + 1))
    return errors


def filter_errors(value: object, place: str = "filter") -> dict[str, list[str]]:
    """Every rule a filter breaks, keyed by where (`filter.all[1].gt`); empty when valid.
    Its size is checked first, so the walk is over at most 4 KiB of JSON."""
    if json_size(value) > MAX_FILTER_BYTES:
        return {place: [f"must be at most {MAX_FILTER_BYTES} bytes as compact JSON"]}
    return _node_errors(value, place, 0)


def _literal(value: object) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same double
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)  # a jsonpath string takes JSON's escapes


def _accessor(path: str) -> str:
    return "$" + "".join(f"[{segment}]" if isinstance(segment, int)
                         else "." + json.dumps(segment, ensure_ascii=False)
                         for segment in parse_path(path))


def _true_only(predicate: str) -> str:
    """True when `predicate` is true; false when it is false or unknown."""
    return f"exists($ ? ({predicate}))"


def _comparison(node: dict) -> str:
    [operator] = [key for key in node if key in OPERATORS]
    value, accessor = node[operator], _accessor(node["path"])
    if operator in _JSONPATH_OPERATORS:
        return _true_only(f"{accessor} {_JSONPATH_OPERATORS[operator]} {_literal(value)}")
    if operator == "ne":
        return "!" + _comparison({"path": node["path"], "eq": value})
    if operator == "in":
        # One test of the path against every listed value, the path written once.
        alternatives = " || ".join(f"@ == {_literal(item)}" for item in value)
        return _true_only(f"exists({accessor} ? ({alternatives}))")
    if operator == "nin":
        return "!" + _comparison({"path": node["path"], "in": value})
    if operator == "prefix":
        return _true_only(f"{accessor} starts with {_literal(value)}")
    present = _true_only(f"exists({accessor})")
    return present if value else "!" + present


def _predicate(node: dict) -> str:
    if "all" in node:
        return "(" + " && ".join(_predicate(child) for child in node["all"]) + ")"
    if "any" in node:
        return "(" + " || ".join(_predicate(child) for child in node["any"]) + ")"
    if "not" in node:
        return f"!({_predicate(node['not'])})"
    return _comparison(node)


def to_jsonpath(value: dict) -> str:
    """The PostgreSQL jsonpath predicate of a valid filter (see `filter_errors`), true
    exactly when the filter matches the event body it is applied to with `@@`."""
    return "strict " + _predicate(value)
