"""The REST API, the console and `/metrics` over HTTP: views, schemas, the gunicorn config.
Views call services; they never send messages or touch the model directly."""
