"""Settings for the Celery worker processes that the integration tests start.

The test settings make tasks eager and point Stripe at a placeholder; a real worker must
publish its follow-up tasks (retries, notifications) to Redis and reach the emulator the test
started, so both come from the environment the fixture gives the worker.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import BILLING_SMS_BACKEND, CELERY_BROKER_TRANSPORT_OPTIONS, EMAIL_BACKEND

CELERY_TASK_ALWAYS_EAGER = False
STRIPE_API_BASE = os.environ["STRIPE_API_BASE"]
# How the worker sends emails and text messages, from the environment the fixture gives it (the
# test settings fix both to in-memory backends, which a test in another process can't read).
# Their folders (DJANGO_EMAIL_FILE_PATH, BILLING_SMS_FILE_PATH), Twilio's TWILIO_* and the
# BILLING_POLICY (JSON) are read from the environment by portal/settings.py already.
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", EMAIL_BACKEND)
BILLING_SMS_BACKEND = os.environ.get("BILLING_SMS_BACKEND", BILLING_SMS_BACKEND)
# kombu looks for messages whose worker died every `interval * throttle` seconds (100 s by
# default); the tests wait for one such sweep, so it looks every second.  The visibility
# timeout itself still comes from CELERY_VISIBILITY_TIMEOUT, as in production.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
