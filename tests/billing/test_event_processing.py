"""Processing is idempotent and does not trust arrival order: duplicates change nothing more, and
events in any order leave the mirror as Stripe is now."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from billing.models import (
    BillingCustomer,
    Delivery,
    Invoice,
    PaymentMethod,
    Price,
    StripeEvent,
    Subscription,
)
from tests.billing.conftest import Deliver
from tests.billing.support import pay_in_stripe
from tests.portal_support import emulator_events, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")


def _open_invoice_paid_at_stripe() -> tuple[BillingCustomer, Invoice]:
    customer = make_customer(email="dup@example.com", card="pm_card_chargeCustomerFail")
    invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)
    pay_in_stripe(customer=customer, invoice_id=invoice.stripe_id)
    return customer, invoice


def test_same_event_twice_is_one_row_and_one_receipt(deliver: Deliver) -> None:
    customer, invoice = _open_invoice_paid_at_stripe()
    [event] = emulator_events(types={"invoice.paid"})
    assert deliver(event).status_code == 200
    assert deliver(event).status_code == 200
    assert StripeEvent.objects.filter(stripe_id=event["id"]).count() == 1
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == ("paid", 1900, 0)
    receipt = Delivery.objects.get(channel=Delivery.Channel.EMAIL)
    assert (receipt.message, receipt.about) == ("payment_received", f"invoice:{invoice.stripe_id}")
    assert receipt.status == Delivery.Status.SENT
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [customer.email]


def test_every_event_about_one_payment_sends_one_receipt(deliver: Deliver) -> None:
    """invoice.paid, invoice.payment_succeeded and invoice.updated all say "paid"; the customer
    hears it once."""
    _customer, invoice = _open_invoice_paid_at_stripe()
    events = emulator_events(types={"invoice.paid", "invoice.payment_succeeded", "invoice.updated"})
    assert {e["type"] for e in events} >= {"invoice.paid", "invoice.payment_succeeded"}
    for event in events + events:
        assert deliver(event).status_code == 200
    assert StripeEvent.objects.count() == len(events)
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {StripeEvent.Status.PROCESSED}
    assert sorted(Delivery.objects.values_list("about", "channel")) == [
        (f"invoice:{invoice.stripe_id}", "email"),
        (f"invoice:{invoice.stripe_id}", "in_app"),
    ]
    assert len(mail.outbox) == 1


def test_events_in_reverse_order_leave_stripes_current_state(deliver: Deliver) -> None:
    """A subscription created, its first invoice created, finalized and paid, then the subscription
    canceled: delivered newest first, the mirror still ends as Stripe is now."""
    customer = make_customer(email="order@example.com", price=None)
    api = stripe_client()
    price_id = Price.objects.get(lookup_key="standard_month_eur").stripe_price_id
    sub = api.v1.subscriptions.create(
        params={"customer": customer.stripe_customer_id, "items": [{"price": price_id}]}
    )
    api.v1.subscriptions.cancel(sub.id)
    types = {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    }
    events = emulator_events(types=types)
    assert [e["type"] for e in events][-1] == "customer.subscription.deleted"
    assert any(
        e["data"]["object"].get("status") == "active" for e in events if e["type"].startswith("customer.")
    )

    for event in reversed(events):
        assert deliver(event).status_code == 200

    mirrored = Subscription.objects.get(stripe_id=sub.id)
    assert mirrored.status == Subscription.Status.CANCELED
    assert mirrored.ended_at is not None
    [invoice] = Invoice.objects.filter(customer=customer)
    assert invoice.status == Invoice.Status.PAID
    assert invoice.amount_paid == 1900
    assert invoice.subscription_stripe_id == sub.id
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {StripeEvent.Status.PROCESSED}
    assert (
        Delivery.objects.filter(about=f"invoice:{invoice.stripe_id}", channel=Delivery.Channel.EMAIL).count()
        == 1
    )


def test_invoice_paid_before_invoice_created_still_ends_paid(deliver: Deliver) -> None:
    customer, invoice = _open_invoice_paid_at_stripe()
    Invoice.objects.filter(pk=invoice.pk).delete()  # as if the portal had heard nothing yet
    paid = emulator_events(types={"invoice.paid"})
    created = emulator_events(types={"invoice.created", "invoice.finalized", "invoice.payment_failed"})
    for event in paid + created:
        assert deliver(event).status_code == 200
    mirrored = Invoice.objects.get(customer=customer)
    assert (mirrored.stripe_id, mirrored.status) == (invoice.stripe_id, Invoice.Status.PAID)


def test_stale_mirror_is_not_overwritten_by_an_older_read(deliver: Deliver) -> None:
    """An old `customer.subscription.updated` (saying "incomplete") arriving after the payment is
    re-read from Stripe, which says "active" now."""
    customer, _invoice = _open_invoice_paid_at_stripe()
    updates = emulator_events(types={"customer.subscription.updated", "customer.subscription.created"})
    assert any(e["data"]["object"]["status"] == "incomplete" for e in updates)
    for event in reversed(updates):
        deliver(event)
    assert Subscription.objects.get(customer=customer).status == Subscription.Status.ACTIVE


def test_card_detached_at_stripe_leaves_the_mirror(deliver: Deliver) -> None:
    """A detached card's event no longer names the customer (only its previous attributes do); it
    must still reach the customer's mirror."""
    customer = make_customer(email="detach@example.com", price=None)
    card = PaymentMethod.objects.get(customer=customer)
    stripe_client().v1.payment_methods.detach(card.stripe_id)
    for event in emulator_events(types={"payment_method.detached", "customer.updated"}):
        assert deliver(event).status_code == 200
    stored = StripeEvent.objects.get(type="payment_method.detached")
    assert stored.customer_stripe_id == customer.stripe_customer_id
    assert stored.status == StripeEvent.Status.PROCESSED
    assert not PaymentMethod.objects.filter(pk=card.pk).exists()
    customer.refresh_from_db()
    assert customer.default_payment_method_id == ""


def test_duplicate_delivery_after_processing_changes_nothing(deliver: Deliver) -> None:
    customer, _invoice = _open_invoice_paid_at_stripe()
    [event] = emulator_events(types={"invoice.paid"})
    deliver(event)
    first: dict[str, Any] = dict(StripeEvent.objects.values("attempts", "processed_at", "status").get())
    deliver(event)
    assert dict(StripeEvent.objects.values("attempts", "processed_at", "status").get()) == first
    assert len(mail.outbox) == 1
    assert customer.deliveries.filter(channel=Delivery.Channel.EMAIL).count() == 1
