"""`manage.py demo`, what `make demo` runs: the portal on a fresh database against a fresh Stripe
emulator, with demo customers, webhooks flowing from the emulator and the periodic jobs running
in this process.

Settings read at import (DJANGO_DEBUG, DATABASE_URL, no REDIS_URL so Celery runs tasks eagerly)
come from the environment the Makefile sets; what is only known here (the emulator's address, the
webhook signing secret) is put into django.conf.settings at run time, before anything reads it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, connections
from django.urls import reverse

from billing import sms
from billing.catalog_sync import sync_catalog
from portal.celery import app as celery_app
from portal.dev import seed as demo

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
EMULATOR_START_SECONDS = 30.0
SERVER_START_SECONDS = 60.0
VAR = Path(settings.BASE_DIR) / "var"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _inside_var(path: Path) -> bool:
    return path.resolve().is_relative_to(VAR.resolve())


def _die_with_parent() -> None:
    """Runs in the emulator's child process: if the demo dies without cleaning up (SIGKILL), the
    kernel sends the emulator SIGTERM, so no emulator is left holding the port."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _interrupt(signum: int, frame: Any) -> None:
    # `kill <pid>` and a closed terminal stop the demo as Ctrl-C does, so the emulator is stopped too.
    raise KeyboardInterrupt


class Emulator:
    """The emulator as a child process, on a fixed port, logging to var/emulator.log."""

    def __init__(self, *, port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = log_path
        self._log: TextIO | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("w", encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "stripe_emulator", "--host", HOST, "--port", str(self.port)],
            cwd=settings.BASE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # no threads are running yet, so a pre-exec hook is safe
        )
        deadline = time.monotonic() + EMULATOR_START_SECONDS
        while True:
            if self._process.poll() is not None:
                raise CommandError(f"The emulator exited at start:\n{self._log_tail()}")
            try:
                if requests.get(f"{self.url}/_emulator/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise CommandError(f"The emulator did not answer within {EMULATOR_START_SECONDS:.0f} s.")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()

    def _log_tail(self) -> str:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-20:])


def _tick(stop: threading.Event, every: float) -> None:
    """What Celery beat would run: there is no worker when tasks run eagerly, so pending changes,
    events whose processing failed, unsent messages, pauses that end and the recovery steps whose
    day has come (and grace that ends) are picked up here."""
    from billing import tasks

    jobs = (
        tasks.apply_pending_changes,
        tasks.process_pending_events,
        tasks.send_pending_deliveries,
        tasks.resume_paused_subscriptions,
        tasks.recovery_due,
        tasks.extensions_due,
    )
    while not stop.wait(every):
        for job in jobs:
            try:
                job()
            except Exception:
                logger.exception("demo: periodic job %s failed", job.name)
        connection.close()


