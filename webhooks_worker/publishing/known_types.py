"""Tenants' custom event types remembered per worker process, so that publishing one
reads nothing before the statement that stores it (and its schema is compiled once).

Only types that were found are remembered: a type registered a moment ago is looked up,
never refused from memory. A remembered type is checked by the publish statement itself
(it stores the event only while the row with that primary key exists, and registered rows
are never changed in place); when the check fails, the caller forgets it and reads afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy.orm import Session

from webhooks_api.services.events import CustomType, custom_type

# Bounded: a worker serving many tenants keeps the types it used last.
MAX_REMEMBERED = 4096

_remembered: OrderedDict[tuple[str, str], CustomType] = OrderedDict()
_lock = threading.Lock()


def lookup(session: Session, tenant_id: str, name: str) -> CustomType | None:
    """The remembered type, else read afresh (and remembered when found)."""
    key = (tenant_id, name)
    with _lock:
        if (known := _remembered.get(key)) is not None:
            _remembered.move_to_end(key)
            return known
    found = custom_type(session, tenant_id, name)
    if found is not None:
        with _lock:
            _remembered[key] = found
            if len(_remembered) > MAX_REMEMBERED:
                _remembered.popitem(last=False)
    return found


def forget(tenant_id: str, name: str) -> None:
    with _lock:
        _remembered.pop((tenant_id, name), None)
