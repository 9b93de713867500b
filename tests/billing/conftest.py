from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from billing.models import Price, Tier
from stripe_emulator.app import Emulator
from tests.portal_support import post_event

Deliver = Callable[..., Any]

# The synced catalog, kept after the first sync of the session: the emulator's state and the rows.
_synced: dict[str, Any] = {}


def restore_catalog(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The declared catalog in the emulator and the database, as `sync_catalog` leaves them.

    Synced for real once per session; later tests get the same state restored (some fifty Stripe
    requests fewer each).  tests/billing/test_commands.py tests the sync itself.  The emulator's
    state is replaced: do it before anything else is set up in it."""
    from billing.catalog_sync import sync_catalog

    if not _synced:
        sync_catalog()
        path = tmp_path_factory.mktemp("catalog") / "emulator.json"
        emulator.save(path)
        _synced.update(
            path=path,
            tiers=list(Tier.objects.values()),
            prices=list(Price.objects.values()),
        )
        return
    emulator.load(pathlib.Path(_synced["path"]))
    # New primary keys (PostgreSQL's sequences don't move for given ones), the same everything else.
    tiers = {row["id"]: Tier.objects.create(**{**row, "id": None}) for row in _synced["tiers"]}
    Price.objects.bulk_create(
        Price(**{**row, "id": None, "tier_id": tiers[row["tier_id"]].pk}) for row in _synced["prices"]
    )


@pytest.fixture()
def catalog(db: None, stripe_emulated: Emulator, tmp_path_factory: pytest.TempPathFactory) -> None:
    restore_catalog(stripe_emulated, tmp_path_factory)


@pytest.fixture()
def deliver(django_capture_on_commit_callbacks: Any) -> Deliver:
    """Post an event to the webhook endpoint as Stripe would, and let what the endpoint leaves for
    after its commit (processing, then the emails processing queues) run, as it does in production.
    Keyword arguments go to the signature (`secret`, `timestamp`)."""

    def deliver(event: dict[str, Any], *, client: Client | None = None, **signing: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return post_event(client or Client(), event, **signing)

    return deliver


@pytest.fixture()
def committed(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """`with committed(): ...` runs what the block leaves for after its commit (tasks, emails)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


class StripeSwitch:
    """Takes the emulator down (connections refused, state kept, same port) and back up."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.down = False

    def __call__(self) -> None:
        self.emulator.stop()
        self.down = True

    def back(self) -> None:
        if self.down:
            self.emulator.start()
            self.down = False


@pytest.fixture()
def stripe_down(emulator: Emulator) -> Iterator[StripeSwitch]:
    """`stripe_down()` takes Stripe down; it is back after the test whatever happens, or earlier
    with `stripe_down.back()`."""
    switch = StripeSwitch(emulator)
    yield switch
    switch.back()
