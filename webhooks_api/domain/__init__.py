"""The rules of the domain: the data model, the event catalogue, identifiers, JSON values,
secrets, custom headers and which target URLs are allowed (SSRF). No Celery, no HTTP views."""
