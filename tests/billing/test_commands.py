"""The operator's commands: sync_catalog, reconcile and replay_events."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from billing import catalog, catalog_sync
from billing.models import Delivery, Interval, Invoice, PaymentMethod, Price, StripeEvent, Subscription
from tests.billing.conftest import Deliver
from tests.billing.support import pay_in_stripe
from tests.portal_support import emulator_events, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")

CLOSED_PORT = "http://127.0.0.1:9"


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _stripe_catalog() -> tuple[int, list[Any]]:
    api = stripe_client()
    products = api.v1.products.list(params={"limit": 100}).data
    prices = api.v1.prices.list(params={"limit": 100}).data
    return len(products), prices


# --------------------------------------------------------------------------- sync_catalog


def test_sync_catalog_twice_creates_nothing_the_second_time() -> None:
    """The `catalog` fixture ran it once already."""
    products_before, prices_before = _stripe_catalog()
    rows_before = list(Price.objects.order_by("pk").values())
    assert products_before == 3
    assert len(prices_before) == 27

    assert "0 products created, 0 prices created, 27 unchanged" in _run("sync_catalog")

    products_after, prices_after = _stripe_catalog()
    assert products_after == products_before
    assert sorted(p.id for p in prices_after) == sorted(p.id for p in prices_before)
    assert list(Price.objects.order_by("pk").values()) == rows_before


def test_a_changed_amount_is_a_new_price_that_takes_the_lookup_key(monkeypatch: pytest.MonkeyPatch) -> None:
    old = Price.objects.get(lookup_key="standard_month_eur")
    assert old.unit_amount == 1900
    raised = tuple(
        dataclasses.replace(
            spec,
            amounts={**spec.amounts, Interval.MONTH: {**spec.amounts[Interval.MONTH], "eur": 2100}},
        )
        if spec.key == "standard"
        else spec
        for spec in catalog.TIERS
    )
    monkeypatch.setattr(catalog_sync, "TIERS", raised)

    assert "0 products created, 1 prices created, 26 unchanged" in _run("sync_catalog")

    new = Price.objects.get(lookup_key="standard_month_eur")
    assert new.unit_amount == 2100
    assert new.stripe_price_id != old.stripe_price_id
    assert new.active
    old.refresh_from_db()
    assert not old.active
    assert old.lookup_key != "standard_month_eur"
    api = stripe_client()
    [found] = api.v1.prices.list(params={"lookup_keys": ["standard_month_eur"]}).data
    assert (found.id, found.unit_amount) == (new.stripe_price_id, 2100)
    # The old price stays for those who pay it, but can no longer be chosen.
    old_at_stripe = api.v1.prices.retrieve(old.stripe_price_id)
    assert old_at_stripe.unit_amount == 1900
    assert old_at_stripe.active is False
    assert Price.objects.filter(active=True).count() == 27

    assert "0 prices created, 27 unchanged" in _run("sync_catalog")


# --------------------------------------------------------------------------- reconcile


def test_reconcile_catches_up_with_what_webhooks_missed() -> None:
    customer = make_customer(email="missed@example.com")
    visa = PaymentMethod.objects.get(customer=customer)
    api = stripe_client()
    # Changes at Stripe whose webhooks never arrived: a new default card, the old one detached,
    # and the subscription canceled.
    amex = api.v1.payment_methods.attach("pm_card_amex", params={"customer": customer.stripe_customer_id})
    api.v1.customers.update(
        customer.stripe_customer_id, params={"invoice_settings": {"default_payment_method": amex.id}}
    )
    api.v1.payment_methods.detach(visa.stripe_id)
    subscription = Subscription.objects.get(customer=customer)
    api.v1.subscriptions.cancel(subscription.stripe_id)

    assert "reconciled 1 customer(s), 0 failed" in _run("reconcile", customer.email)

    assert list(PaymentMethod.objects.filter(customer=customer).values_list("stripe_id", flat=True)) == [
        amex.id
    ]
    customer.refresh_from_db()
    assert customer.default_payment_method_id == amex.id
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED


def test_reconcile_all_and_by_stripe_id() -> None:
    first = make_customer(email="one@example.com", price=None)
    second = make_customer(email="two@example.com", price=None)
    for customer in (first, second):
        card = PaymentMethod.objects.get(customer=customer)
        stripe_client().v1.payment_methods.detach(card.stripe_id)
    assert "reconciled 1 customer(s)" in _run("reconcile", str(first.stripe_customer_id))
    assert not PaymentMethod.objects.filter(customer=first).exists()
    assert PaymentMethod.objects.filter(customer=second).exists()
    assert "reconciled 2 customer(s), 0 failed" in _run("reconcile", "--all")
    assert not PaymentMethod.objects.exists()


def test_reconcile_says_when_it_could_not(settings: Any) -> None:
    customer = make_customer(email="unreachable@example.com", price=None)
    with pytest.raises(CommandError, match="Give one customer"):
        _run("reconcile")
    with pytest.raises(CommandError, match="No customer"):
        _run("reconcile", "nobody@example.com")
    settings.STRIPE_API_BASE = CLOSED_PORT
    with pytest.raises(CommandError, match="1 customer"):
        _run("reconcile", customer.email)


# --------------------------------------------------------------------------- replay_events


def test_failed_event_replays_to_processed(settings: Any, deliver: Deliver, committed: Any) -> None:
    customer = make_customer(email="replay@example.com", card="pm_card_chargeCustomerFail")
    invoice = Invoice.objects.get(customer=customer)
    pay_in_stripe(customer=customer, invoice_id=invoice.stripe_id)
    [event] = emulator_events(types={"invoice.paid"})
    emulator_base = settings.STRIPE_API_BASE

    # Stripe can't be reached while the event is processed: it is kept, to be retried, and says why.
    settings.STRIPE_API_BASE = CLOSED_PORT
    assert deliver(event).status_code == 200
    stored = StripeEvent.objects.get()
    assert stored.status == StripeEvent.Status.RETRYING
    assert stored.next_attempt_at is not None
    assert "StripeUnavailable" in stored.last_error
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.OPEN

    settings.STRIPE_API_BASE = emulator_base
    with committed():
        output = _run("replay_events")
    assert "replayed 1 event(s), 0 failed" in output
    stored.refresh_from_db()
    assert stored.status == StripeEvent.Status.PROCESSED
    assert stored.last_error == ""
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID
    assert (
        Delivery.objects.filter(about=f"invoice:{invoice.stripe_id}", channel=Delivery.Channel.EMAIL).count()
        == 1
    )

    # Replaying a processed event by id runs it again, harmlessly: still one receipt.
    with committed():
        assert "replayed 1 event(s)" in _run("replay_events", event["id"])
    assert Delivery.objects.filter(channel=Delivery.Channel.EMAIL).count() == 1
    assert _run("replay_events").startswith("replayed 0 event(s)")
    with pytest.raises(CommandError, match="evt_missing"):
        _run("replay_events", "evt_missing")
    assert [m.to for m in mail.outbox] == [[customer.email]]
