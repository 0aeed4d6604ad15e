"""Use cases over an explicit session. They raise domain errors (webhooks_api.errors)."""
