"""Settings for the test suite: production settings with test-only keys, local email and eager tasks.

DATABASE_URL / REDIS_URL come from the environment (CI: PostgreSQL and Redis); without them
the suite uses SQLite.  Tests that need the real services are marked `services`.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DJANGO_HTTPS", "0")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("DJANGO_STATICFILES_STORAGE", "django.contrib.staticfiles.storage.StaticFilesStorage")

from portal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
# The emulator's address is set per session by tests/conftest.py; never Stripe itself.
STRIPE_API_BASE = "http://127.0.0.1:9"
STRIPE_WEBHOOK_SECRET = "whsec_tests_only"
STRIPE_MAX_NETWORK_RETRIES = 0
STRIPE_TIMEOUT_SECONDS = 5.0
ACCOUNT_RATE_LIMITS = False
STRIPE_INTERACTIVE_TIMEOUT_SECONDS = 3.0
BILLING_SMS_BACKEND = "billing.channels.LocmemSmsBackend"
