"""Everything between the API and the worker that travels through the broker: task and queue
names, the Celery app glue, enqueue-after-commit, the Redis batch sender and transport,
Flower labels."""
