"""A change asked for while Stripe can't be reached is kept, shown as pending, and applied once
Stripe is back: exactly once, however often it is tried."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest
import requests
import time_machine
from django.core import mail
from django.utils import timezone

from billing import changes, policy, tasks
from billing.models import BillingChange, BillingCustomer, Delivery, Invoice
from billing.services import cards
from stripe_emulator.app import Emulator
from tests.billing.conftest import StripeSwitch
from tests.billing.support import card_added, confirmed_setup_intent, successful_charges
from tests.portal_support import logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")


@pytest.fixture()
def customer_owing() -> BillingCustomer:
    """A subscriber whose first payment was declined: one open invoice of €19.00."""
    customer = make_customer(email="owing@example.com", card="pm_card_chargeCustomerFail")
    assert Invoice.objects.get(customer=customer).status == Invoice.Status.OPEN
    return customer


def _apply_when_due(change: BillingChange, committed: Callable[[], Any] | None = None) -> int:
    """The periodic task, run just after the change's next try is due; with `committed`, what it
    leaves for after its commit (the confirmation) runs then too, not back in the present."""
    assert change.next_attempt_at is not None
    with time_machine.travel(change.next_attempt_at + dt.timedelta(seconds=1)):
        with committed() if committed else contextlib.nullcontext():
            return int(tasks.apply_pending_changes())


def test_card_added_while_stripe_is_down_is_applied_once_when_it_is_back(
    customer_owing: BillingCustomer, stripe_down: StripeSwitch, committed: Callable[[], Any]
) -> None:
    customer = customer_owing
    client = logged_in(customer)
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_mastercard")
    new_card = stripe_client().v1.setup_intents.retrieve(setup_intent).payment_method
    old_default = customer.default_payment_method_id

    stripe_down()
    with committed():
        response = client.post("/cards/confirm/", {"setup_intent": setup_intent})
    change = BillingChange.objects.get(customer=customer)
    assert response.status_code == 302
    assert response["Location"] == f"/changes/{change.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert 'data-status="pending"' in page
    assert "Pending" in page
    assert "Our payment provider is not answering right now" in page
    dashboard = client.get("/").content.decode()
    assert f'id="change-{change.pk}"' in dashboard and "Pending" in dashboard

    assert change.status == BillingChange.Status.PENDING
    assert change.error_code == "connection_error"
    assert change.attempts == 1
    assert change.next_attempt_at is not None and change.next_attempt_at > timezone.now()
    assert Delivery.objects.count() == 0

    stripe_down.back()
    api = stripe_client()
    # Nothing reached Stripe while it was down.
    assert api.v1.customers.retrieve(customer.stripe_customer_id).invoice_settings.default_payment_method == (
        old_default
    )
    assert successful_charges(customer=customer) == []

    # Not due yet: the sweep leaves it alone.
    assert tasks.apply_pending_changes() == 0
    assert _apply_when_due(change, committed) == 1

    change.refresh_from_db()
    assert change.status == BillingChange.Status.APPLIED
    assert card_added(change).payment_method == new_card
    assert card_added(change).payment.outcome == "paid"
    stripe_customer = api.v1.customers.retrieve(customer.stripe_customer_id)
    assert stripe_customer.invoice_settings.default_payment_method == new_card
    [subscription] = api.v1.subscriptions.list(params={"customer": customer.stripe_customer_id}).data
    assert subscription.default_payment_method == new_card
    invoice = Invoice.objects.get(customer=customer)
    assert api.v1.invoices.retrieve(invoice.stripe_id).status == "paid"
    [charge] = successful_charges(customer=customer)
    assert (charge.amount, charge.currency, charge.payment_method) == (1900, "eur", new_card)
    assert Delivery.objects.filter(change=change, channel=Delivery.Channel.EMAIL).count() == 1
    assert [m.to for m in mail.outbox] == [[customer.email]]
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert 'data-status="applied"' in page
    assert "Mastercard •••• 4444" in page

    # Applying it again, directly or through the sweep, does nothing more.
    with committed():
        changes.apply(change_id=change.pk)
        changes.apply(change_id=change.pk)
        with time_machine.travel(timezone.now() + dt.timedelta(minutes=10)):
            assert tasks.apply_pending_changes() == 0
    change.refresh_from_db()
    assert change.attempts == 2
    assert len(successful_charges(customer=customer)) == 1
    assert Delivery.objects.filter(channel=Delivery.Channel.EMAIL).count() == 1
    assert len(mail.outbox) == 1


def test_retries_wait_longer_each_time_and_the_change_is_never_lost(
    customer_owing: BillingCustomer, stripe_down: StripeSwitch
) -> None:
    setup_intent = confirmed_setup_intent(customer=customer_owing)
    stripe_down()
    change = cards.card_add(
        customer=customer_owing, setup_intent_id=setup_intent, requested_by=customer_owing.user
    )
    waits = []
    for _ in range(3):
        change.refresh_from_db()
        assert change.status == BillingChange.Status.PENDING
        assert change.next_attempt_at is not None
        waits.append(change.next_attempt_at)
        _apply_when_due(change)
    change.refresh_from_db()
    assert change.status == BillingChange.Status.PENDING
    assert change.attempts == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(waits)]
    assert gaps[0] >= policy.current().changes.backoff.delay(attempts=2) - dt.timedelta(seconds=1)
    assert gaps[1] >= policy.current().changes.backoff.delay(attempts=3) - dt.timedelta(seconds=1)
    assert gaps[1] > gaps[0]

    stripe_down.back()
    _apply_when_due(change)
    change.refresh_from_db()
    assert change.status == BillingChange.Status.APPLIED
    assert len(successful_charges(customer=customer_owing)) == 1


def test_payment_stripe_made_but_we_never_heard_of_is_not_made_again(
    customer_owing: BillingCustomer, stripe_emulated: Emulator, settings: Any, committed: Callable[[], Any]
) -> None:
    """The invoice payment reaches Stripe but the answer is lost (our timeout fires first); the
    retry carries the same idempotency key, so Stripe answers with the first result."""
    customer = customer_owing
    invoice = Invoice.objects.get(customer=customer)
    setup_intent = confirmed_setup_intent(customer=customer)
    settings.STRIPE_INTERACTIVE_TIMEOUT_SECONDS = 0.2
    requests.post(
        f"{stripe_emulated.url}/_emulator/faults",
        json={"method": "POST", "path_prefix": "/v1/invoices/", "delay_seconds": 0.6},
        timeout=5,
    ).raise_for_status()

    with committed():
        change = cards.card_add(customer=customer, setup_intent_id=setup_intent, requested_by=customer.user)
    assert change.status == BillingChange.Status.PENDING
    assert change.error_code == "connection_error"

    # Stripe goes on with the payment our client gave up on.
    assert stripe_emulated.requests_idle(timeout=10), "Stripe never finished the delayed payment"
    assert stripe_client().v1.invoices.retrieve(invoice.stripe_id).status == "paid"
    assert len(successful_charges(customer=customer)) == 1

    _apply_when_due(change, committed)
    change.refresh_from_db()
    assert change.status == BillingChange.Status.APPLIED
    assert card_added(change).payment.outcome == "paid"
    assert len(successful_charges(customer=customer)) == 1
    assert Delivery.objects.filter(change=change, channel=Delivery.Channel.EMAIL).count() == 1
    assert len(mail.outbox) == 1
