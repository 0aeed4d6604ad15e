"""Bulk retry jobs: re-send many deliveries at once, follow the job, cancel it."""

from flask.views import MethodView

from webhooks_api.auth import current_tenant_id
from webhooks_api.config import current_settings
from webhooks_api.extensions import db
from webhooks_api.http.bulk_retry_schemas import BulkRetryCreateSchema, BulkRetrySchema
from webhooks_api.http.schemas import IdempotencyHeadersSchema
from webhooks_api.http.views.base import ApiBlueprint
from webhooks_api.services import bulk_retries as service

blp = ApiBlueprint("bulk_retries", __name__,
                   description="Re-send many deliveries at once, as a job")


@blp.route("/bulk-retries")
class BulkRetries(MethodView):
    @blp.arguments(BulkRetryCreateSchema, example={
        "status": "failed", "since": "2026-11-30T00:00:00Z", "until": "2026-12-01T00:00:00Z",
        "event_type": "invoice.created"})
    @blp.arguments(IdempotencyHeadersSchema, location="headers", as_kwargs=True)
    @blp.response(202, BulkRetrySchema)
    def post(self, payload, idempotency_key=None):
        """Start a job that re-sends the matching deliveries of active subscriptions.

        Oldest first, each as a manual re-send, at most WEBHOOKS_BULK_RETRY_PER_SECOND a
        second for the tenant. The window is at most 14 days (422 past it). A repeat with
        the same Idempotency-Key answers the job it created."""
        return service.create_bulk_retry(db.session, current_settings(), current_tenant_id(),
                                         service.RetryFilter(**payload), idempotency_key)


@blp.route("/bulk-retries/<string:bulk_retry_id>")
class BulkRetryById(MethodView):
    @blp.response(200, BulkRetrySchema)
    @blp.errors(404)
    def get(self, bulk_retry_id):
        """Read a job's progress."""
        return service.get_bulk_retry(db.session, current_tenant_id(), bulk_retry_id)


@blp.route("/bulk-retries/<string:bulk_retry_id>/cancel")
class CancelBulkRetry(MethodView):
    @blp.response(202, BulkRetrySchema)
    @blp.errors(404, 409)
    def post(self, bulk_retry_id):
        """Cancel a job: nothing more is queued; re-sends already queued still go.

        Again on a cancelled job: 202, nothing changes; on a done one: 409."""
        return service.cancel_bulk_retry(db.session, current_tenant_id(), bulk_retry_id)
