"""Paying a failed renewal with a card other than the subscription's default (the portal's backup
card), through the official client: the charge is on that card, the invoice is paid and its
`invoice.paid` event follows, the payment's charge naming the card; a backup that declines is a
failed charge on it, and Stripe's retries of the default card go on as scheduled."""

from __future__ import annotations

import pytest
import stripe

from .support import DAY, JAN_1, advance, catalog, customer_on_clock, subscribe

FEB_1 = JAN_1 + 31 * DAY


def _failed_renewal(client: stripe.StripeClient) -> tuple[str, stripe.Invoice, str]:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer.id})
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": failing.id})
    advance(client, clock.id, FEB_1 + 2 * 3600)
    invoice = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert invoice.status == "open" and invoice.next_payment_attempt is not None
    return customer.id, invoice, failing.id


def _charges(client: stripe.StripeClient, invoice_id: str) -> list[stripe.Charge]:
    invoice = client.v1.invoices.retrieve(invoice_id)
    intent = invoice.payments.data[0].payment.payment_intent
    return client.v1.charges.list(params={"payment_intent": str(intent)}).data


def test_a_backup_card_pays_the_invoice_and_the_paid_event_names_its_charge(
    client: stripe.StripeClient,
) -> None:
    customer, invoice, failing = _failed_renewal(client)
    backup = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer})
    paid = client.v1.invoices.pay(
        invoice.id,
        params={"payment_method": backup.id, "off_session": True},
        options={"idempotency_key": "k1"},
    )
    assert (paid.status, paid.next_payment_attempt) == ("paid", None)
    charges = _charges(client, invoice.id)
    assert sorted((c.payment_method, c.status) for c in charges) == sorted(
        [(failing, "failed"), (backup.id, "succeeded")]
    )
    event = client.v1.events.list(params={"type": "invoice.paid"}).data[0]
    assert event.data.object["id"] == invoice.id
    succeeded = next(c for c in charges if c.status == "succeeded")
    assert succeeded.payment_method == backup.id and succeeded.amount == paid.amount_paid
    # The same key again is the same answer, not a second charge.
    again = client.v1.invoices.pay(
        invoice.id,
        params={"payment_method": backup.id, "off_session": True},
        options={"idempotency_key": "k1"},
    )
    assert again.status == "paid" and len(_charges(client, invoice.id)) == 2


def test_a_declining_backup_is_a_failed_charge_and_the_retries_of_the_default_go_on(
    client: stripe.StripeClient,
) -> None:
    customer, invoice, default = _failed_renewal(client)
    backup = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer})
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(invoice.id, params={"payment_method": backup.id, "off_session": True})
    after = client.v1.invoices.retrieve(invoice.id)
    assert after.status == "open" and after.next_payment_attempt == invoice.next_payment_attempt
    charges = [(c.payment_method, c.status) for c in _charges(client, invoice.id)]
    assert sorted(charges) == sorted([(default, "failed"), (backup.id, "failed")])
