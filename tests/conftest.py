"""Fixtures shared by every test: a live emulator on a free loopback port, and the portal's
Stripe settings pointed at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from django.conf import settings

from stripe_emulator.app import Emulator

API_KEY = "sk_test_emulator"


def services_configured() -> bool:
    """PostgreSQL and Redis given (CI); otherwise the suite runs on SQLite without a broker."""
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")) and bool(
        os.environ.get("REDIS_URL")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `services` need PostgreSQL and Redis.  CI always has them (and fails if not);
    a local run without them leaves those tests out, says so, and never counts them as passed."""
    if services_configured():
        return
    needing = [item for item in items if item.get_closest_marker("services")]
    if not needing:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(
            f"{len(needing)} tests need PostgreSQL and Redis: set DATABASE_URL=postgres://... and REDIS_URL"
        )
    config.hook.pytest_deselected(items=needing)
    items[:] = [item for item in items if not item.get_closest_marker("services")]
    print(f"\nNOTE: {len(needing)} tests need DATABASE_URL (PostgreSQL) and REDIS_URL and were left out.")


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One emulator per test session, in this process, on a free port."""
    emu = Emulator("127.0.0.1", 0).start()
    yield emu
    emu.stop()


@pytest.fixture()
def fresh_emulator(emulator: Emulator) -> Emulator:
    emulator.reset()
    return emulator


@pytest.fixture()
def client(fresh_emulator: Emulator) -> stripe.StripeClient:
    """The official client, pointed at the emulator, with the pinned API version."""
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": fresh_emulator.url},
        stripe_version=stripe.api_version,
        max_network_retries=0,
    )


# --------------------------------------------------------------------------- the portal (Django)


@pytest.fixture()
def stripe_emulated(fresh_emulator: Emulator, settings: Any) -> Emulator:
    """The portal's gateway pointed at a freshly reset emulator."""
    settings.STRIPE_API_BASE = fresh_emulator.url
    return fresh_emulator


@pytest.fixture()
def catalog(db: None, stripe_emulated: Emulator) -> None:
    """The declared catalog, synced into the emulator and the database."""
    from billing.catalog_sync import sync_catalog

    sync_catalog()


@pytest.fixture(autouse=True)
def _english_again() -> Iterator[None]:
    """A request of a Swedish customer's activates Swedish for the thread (as it should); the next
    test starts in the default language again, whichever ran before it."""
    yield
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
