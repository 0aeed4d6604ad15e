"""Webhook delivery service: the Flask REST API (`flask --app webhooks_api`)."""

from .app import create_app

__all__ = ["create_app"]
