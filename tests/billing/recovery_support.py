"""Failed renewals on the emulator's test clocks, for the recovery tests (billing, portal, browser
and integration alike)."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import requests
from django.conf import settings
from django.core import mail

from billing import sync
from billing.models import BillingCustomer, Delivery, Price, RecoveryCase, Subscription
from tests.portal_support import make_customer, stripe_client

DAY = 24 * 3600
# A message's action link (update card, pay, approve); the "ask for more time" link is apart.
LINK = re.compile(r"https?://[^\s\"'<>]+/l/[0-9a-z]+[upa]-[A-Za-z0-9_-]{22}/")
EXTEND_LINK = re.compile(r"https?://[^\s\"'<>]+/l/[0-9a-z]+x-[A-Za-z0-9_-]{22}/")


def set_decline(*, payment_method: str, code: str | None) -> None:
    """Make a saved card decline its next charges with `code` (None heals it): the emulator's
    control, as a bank would start declining a card that was fine when it was saved."""
    requests.post(
        f"{settings.STRIPE_API_BASE}/_emulator/payment_methods/{payment_method}/decline",
        json={"decline_code": code},
        timeout=10,
    ).raise_for_status()


def advance(clock: str, to: int) -> None:
    stripe_client().v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})
    requests.post(
        f"{settings.STRIPE_API_BASE}/_emulator/test_clocks/{clock}/wait", json={"timeout": 30}, timeout=35
    ).raise_for_status()


class Renewal:
    """A customer on a test clock whose first month was paid with a card that then starts
    declining; `fail()` moves the clock to the renewal, which is declined."""

    def __init__(
        self,
        *,
        email: str,
        decline: str = "insufficient_funds",
        language: str = "en",
        phone: str = "",
        time_zone: str = "",
    ) -> None:
        api = stripe_client()
        self.start = int(time.time())
        self.customer = make_customer(email=email, card=None, price=None, language=language)
        self.clock = api.v1.test_helpers.test_clocks.create(params={"frozen_time": self.start}).id
        on_clock = api.v1.customers.create(params={"email": email, "test_clock": self.clock})
        BillingCustomer.objects.filter(pk=self.customer.pk).update(
            stripe_customer_id=on_clock.id, phone=phone, time_zone=time_zone
        )
        self.card = api.v1.payment_methods.attach("pm_card_visa", params={"customer": on_clock.id}).id
        api.v1.customers.update(
            on_clock.id, params={"invoice_settings": {"default_payment_method": self.card}}
        )
        price = Price.objects.get(lookup_key="standard_month_eur").stripe_price_id
        api.v1.subscriptions.create(params={"customer": on_clock.id, "items": [{"price": price}]})
        self.decline = decline
        sync.reconcile_customer(customer_id=self.customer.pk)
        self.customer.refresh_from_db()

    def at(self, days: float) -> dt.datetime:
        """The clock's time `days` after the start."""
        return dt.datetime.fromtimestamp(self.start + int(days * DAY), tz=dt.UTC)

    def fail(self) -> None:
        set_decline(payment_method=self.card, code=self.decline)
        self.move(days=32)
        assert Subscription.objects.get(customer=self.customer).status in ("active", "past_due")

    def move(self, *, days: float) -> None:
        advance(self.clock, self.start + int(days * DAY))

    @property
    def case(self) -> RecoveryCase:
        return RecoveryCase.objects.get(customer=self.customer)


def recovery_deliveries(customer: BillingCustomer, **filters: Any) -> list[Delivery]:
    return list(
        Delivery.objects.filter(customer=customer, case__isnull=False, **filters).order_by("created_at", "pk")
    )


def links_in(text: str) -> list[str]:
    return LINK.findall(text)


def extend_links_in(text: str) -> list[str]:
    return EXTEND_LINK.findall(text)


def emails_to(address: str) -> list[Any]:
    return [message for message in mail.outbox if address in message.to]
