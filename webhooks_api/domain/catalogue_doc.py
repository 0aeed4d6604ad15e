"""`python -m webhooks_api.domain.catalogue_doc [PATH]`: docs/EVENTS.md, generated from the
built-in catalogue so the documented list is the served one (a test keeps them equal)."""

from __future__ import annotations

import json
import sys
from itertools import groupby
from pathlib import Path

from webhooks_api.domain.catalogue import (
    BUILTIN_EVENT_TYPES,
    OPERATIONAL_CATEGORY,
    category,
    is_operational,
)

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md"

_HEADER = """# Event catalogue

Generated from `webhooks_api/domain/catalogue.py` by
`python -m webhooks_api.domain.catalogue_doc`; do not edit by hand. `GET /api/v1/webhooks/events`
serves the same list plus the tenant's own types.

The catalogue: {platform} standard types of a SaaS platform in {categories} categories, plus
the {operational} operational `webhook.*` types the service publishes itself. Each example is
the `data` such an event typically carries, not a rule: a built-in type accepts any JSON
object (register a type of your own to have its `data` checked against a JSON Schema).

Subscribe to an exact type, to `category.*` (every type of the category), or to `*` (every
type except the operational `webhook.*` ones, which a subscription receives only by naming
them or with `webhook.*`).
"""


def render() -> str:
    platform = [name for name in BUILTIN_EVENT_TYPES if not is_operational(name)]
    lines = [_HEADER.format(
        platform=len(platform), categories=len({category(name) for name in platform}),
        operational=len(BUILTIN_EVENT_TYPES) - len(platform))]
    for name, types in groupby(sorted(BUILTIN_EVENT_TYPES), key=category):
        note = " (operational: not matched by `*`)" if name == OPERATIONAL_CATEGORY else ""
        lines += [f"## `{name}.*`{note}", "", "| type | when | example `data` |", "|---|---|---|"]
        for event_type in types:
            entry = BUILTIN_EVENT_TYPES[event_type]
            example = json.dumps(entry.example, ensure_ascii=False)
            lines.append(f"| `{event_type}` | {entry.description} | `{example}` |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT_PATH
    path.write_text(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
