"""The built-in event catalogue and the filter rules of DESIGN.md ("Event types").

Filters: an exact type; `category.*` (every type whose first segment is `category`); `*`
(every type except the operational `webhook.*` ones, which a subscription gets only by
naming them or with `webhook.*`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPERATIONAL_CATEGORY = "webhook"


@dataclass(frozen=True)
class BuiltinType:
    """When a built-in type is published, and a `data` object it typically carries
    (docs/EVENTS.md shows it). The example is not a schema: a built-in type accepts any JSON
    object, so no publisher is refused for a field it sends differently."""

    description: str
    example: dict


_T = BuiltinType
BUILTIN_EVENT_TYPES: dict[str, BuiltinType] = {
    # Billing
    "invoice.created": _T("An invoice was created.", {
        "invoice_id": "inv_42", "customer_id": "cus_7", "amount": 4200, "currency": "eur",
        "due_date": "2026-12-31"}),
    "invoice.paid": _T("An invoice was paid.", {
        "invoice_id": "inv_42", "payment_id": "pay_9", "amount_paid": 4200, "currency": "eur"}),
    "invoice.payment_failed": _T("A payment attempt for an invoice failed.", {
        "invoice_id": "inv_42", "payment_id": "pay_10", "failure_code": "card_declined",
        "next_attempt_at": "2026-12-03T09:00:00Z"}),
    "invoice.voided": _T("An invoice was voided.", {
        "invoice_id": "inv_42", "reason": "duplicate"}),
    "invoice.overdue": _T("An invoice passed its due date unpaid.", {
        "invoice_id": "inv_42", "customer_id": "cus_7", "amount_due": 4200, "currency": "eur",
        "due_date": "2026-12-31", "days_overdue": 1}),
    "credit_note.created": _T("A credit note was issued against an invoice.", {
        "credit_note_id": "cn_3", "invoice_id": "inv_42", "amount": 1200, "currency": "eur",
        "reason": "order_change"}),
    "credit_note.voided": _T("A credit note was voided.", {
        "credit_note_id": "cn_3", "invoice_id": "inv_42"}),
    "payment.succeeded": _T("A payment succeeded.", {
        "payment_id": "pay_9", "invoice_id": "inv_42", "amount": 4200, "currency": "eur",
        "payment_method_id": "pm_5"}),
    "payment.failed": _T("A payment failed.", {
        "payment_id": "pay_10", "amount": 4200, "currency": "eur",
        "failure_code": "insufficient_funds", "failure_message": "The card has insufficient "
        "funds."}),
    "payment.refunded": _T("A payment was refunded.", {
        "payment_id": "pay_9", "refund_id": "re_2", "amount_refunded": 4200, "currency": "eur"}),
    "payment.disputed": _T("A customer disputed a payment (a chargeback was opened).", {
        "payment_id": "pay_9", "dispute_id": "dp_1", "amount": 4200, "currency": "eur",
        "reason": "fraudulent", "evidence_due_by": "2026-12-15T00:00:00Z"}),
    "payment_method.attached": _T("A payment method was added to a customer.", {
        "payment_method_id": "pm_5", "customer_id": "cus_7", "type": "card", "brand": "visa",
        "last4": "4242", "exp_month": 12, "exp_year": 2028}),
    "payment_method.updated": _T("A payment method's details (expiry, billing address) "
                                 "changed.", {
        "payment_method_id": "pm_5", "customer_id": "cus_7", "changed": ["exp_year"]}),
    "payment_method.detached": _T("A payment method was removed from a customer.", {
        "payment_method_id": "pm_5", "customer_id": "cus_7"}),
    "payment_method.expiring": _T("A card expires at the end of next month.", {
        "payment_method_id": "pm_5", "customer_id": "cus_7", "exp_month": 12,
        "exp_year": 2026}),
    "subscription.created": _T("A billing subscription was created.", {
        "subscription_id": "bsub_8", "customer_id": "cus_7", "plan": "pro", "quantity": 5,
        "current_period_end": "2026-12-31T00:00:00Z"}),
    "subscription.updated": _T("A billing subscription was updated.", {
        "subscription_id": "bsub_8", "changed": {"plan": ["pro", "business"]}}),
    "subscription.cancelled": _T("A billing subscription was cancelled.", {
        "subscription_id": "bsub_8", "cancelled_at": "2026-11-28T12:00:00Z",
        "ends_at": "2026-12-31T00:00:00Z", "reason": "customer_request"}),
    "subscription.renewed": _T("A billing subscription was renewed.", {
        "subscription_id": "bsub_8", "invoice_id": "inv_43",
        "current_period_end": "2027-01-31T00:00:00Z"}),
    "subscription.trial_ending": _T("A billing subscription's trial ends soon.", {
        "subscription_id": "bsub_8", "trial_ends_at": "2026-12-01T00:00:00Z"}),
    # Customers, users and tenants
    "customer.created": _T("A customer was created.", {
        "customer_id": "cus_7", "email": "billing@example.com", "name": "Example GmbH"}),
    "customer.updated": _T("A customer was updated.", {
        "customer_id": "cus_7", "changed": ["email"]}),
    "customer.deleted": _T("A customer was deleted.", {"customer_id": "cus_7"}),
    "user.registered": _T("A user registered.", {
        "user_id": "usr_11", "email": "ada@example.com", "invited_by": None}),
    "user.updated": _T("A user was updated.", {"user_id": "usr_11", "changed": ["name"]}),
    "user.deleted": _T("A user was deleted.", {"user_id": "usr_11"}),
    "user.login": _T("A user logged in.", {
        "user_id": "usr_11", "ip_address": "203.0.113.7", "method": "password", "mfa": True}),
    "user.password_changed": _T("A user's password was changed or reset.", {
        "user_id": "usr_11", "via": "reset_link"}),
    "user.role_changed": _T("A user's role in the tenant changed.", {
        "user_id": "usr_11", "previous_role": "member", "role": "admin",
        "changed_by": "usr_1"}),
    "tenant.created": _T("A tenant (an organisation account of the platform) was created.", {
        "tenant_id": "tenant_xyz", "name": "Example GmbH", "plan": "pro"}),
    "tenant.updated": _T("A tenant's settings or plan changed.", {
        "tenant_id": "tenant_xyz", "changed": {"plan": ["pro", "business"]}}),
    "tenant.suspended": _T("A tenant was suspended (e.g. for non-payment).", {
        "tenant_id": "tenant_xyz", "reason": "unpaid_invoice", "invoice_id": "inv_42"}),
    "tenant.reactivated": _T("A suspended tenant was reactivated.", {
        "tenant_id": "tenant_xyz"}),
    "api_key.created": _T("An API key of the platform was created (never the key itself).", {
        "api_key_id": "ak_4", "name": "ci-deploy", "prefix": "pk_live_3f9a",
        "created_by": "usr_11", "expires_at": None}),
    "api_key.revoked": _T("An API key of the platform was revoked.", {
        "api_key_id": "ak_4", "revoked_by": "usr_1", "reason": "rotated"}),
    # Messaging
    "email.sent": _T("An email was sent.", {
        "email_id": "eml_21", "to": "ada@example.com", "template": "invoice_created",
        "subject": "Your invoice inv_42"}),
    "email.delivered": _T("An email was delivered.", {
        "email_id": "eml_21", "delivered_at": "2026-11-28T12:00:04Z"}),
    "email.bounced": _T("An email bounced.", {
        "email_id": "eml_21", "bounce_type": "hard", "diagnostic": "550 5.1.1 user unknown"}),
    "email.failed": _T("An email could not be sent.", {
        "email_id": "eml_22", "error": "template_render_failed"}),
    "bulk_email.completed": _T("A bulk email run completed.", {
        "campaign_id": "cmp_5", "recipients": 1200, "sent": 1187, "failed": 13}),
    "bulk_email.failed": _T("A bulk email run failed.", {
        "campaign_id": "cmp_6", "error": "sender_domain_unverified", "sent": 0}),
    # Files and storage
    "file.uploaded": _T("A file was uploaded.", {
        "file_id": "file_17", "name": "contract.pdf", "size_bytes": 184320,
        "content_type": "application/pdf", "uploaded_by": "usr_11"}),
    "file.deleted": _T("A file was deleted.", {"file_id": "file_17", "deleted_by": "usr_11"}),
    "file.scan_completed": _T("A file's malware scan completed.", {
        "file_id": "file_17", "result": "clean", "engine": "clamav"}),
    "storage.quota_exceeded": _T("A storage quota was exceeded.", {
        "used_bytes": 10737418240, "quota_bytes": 10737418240, "plan": "pro"}),
    # Data movement
    "import.completed": _T("An import completed.", {
        "import_id": "imp_2", "source": "customers.csv", "rows_imported": 980,
        "rows_rejected": 20}),
    "import.failed": _T("An import failed.", {
        "import_id": "imp_3", "source": "customers.csv", "error": "header row missing"}),
    "export.completed": _T("An export completed.", {
        "export_id": "exp_4", "format": "csv", "rows": 5400, "file_id": "file_18",
        "expires_at": "2026-12-05T12:00:00Z"}),
    "export.failed": _T("An export failed.", {"export_id": "exp_5", "error": "timeout"}),
    # Analytics and reports
    "metric.threshold_exceeded": _T("A metric crossed its threshold.", {
        "metric": "api_error_rate", "value": 0.071, "threshold": 0.05,
        "window_seconds": 300}),
    "metric.threshold_recovered": _T("A metric that crossed its threshold is back within "
                                     "it.", {
        "metric": "api_error_rate", "value": 0.012, "threshold": 0.05,
        "exceeded_for_seconds": 840}),
    "report.generated": _T("A report was generated.", {
        "report_id": "rep_12", "name": "Monthly revenue", "format": "pdf",
        "file_id": "file_19", "period": "2026-11"}),
    "report.failed": _T("A report could not be generated.", {
        "report_id": "rep_13", "name": "Monthly revenue", "error": "query timed out"}),
    "report.scheduled": _T("A report was scheduled to run regularly.", {
        "schedule_id": "rsch_2", "name": "Monthly revenue", "cron": "0 6 1 * *",
        "recipients": ["finance@example.com"]}),
    "report.schedule_cancelled": _T("A report's schedule was cancelled.", {
        "schedule_id": "rsch_2", "cancelled_by": "usr_1"}),
    "report.delivered": _T("A scheduled report was sent to its recipients.", {
        "report_id": "rep_12", "schedule_id": "rsch_2",
        "recipients": ["finance@example.com"]}),
    # Security and compliance
    "security.alert": _T("A security alert was raised.", {
        "alert_id": "sec_3", "severity": "high", "kind": "impossible_travel",
        "user_id": "usr_11"}),
    "compliance.violation": _T("A compliance violation was detected.", {
        "violation_id": "cmpl_1", "policy": "data_retention", "resource": "file_17"}),
    # Support
    "ticket.created": _T("A support ticket was created.", {
        "ticket_id": "tkt_31", "subject": "Cannot download invoice", "priority": "normal",
        "requester_id": "usr_11"}),
    "ticket.updated": _T("A support ticket was updated.", {
        "ticket_id": "tkt_31", "changed": {"status": ["open", "pending"]}}),
    "ticket.closed": _T("A support ticket was closed.", {
        "ticket_id": "tkt_31", "resolution": "solved"}),
    "ticket.sla_breach": _T("A support ticket breached its SLA.", {
        "ticket_id": "tkt_31", "sla": "first_response", "due_at": "2026-11-28T16:00:00Z"}),
    # Operational: published by the service itself, not matched by `*`.
    "webhook.test": _T("A test event sent on request to check an endpoint.", {
        "subscription_id": "sub_3kTq9Xb2mWc8YvLpRz4nHd0e",
        "message": "A test event sent on request to check this endpoint."}),
    "webhook.subscription.failing": _T("A subscription has been failing for a while.", {
        "subscription_id": "sub_3kTq9Xb2mWc8YvLpRz4nHd0e", "url": "https://example.com/hooks",
        "consecutive_failures": 10, "failing_since": "2026-11-28T09:00:00Z"}),
    "webhook.subscription.disabled": _T("A subscription was disabled by the service.", {
        "subscription_id": "sub_3kTq9Xb2mWc8YvLpRz4nHd0e", "url": "https://example.com/hooks",
        "consecutive_failures": 1, "failing_since": "2026-11-28T09:00:00Z",
        "disabled_reason": "the endpoint answered 410 Gone "
                           "(delivery dlv_8fJk2LmN0pQr4StUv6WxYz1a)"}),
    "webhook.subscription.recovered": _T("A failing subscription delivered again: the first "
                                         "success after its failing warning.", {
        "subscription_id": "sub_3kTq9Xb2mWc8YvLpRz4nHd0e", "url": "https://example.com/hooks",
        "delivery_id": "dlv_8fJk2LmN0pQr4StUv6WxYz1a"}),
    "webhook.subscription.secret_rotated": _T("A subscription's signing secret was rotated "
                                              "(never the secret itself).", {
        "subscription_id": "sub_3kTq9Xb2mWc8YvLpRz4nHd0e", "rotated_at": "2026-11-28T12:00:00Z",
        "previous_secret_expires_at": "2026-11-29T12:00:00Z"}),
    "webhook.delivery.exhausted": _T("A delivery failed its last scheduled attempt; nothing "
                                     "retries it unless it is re-sent.", {
        "subscription_id": "sub_3kTq9Xb2mWc8YvLpRz4nHd0e",
        "delivery_id": "dlv_8fJk2LmN0pQr4StUv6WxYz1a", "event_id": "evt_5hGt7Kd9Lm2Np4Qr6St8Vw0x",
        "event_type": "invoice.created", "attempt_count": 4, "last_response_status": 503,
        "last_error": "HTTP 503"}),
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
