"""The same work arriving twice at the same moment, on PostgreSQL (row locks and unique keys are what
make it happen once; SQLite would serialise everything and prove nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from billing import changes
from billing.models import BillingChange, Delivery, Invoice, PaymentMethod, StripeEvent
from billing.services import cards
from tests.billing.support import (
    card_added,
    confirmed_setup_intent,
    pay_in_stripe,
    run_together,
    successful_charges,
)
from tests.portal_support import emulator_events, make_customer, post_event, stripe_client

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("catalog"),
]


def _invoice_paid_at_stripe() -> tuple[Any, Invoice]:
    customer = make_customer(email="race@example.com", card="pm_card_chargeCustomerFail")
    invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)
    pay_in_stripe(customer=customer, invoice_id=invoice.stripe_id)
    return customer, invoice


def _post_from_own_client(event: dict[str, Any]) -> Any:
    return lambda: post_event(Client(), event).status_code


def test_same_event_posted_twice_at_once_is_processed_once() -> None:
    customer, invoice = _invoice_paid_at_stripe()
    [event] = emulator_events(types={"invoice.paid"})

    assert run_together(_post_from_own_client(event), _post_from_own_client(event)) == [200, 200]

    assert StripeEvent.objects.filter(stripe_id=event["id"]).count() == 1
    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert (
        Delivery.objects.filter(about=f"invoice:{invoice.stripe_id}", channel=Delivery.Channel.EMAIL).count()
        == 1
    )
    assert Delivery.objects.filter(channel=Delivery.Channel.EMAIL).count() == 1
    assert [m.to for m in mail.outbox] == [[customer.email]]


def test_two_events_about_one_invoice_at_once_send_one_receipt() -> None:
    customer, invoice = _invoice_paid_at_stripe()
    [paid] = emulator_events(types={"invoice.paid"})
    [succeeded] = emulator_events(types={"invoice.payment_succeeded"})

    assert run_together(_post_from_own_client(paid), _post_from_own_client(succeeded)) == [200, 200]

    assert sorted(StripeEvent.objects.values_list("stripe_id", flat=True)) == sorted(
        [paid["id"], succeeded["id"]]
    )
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {StripeEvent.Status.PROCESSED}
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert Delivery.objects.filter(channel=Delivery.Channel.EMAIL).count() == 1
    assert [m.to for m in mail.outbox] == [[customer.email]]


def test_a_change_applied_by_two_workers_at_once_is_applied_once(emulator: Any) -> None:
    """A card added while Stripe was down is picked up by two workers at the same moment (the
    per-change task and the periodic sweep): one applies it, the other finds nothing to do."""
    customer = make_customer(email="workers@example.com", card="pm_card_chargeCustomerFail")
    invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_mastercard")
    emulator.stop()
    try:
        change = cards.card_add(customer=customer, setup_intent_id=setup_intent, requested_by=customer.user)
    finally:
        emulator.start()
    assert change.status == BillingChange.Status.PENDING

    run_together(
        lambda: changes.apply(change_id=change.pk),
        lambda: changes.apply(change_id=change.pk),
    )

    change.refresh_from_db()
    assert change.status == BillingChange.Status.APPLIED
    assert change.attempts == 2  # the refused first try and the one that worked
    assert card_added(change).payment.outcome == "paid"
    assert len(successful_charges(customer=customer)) == 1
    assert stripe_client().v1.invoices.retrieve(invoice.stripe_id).status == "paid"
    assert Delivery.objects.filter(change=change, channel=Delivery.Channel.EMAIL).count() == 1
    assert [m.to for m in mail.outbox] == [[customer.email]]
    assert PaymentMethod.objects.filter(customer=customer, last4="4444").count() == 1


def test_double_submit_of_a_new_card_is_one_change() -> None:
    customer = make_customer(email="double@example.com", price=None)
    setup_intent = confirmed_setup_intent(customer=customer)

    def submit() -> Any:
        return cards.card_add(customer=customer, setup_intent_id=setup_intent, requested_by=customer.user).pk

    # Four at once: the window between "is there one?" and "make one" is narrow.
    assert len(set(run_together(submit, submit, submit, submit))) == 1
    assert BillingChange.objects.filter(customer=customer).count() == 1
    assert BillingChange.objects.get().status == BillingChange.Status.APPLIED
    assert Delivery.objects.filter(channel=Delivery.Channel.EMAIL).count() == 1
    assert len(mail.outbox) == 1
