"""Background work: a queue, and the one base every task runs through.

The workers import no domain. Domains register their task bodies in their own ``tasks``
module (``knowledge.tasks``, ``nlu.tasks``), which the registry imports by name from
``Settings.task_modules``.

    context.py         what a body is given: settings, the ``Journal``, shared ``Resources``
    registry.py        ``@task``, and the bodies by name (loaded from ``task_modules``)
    base.py            the one base every task shares: time limit, retries with backoff,
                       dead letters, logs, metrics, version gating
    dead_letters.py    retrying a dead letter, the same for every queue
    queue.py           the ``TaskQueue`` protocol, ``get_queue``, ``wait_until_applied``
    embedded.py        the default queue: SQLite and a worker thread, no server
    sqlite_journal.py  its tasks, states, dead letters and versions in one SQLite file
    celery_app.py      the Celery queue and worker app (Redis broker)
    redis_journal.py   task states, keys, dead letters and versions in Redis (Celery)
    kafka.py           change events from Kafka into the queue, and the publisher
    service.py         entry points for the CLI and the editor
    cli.py             ``parley worker``, ``parley kafka``, ``parley tasks``
    router.py, deps.py the admins' dead-letter routes
"""
