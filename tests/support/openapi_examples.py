"""A JSON example of the documentation checked against the OpenAPI 3.0 document the
service serves: the schema of the operation's request body or response, its components
resolved, read as JSON Schema.

OpenAPI 3.0 differs from JSON Schema in `nullable`, turned into a `null` type here. An
example may leave optional fields out but may not add any: every object that lists its
properties is closed, so an example with a renamed field (`checks` for `dependencies`)
fails even when the field is optional.
"""

from __future__ import annotations

import copy

import jsonschema


def _as_json_schema(node):
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _as_json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


def operation_schema(spec: dict, method: str, path: str, part: str,
                     status: str | None) -> dict:
    """The JSON Schema of `part` ('request' or 'response' with `status`) of an operation."""
    operation = spec["paths"][path][method]
    body = operation["requestBody"] if part == "request" else operation["responses"][status]
    if "$ref" in body:  # a shared response (the errors): #/components/responses/NAME
        body = spec["components"]["responses"][body["$ref"].rsplit("/", 1)[1]]
    schema = body["content"]["application/json"]["schema"]
    return {"allOf": [_as_json_schema(copy.deepcopy(schema))],
            "components": _as_json_schema(copy.deepcopy(spec["components"]))}


def validate(example: object, spec: dict, method: str, path: str, part: str,
             status: str | None) -> None:
    """Raise jsonschema.ValidationError (or KeyError for an unknown operation)."""
    schema = operation_schema(spec, method, path, part, status)
    jsonschema.Draft4Validator(schema).validate(example)
