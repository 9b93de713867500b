"""The Celery app: Redis broker, late acks (a task whose worker dies is delivered again), beat."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _require_secret_key(sender: Celery, **kwargs: object) -> None:
    """A worker signs nothing today, but runs with production settings: refuse a missing key."""
    from django.conf import settings

    settings.SECRET_KEY  # noqa: B018
