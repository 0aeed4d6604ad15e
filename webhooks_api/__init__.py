"""Webhook delivery service: the Flask REST API (`flask --app webhooks_api`)."""

from webhooks_api.app import create_app

__all__ = ["create_app"]
