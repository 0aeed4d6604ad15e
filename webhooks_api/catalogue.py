"""The built-in event catalogue and the filter rules of DESIGN.md ("Event types").

Filters: an exact type; `category.*` (every type whose first segment is `category`); `*`
(every type except the operational `webhook.*` ones, which a subscription gets only by
naming them or with `webhook.*`).
"""

from __future__ import annotations

import re

OPERATIONAL_CATEGORY = "webhook"

BUILTIN_EVENT_TYPES: dict[str, str] = {
    "invoice.created": "An invoice was created.",
    "invoice.paid": "An invoice was paid.",
    "invoice.payment_failed": "A payment attempt for an invoice failed.",
    "invoice.voided": "An invoice was voided.",
    "payment.succeeded": "A payment succeeded.",
    "payment.failed": "A payment failed.",
    "payment.refunded": "A payment was refunded.",
    "subscription.created": "A billing subscription was created.",
    "subscription.updated": "A billing subscription was updated.",
    "subscription.cancelled": "A billing subscription was cancelled.",
    "subscription.renewed": "A billing subscription was renewed.",
    "subscription.trial_ending": "A billing subscription's trial ends soon.",
    "customer.created": "A customer was created.",
    "customer.updated": "A customer was updated.",
    "customer.deleted": "A customer was deleted.",
    "user.registered": "A user registered.",
    "user.updated": "A user was updated.",
    "user.deleted": "A user was deleted.",
    "user.login": "A user logged in.",
    "email.sent": "An email was sent.",
    "email.delivered": "An email was delivered.",
    "email.bounced": "An email bounced.",
    "email.failed": "An email could not be sent.",
    "bulk_email.completed": "A bulk email run completed.",
    "bulk_email.failed": "A bulk email run failed.",
    "file.uploaded": "A file was uploaded.",
    "file.deleted": "A file was deleted.",
    "file.scan_completed": "A file's malware scan completed.",
    "storage.quota_exceeded": "A storage quota was exceeded.",
    "import.completed": "An import completed.",
    "import.failed": "An import failed.",
    "export.completed": "An export completed.",
    "export.failed": "An export failed.",
    "metric.threshold_exceeded": "A metric crossed its threshold.",
    "report.generated": "A report was generated.",
    "security.alert": "A security alert was raised.",
    "compliance.violation": "A compliance violation was detected.",
    "ticket.created": "A support ticket was created.",
    "ticket.updated": "A support ticket was updated.",
    "ticket.closed": "A support ticket was closed.",
    "ticket.sla_breach": "A support ticket breached its SLA.",
    "webhook.test": "A test event sent on request to check an endpoint.",
    "webhook.subscription.failing": "A subscription has been failing for a while.",
    "webhook.subscription.disabled": "A subscription was disabled by the service.",
}

# Lower-case dotted names: "invoice.created", "acme.order.shipped".
EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_CATEGORY_FILTER = re.compile(r"^[a-z][a-z0-9_]*\.\*$")


def category(event_type: str) -> str:
    return event_type.split(".", 1)[0]


def is_operational(event_type: str) -> bool:
    return category(event_type) == OPERATIONAL_CATEGORY


def is_filter_pattern(value: str) -> bool:
    """True for the wildcard forms `*` and `category.*`."""
    return value == "*" or bool(_CATEGORY_FILTER.match(value))


def filters_matching(event_type: str) -> list[str]:
    """Every filter value that selects `event_type`; the fan-out query looks these up."""
    filters = [event_type, f"{category(event_type)}.*"]
    if not is_operational(event_type):
        filters.append("*")
    return filters


def matches(event_filter: str, event_type: str) -> bool:
    return event_filter in filters_matching(event_type)