class Command(BaseCommand):
    help = (
        "Run the portal for a demo: a fresh database, a fresh Stripe emulator, demo customers, "
        "webhooks and periodic jobs, on http://127.0.0.1:PORT.  Use `make demo`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=_env_int("PORT", 8000), help="portal port (PORT)")
        parser.add_argument(
            "--emulator-port",
            type=int,
            default=_env_int("EMULATOR_PORT", 12111),
            help="Stripe emulator port (EMULATOR_PORT)",
        )
        parser.add_argument(
            "--tick", type=float, default=5.0, help="seconds between runs of the periodic jobs"
        )

    def handle(self, *args: Any, port: int, emulator_port: int, tick: float, **options: Any) -> None:
        self._check_settings()
        for name, number in (("PORT", port), ("EMULATOR_PORT", emulator_port)):
            if _listening(number):
                raise CommandError(f"Port {number} is in use; choose another with {name}=...")
        VAR.mkdir(parents=True, exist_ok=True)
        self._fresh_database()
        self._fresh_mailbox()

        emulator = Emulator(port=emulator_port, log_path=VAR / "emulator.log")
        stop = threading.Event()
        # SIGINT too: a shell starting the demo in the background ignores it, and Python then keeps
        # ignoring it, so Ctrl-C on its process group would stop the emulator but not the portal.
        stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, _interrupt) for sig in stop_signals}
        try:
            self._say(f"Starting the Stripe emulator on {emulator.url} (log: var/emulator.log)")
            emulator.start()
            portal_url = f"http://{HOST}:{port}"
            self._use_emulator(emulator_url=emulator.url, portal_url=portal_url)

            self._say("Migrating the database")
            call_command("migrate", interactive=False, verbosity=0)
            if get_user_model().objects.exists():
                raise CommandError("The demo seeds an empty database; this one has users already.")
            counts = sync_catalog()
            self._say(f"Catalog synced into the emulator ({counts['prices_created']} prices)")
            self._say("Seeding demo customers")
            logins = demo.seed()

            webhook_url = portal_url + reverse("stripe_webhook")
            secret = demo.register_webhook(url=webhook_url)
            self._set("STRIPE_WEBHOOK_SECRET", secret)
            self._say(f"Webhooks: emulator -> {webhook_url}")

            threading.Thread(target=_tick, args=(stop, tick), name="demo-ticker", daemon=True).start()
            threading.Thread(
                target=self._announce,
                args=(portal_url, emulator.url, logins),
                name="demo-banner",
                daemon=True,
            ).start()
            call_command("runserver", f"{HOST}:{port}", use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            emulator.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._say("Demo stopped; the emulator is stopped too.")

    # ----------------------------------------------------------------------- steps

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _check_settings(self) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "The demo runs with DJANGO_DEBUG=1 (it serves /dev/mailbox/). Use `make demo`."
            )
        if not celery_app.conf.task_always_eager:
            raise CommandError(
                "The demo runs Celery tasks in-process: unset REDIS_URL (or set CELERY_TASK_ALWAYS_EAGER=1)."
            )

    def _fresh_database(self) -> None:
        """A new SQLite file each run, so the database matches the new, empty emulator.  Other
        databases are never dropped; the command refuses them unless they are empty."""
        db = connections.settings["default"]
        if db["ENGINE"] != "django.db.backends.sqlite3":
            return
        name = str(db["NAME"])
        if name != ":memory:" and _inside_var(Path(name)):
            connection.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(name + suffix).unlink(missing_ok=True)
        # Requests, webhooks and the ticker write from several threads: wait for the lock instead
        # of failing, take it when a transaction starts (no upgrade deadlocks), let reads run
        # alongside a write.
        options = db.setdefault("OPTIONS", {})
        options.setdefault("timeout", 30)
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("init_command", "PRAGMA journal_mode=WAL;")

    def _fresh_mailbox(self) -> None:
        """An empty mailbox each run, as the database is new: emails and text messages only."""
        if "filebased" in settings.EMAIL_BACKEND:
            folder = Path(settings.EMAIL_FILE_PATH)
            folder.mkdir(parents=True, exist_ok=True)
            if _inside_var(folder):
                for old in folder.glob("*.log"):
                    old.unlink()
        if settings.BILLING_SMS_BACKEND == "billing.sms.FileSmsBackend":
            folder = Path(settings.BILLING_SMS_FILE_PATH)
            folder.mkdir(parents=True, exist_ok=True)
            if _inside_var(folder):
                (folder / sms.FILE_NAME).unlink(missing_ok=True)

    def _set(self, name: str, value: str) -> None:
        setattr(settings, name, value)
        os.environ[name] = value

    def _use_emulator(self, *, emulator_url: str, portal_url: str) -> None:
        self._set("STRIPE_API_KEY", "sk_test_emulator")
        self._set("STRIPE_PUBLISHABLE_KEY", "pk_test_emulator")
        self._set("STRIPE_API_BASE", emulator_url)
        self._set("STRIPE_JS_URL", f"{emulator_url}/v3/")
        self._set("PORTAL_BASE_URL", portal_url)

    def _announce(self, portal_url: str, emulator_url: str, logins: list[demo.Login]) -> None:
        """Print where to go once the server answers, so the printed URL always works."""
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{portal_url}/accounts/login/", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            logger.error("demo: the portal did not answer on %s", portal_url)
            return
        width = max(len(login.email) for login in logins)
        lines = [
            "",
            "=" * 72,
            f"Billing portal demo: {portal_url}/",
            f"  Mailbox   {portal_url}/dev/mailbox/  (emails and text messages)",
            f"  Admin     {portal_url}/admin/  ({demo.ADMIN_EMAIL} / {demo.PASSWORD})",
            f"  Emulator  {emulator_url}/  (Stripe; log in var/emulator.log)",
            "",
            f"Logins (password for all: {demo.PASSWORD}):",
            *(f"  {login.email.ljust(width)}  {login.state}" for login in logins),
            "",
            "Cards for the card form: 4242 4242 4242 4242 (works), 4000 0000 0000 0341 (declines",
            "charges), 4000 0025 0000 3155 (3-D Secure), 4000 0027 6000 3184 (3-D Secure on every",
            "payment); any future expiry, any CVC.",
            "Ctrl-C stops the portal and the emulator.",
            "=" * 72,
            "",
        ]
        self._say("\n".join(lines))
