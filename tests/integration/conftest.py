"""Fixtures for tests against the real services: PostgreSQL, Redis as the Celery broker, and
`celery worker` processes started (and killed) by the tests.

The worker is a separate process, so it only sees committed rows: every test here uses
`django_db(transaction=True)`, and the worker connects to the test database pytest-django made.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis

from stripe_emulator.app import Emulator
from tests.integration.support import FAST_RETRIES, REPO, VISIBILITY_TIMEOUT_SECONDS, Workers


def _database_url(db: dict[str, Any]) -> str:
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    return f"postgres://{credentials}{host}:{port}/{db['NAME']}"


def _forget_queued_tasks(client: redis.Redis) -> None:
    """Tasks a previous test left in the broker (queued, or unacked by a killed worker) would
    run against rows that no longer exist; only Celery's keys go, the cache's stay."""
    for pattern in ("celery*", "unacked*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)


@pytest.fixture()
def broker(transactional_db: None, settings: Any) -> Iterator[redis.Redis]:
    """Tasks published by this process go to Redis (not run eagerly), for the worker to take."""
    from portal.celery import app

    url = os.environ["REDIS_URL"]
    client = redis.Redis.from_url(url)
    _forget_queued_tasks(client)
    # Read before the settings change: Celery reads its configuration from them on first use, and
    # would otherwise remember "not eager" as what to restore.
    was_eager = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = False
    # Celery read its configuration from the settings once; the override must reach it too.
    app.conf.task_always_eager = False
    try:
        yield client
    finally:
        app.conf.task_always_eager = was_eager
        _forget_queued_tasks(client)
        client.close()


@pytest.fixture()
def worker_env() -> dict[str, str]:
    """More environment for this test's workers, on top of (and overriding) the fixture's: a test
    module overrides this fixture to give its workers other transports for emails and text
    messages (tests/integration/worker_settings.py reads them) or another BILLING_POLICY."""
    return {}


@pytest.fixture()
def workers(
    broker: redis.Redis,
    stripe_emulated: Emulator,
    settings: Any,
    request: pytest.FixtureRequest,
    worker_env: dict[str, str],
) -> Iterator[Workers]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        # The test database pytest-django created, not the one named in DATABASE_URL.
        "DATABASE_URL": _database_url(settings.DATABASES["default"]),
        "REDIS_URL": os.environ["REDIS_URL"],
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_SECONDS),
        "STRIPE_API_BASE": stripe_emulated.url,
        # Short waits between tries, so that a retry comes within a test (production: billing/policy.py).
        "BILLING_POLICY": json.dumps(FAST_RETRIES),
        # The test settings' transports (kept in the worker's memory), whatever the shell exports;
        # a test that reads what the worker sent gives its own in `worker_env`.
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "BILLING_SMS_BACKEND": "billing.channels.LocmemSmsBackend",
        **worker_env,
    }
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    pool = Workers(env=env, name=name)
    try:
        yield pool
    finally:
        # Before the database is flushed: a worker holding a row lock would block the flush.
        pool.stop_all()


@pytest.fixture()
def stoppable_emulator(stripe_emulated: Emulator) -> Iterator[Emulator]:
    """The emulator, which the test may stop (Stripe unreachable); it runs again afterwards."""
    try:
        yield stripe_emulated
    finally:
        if stripe_emulated.server is None:
            stripe_emulated.start()
