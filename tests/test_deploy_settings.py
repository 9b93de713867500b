"""Production settings: `manage.py check --deploy` passes, and unsafe configurations refuse to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "STRIPE_", "DATABASE_URL", "REDIS_URL"))
    }
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


PRODUCTION = {
    "DJANGO_SECRET_KEY": "a-production-secret-key-for-the-check-only-8f3kq0c7m1x5z2w9v4b6n8j0",
    "DJANGO_ALLOWED_HOSTS": "billing.example.com",
    "STRIPE_WEBHOOK_SECRET": "whsec_check_only",
}


def test_deploy_check_is_clean_with_production_settings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_mode_refuses_to_serve_without_a_secret_key() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_"))}
    served = subprocess.run(
        [sys.executable, "-c", "import portal.wsgi"],
        cwd=ROOT,
        env={**clean, **env, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode != 0
    assert "SECRET_KEY setting must not be empty" in served.stderr
    deploy = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert deploy.returncode != 0
    assert "SECRET_KEY" in deploy.stdout + deploy.stderr
    # Commands that sign nothing still work, so migrations can be checked without secrets.
    assert _manage("makemigrations", "--check", "--dry-run", env=env).returncode == 0


def test_debug_is_off_unless_asked_for() -> None:
    result = _manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.DEBUG, settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE)",
        env=PRODUCTION,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True"]
