"""Settings, all from the environment (django-environ), with defaults that are safe.

Without DJANGO_DEBUG=1 the site runs in production mode: a secret key must be given and
HTTPS, secure cookies and HSTS are on.  `make demo` and the tests set what they need.
"""

from __future__ import annotations

from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.utils.translation import gettext_lazy as _
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Without DJANGO_SECRET_KEY in production mode the key stays empty: commands that don't sign
# anything (makemigrations, collectstatic) still run, while serving refuses to start
# (portal/wsgi.py, asgi.py and celery.py read the key first, and Django rejects an empty one).
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY and DEBUG:
    # Development only: a fixed key so sessions survive restarts of `make demo`.
    SECRET_KEY = "django-insecure-development-only-key-not-for-production-use"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "allauth",
    "allauth.account",
    "csp",
    "billing",
    "portal",
]
# Development tools (`manage.py demo`, the mailbox at /dev/mailbox/) are not part of a deployment.
if DEBUG:
    INSTALLED_APPS.append("portal.dev")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.CustomerMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "portal.context_processors.portal",
                "billing.access.context",
            ],
        },
    },
    {
        # Messages' plain-text parts (email, SMS, in-app lines): rendered without HTML escaping.
        "NAME": "text",
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {"autoescape": False},
    },
]

# --------------------------------------------------------------------------- data

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=0))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --------------------------------------------------------------------------- accounts

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "portal:dashboard"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_ADAPTER = "portal.accounts.AccountAdapter"
ACCOUNT_EMAIL_SUBJECT_PREFIX = env.str("ACCOUNT_EMAIL_SUBJECT_PREFIX", default="")
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"

# --------------------------------------------------------------------------- languages

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("sv", _("Swedish")), ("nl", _("Dutch"))]
# Ours, then the informal Dutch of the few Django texts a customer meets (Django says "u", we and
# allauth say "je").
LOCALE_PATHS = [BASE_DIR / "locale", BASE_DIR / "portal" / "locale_overrides"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"
# The customer's wall clock for dates shown to them; stored values stay UTC.
PORTAL_DISPLAY_TIME_ZONE = env.str("PORTAL_DISPLAY_TIME_ZONE", default="Europe/Stockholm")

# --------------------------------------------------------------------------- static and email

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "DJANGO_STATICFILES_STORAGE",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage",
        )
    },
}

DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Billing <billing@example.com>")
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND",
    default="django.core.mail.backends.filebased.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
# Where the development mailbox (/dev/mailbox/) reads what the file backend wrote.
EMAIL_FILE_PATH = env.path("DJANGO_EMAIL_FILE_PATH", default=BASE_DIR / "var" / "mailbox")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")

# --------------------------------------------------------------------------- security

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
_HTTPS = env.bool("DJANGO_HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = _HTTPS
SESSION_COOKIE_SECURE = _HTTPS
CSRF_COOKIE_SECURE = _HTTPS
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000 if _HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _HTTPS
SECURE_HSTS_PRELOAD = _HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --------------------------------------------------------------------------- Stripe

STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="sk_test_emulator")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="pk_test_emulator")
# Empty means Stripe itself; `make demo` and the tests point it at stripe_emulator.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_JS_URL = env.str("STRIPE_JS_URL", default="https://js.stripe.com/v3/")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# A worker's patience: a long timeout and network retries.
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# While a customer waits for the page: a short timeout and no retries (the change then waits).
STRIPE_INTERACTIVE_TIMEOUT_SECONDS = env.float("STRIPE_INTERACTIVE_TIMEOUT_SECONDS", default=3.0)
# Writes a second that jobs writing in bulk (`with gateway.paced():`) share across every worker
# (billing.ratelimit), well below Stripe's own limit (100 live, 25 in test mode); the burst is how
# many may go at once after an idle spell (empty: one second's worth).
BILLING_STRIPE_WRITE_RATE = env.float("BILLING_STRIPE_WRITE_RATE", default=10.0)
BILLING_STRIPE_WRITE_BURST = env.float("BILLING_STRIPE_WRITE_BURST", default=None)

# --------------------------------------------------------------------------- billing rules

# Overrides of the defaults in billing/policy.py, e.g. {"changes": {"max_attempts": 3}}.
BILLING_POLICY = env.json("BILLING_POLICY", default={})
# Where text messages go: billing.sms.TwilioSmsBackend sends them (TWILIO_* below);
# billing.sms.FileSmsBackend appends them to BILLING_SMS_FILE_PATH, where the development mailbox
# reads them; billing.channels.LocmemSmsBackend keeps them in memory (tests).
BILLING_SMS_BACKEND = env.str(
    "BILLING_SMS_BACKEND",
    default="billing.sms.FileSmsBackend" if DEBUG else "billing.channels.ConsoleSmsBackend",
)
BILLING_SMS_FILE_PATH = env.path("BILLING_SMS_FILE_PATH", default=BASE_DIR / "var" / "sms")
# Twilio's Messages API.  TWILIO_FROM is a sender number (E.164) or a messaging service ("MG…").
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM = env.str("TWILIO_FROM", default="")
# Empty means Twilio itself; the tests point it at a local stand-in (tests/support/twilio_standin.py).
TWILIO_API_BASE = env.str("TWILIO_API_BASE", default="")
# A worker's patience with one message; a message not taken by then waits for the outbox's retry.
TWILIO_TIMEOUT_SECONDS = env.float("TWILIO_TIMEOUT_SECONDS", default=10.0)

# --------------------------------------------------------------------------- Content-Security-Policy

# Our own origin only; portal.middleware.ContentSecurityPolicyMiddleware adds Stripe.js's origins
# (from STRIPE_JS_URL at the time of the request) to scripts, frames and connections.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "frame-src": [SELF],
        "connect-src": [SELF],
        "img-src": [SELF],
        "style-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --------------------------------------------------------------------------- Celery

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task whose worker died is delivered again after this many seconds (kombu's Redis transport).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
    # A worker takes from "urgent" whenever it has something, before "celery": a customer waiting
    # for news of a failed payment is not kept behind a burst of routine mirror updates.
    "queue_order_strategy": "priority",
}
# Every worker consumes both queues (no -Q needed); billing.tasks decides what is urgent.
CELERY_TASK_QUEUES = (Queue("urgent"), Queue("celery"))
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"billing.tasks.send_delivery": {"queue": "urgent"}}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "apply-pending-changes": {"task": "billing.tasks.apply_pending_changes", "schedule": 60.0},
    "process-pending-events": {"task": "billing.tasks.process_pending_events", "schedule": 60.0},
    "send-pending-deliveries": {"task": "billing.tasks.send_pending_deliveries", "schedule": 60.0},
    "resume-paused-subscriptions": {"task": "billing.tasks.resume_paused_subscriptions", "schedule": 60.0},
    "recovery-due": {"task": "billing.tasks.recovery_due", "schedule": 60.0},
    "extensions-due": {"task": "billing.tasks.extensions_due", "schedule": 60.0},
    "predunning-scan": {"task": "billing.tasks.predunning_scan", "schedule": crontab(hour=2, minute=7)},
    "reconcile-all-customers": {
        "task": "billing.tasks.reconcile_all_customers",
        "schedule": crontab(hour=3, minute=17),
    },
}

# --------------------------------------------------------------------------- logging

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "billing": {
            "handlers": ["console"],
            "level": env.str("BILLING_LOG_LEVEL", default="INFO"),
            # Celery's worker also logs what reaches the root logger: don't print every line twice.
            "propagate": False,
        },
        "stripe": {"handlers": ["console"], "level": "WARNING"},
    },
}
