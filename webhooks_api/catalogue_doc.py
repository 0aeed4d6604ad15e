"""`python -m webhooks_api.catalogue_doc [PATH]`: docs/EVENTS.md, generated from the
built-in catalogue so the documented list is the served one (a test keeps them equal)."""

from __future__ import annotations

import sys
from itertools import groupby
from pathlib import Path

from .catalogue import BUILTIN_EVENT_TYPES, OPERATIONAL_CATEGORY, category

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "docs" / "EVENTS.md"

_HEADER = """# Event catalogue

Generated from `webhooks_api/catalogue.py` by `python -m webhooks_api.catalogue_doc`; do not
edit by hand. `GET /api/v1/webhooks/events` serves the same list plus the tenant's own types.

Subscribe to an exact type, to `category.*` (every type of the category), or to `*` (every
type except the operational `webhook.*` ones, which a subscription receives only by naming
them or with `webhook.*`).
"""


def render() -> str:
    lines = [_HEADER]
    for name, types in groupby(sorted(BUILTIN_EVENT_TYPES), key=category):
        note = " (operational: not matched by `*`)" if name == OPERATIONAL_CATEGORY else ""
        lines += [f"## `{name}.*`{note}", "", "| type | when |", "|---|---|"]
        lines += [f"| `{event_type}` | {BUILTIN_EVENT_TYPES[event_type]} |"
                  for event_type in types]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT_PATH
    path.write_text(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
