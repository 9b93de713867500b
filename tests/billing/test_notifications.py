"""Confirmation emails: one per fact, to the customer, with money written the customer's way.

(The wording is translated elsewhere; these tests hold what doesn't depend on it.)"""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from billing import gateway, outbox
from billing.models import Delivery, Invoice
from billing.money import format_money
from billing.services import invoices
from tests.billing.conftest import Deliver
from tests.billing.support import confirmed_setup_intent, pay_in_stripe
from tests.portal_support import emulator_events, logged_in, make_customer

pytestmark = pytest.mark.usefixtures("catalog")

NBSP = "\xa0"


@pytest.mark.parametrize(
    ("language", "currency", "amount"),
    [
        ("sv", "eur", f"19,00{NBSP}€"),
        ("nl", "eur", f"€{NBSP}19,00"),
        ("en", "eur", "€19.00"),
        ("sv", "sek", f"199,00{NBSP}kr"),
        ("nl", "usd", f"US${NBSP}20,00"),
    ],
)
def test_receipt_is_sent_once_with_the_amount_in_the_customers_format(
    language: str, currency: str, amount: str, deliver: Deliver
) -> None:
    customer = make_customer(
        email=f"{language}-{currency}@example.com",
        language=language,
        currency=currency,
        card="pm_card_chargeCustomerFail",
        price=f"standard_month_{currency}",
    )
    invoice = Invoice.objects.get(customer=customer)
    assert format_money(amount=invoice.amount_remaining, currency=currency, language=language) == amount
    pay_in_stripe(customer=customer, invoice_id=invoice.stripe_id)
    for event in emulator_events(types={"invoice.paid", "invoice.payment_succeeded"}) * 2:
        deliver(event)

    [message] = mail.outbox
    assert message.to == [customer.email]
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert amount in message.body
    assert amount in html
    note = Delivery.objects.get(channel=Delivery.Channel.EMAIL)
    assert note.status == Delivery.Status.SENT
    assert note.context["amount"] == invoice.amount_remaining
    # The dashboard's list of confirmations writes it the same way.
    page = logged_in(customer).get("/").content.decode()
    assert amount in page.split('data-test="messages"')[1].split("</ul>")[0]


def test_card_confirmation_names_the_card_in_any_language(committed: Any) -> None:
    customer = make_customer(email="nl@example.com", language="nl", price=None)
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_mastercard")
    with committed():
        logged_in(customer).post("/cards/confirm/", {"setup_intent": setup_intent})
    [message] = mail.outbox
    assert message.to == [customer.email]
    assert "4444" in message.body
    assert "4444" in message.alternatives[0][0]


def test_a_notification_is_sent_once_however_often_sending_is_asked(deliver: Deliver) -> None:
    customer = make_customer(email="once@example.com", card="pm_card_chargeCustomerFail")
    invoice = Invoice.objects.get(customer=customer)
    pay_in_stripe(customer=customer, invoice_id=invoice.stripe_id)
    for event in emulator_events(types={"invoice.paid"}):
        deliver(event)
    note = Delivery.objects.get(channel=Delivery.Channel.EMAIL)
    assert outbox.send(delivery_id=note.pk) is False
    assert outbox.send(delivery_id=note.pk) is False
    assert len(mail.outbox) == 1
    # A second receipt for the same invoice can't even be queued, on any channel.
    paid = gateway.invoice_retrieve(invoice_id=invoice.stripe_id)
    before = Delivery.objects.count()
    invoices.invoice_paid(customer=customer, invoice=paid)
    assert Delivery.objects.count() == before == 2
    assert len(mail.outbox) == 1
