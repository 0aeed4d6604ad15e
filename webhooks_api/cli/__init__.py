"""`flask --app webhooks_api ...` commands: tenants and keys, operator commands, `listen`."""
