"""Settings for the Celery worker processes that the integration tests start.

The test settings make tasks eager and point Stripe at a placeholder; a real worker must
publish its follow-up tasks (retries, notifications) to Redis and reach the emulator the test
started, so both come from the environment the fixture gives the worker.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_TASK_ALWAYS_EAGER = False
STRIPE_API_BASE = os.environ["STRIPE_API_BASE"]
# kombu looks for messages whose worker died every `interval * throttle` seconds (100 s by
# default); the tests wait for one such sweep, so it looks every second.  The visibility
# timeout itself still comes from CELERY_VISIBILITY_TIMEOUT, as in production.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
