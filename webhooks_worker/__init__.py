"""Celery workers: fan-out (`webhooks.publish`), delivery (`webhooks.deliver`) and the
sweep (`webhooks.sweep`). Run with `celery -A webhooks_worker.celery_app worker`.

Module developers publish with `from webhooks_worker.tasks import publish` and
`publish.delay(event_type, event_data, tenant_id)`.
"""
