"""The worker side of the queue: the Celery entry point, the persist task and the periodic
steps every worker runs. Ingestion sends the persist task by name (`app.queue.PERSIST_TASK`)."""
