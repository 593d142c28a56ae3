"""Background work that keeps the knowledge fresh.

    base.py           the one base every task shares: time limit, retries with backoff,
                      dead letters, logs, metrics, version gating
    tasks.py          the task bodies, one service call each
    queue.py          the ``TaskQueue`` protocol, ``get_queue``, ``wait_until_applied``
    embedded.py       the default queue: SQLite and a worker thread, no server
    celery_app.py     the Celery queue and worker app (Redis broker)
    redis_journal.py  task states, keys, dead letters and versions in Redis (Celery)
    kafka.py          change events from Kafka into the queue, and the publisher
    service.py        entry points for the CLI and the editor
"""
