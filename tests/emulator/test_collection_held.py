"""A renewal's charge held until a later date, through the official client (the portal's payment
extension before a renewal): `pause_collection` with `keep_as_draft` keeps the renewal's invoice a
draft that Stripe neither finalizes nor charges; finalized with `auto_advance=false` it is open and
untried until it is paid; collection resumes by itself at `resumes_at`."""

from __future__ import annotations

import stripe

from .support import DAY, JAN_1, advance, catalog, customer_on_clock, subscribe

FEB_1 = JAN_1 + 31 * DAY


def test_a_held_renewal_is_a_draft_uncharged_until_it_is_finalized_and_paid(
    client: stripe.StripeClient,
) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    held = client.v1.subscriptions.update(
        sub.id, params={"pause_collection": {"behavior": "keep_as_draft", "resumes_at": FEB_1 + 5 * DAY}}
    )
    assert held.pause_collection is not None and held.pause_collection.behavior == "keep_as_draft"
    charges_before = len(client.v1.charges.list(params={"customer": customer.id}).data)

    # The renewal comes: its period starts on its date, its invoice waits as a draft.
    advance(client, clock.id, FEB_1 + 3 * DAY)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.status == "active" and renewed.items.data[0].current_period_start == FEB_1
    invoice = client.v1.invoices.retrieve(str(renewed.latest_invoice))
    assert (invoice.status, invoice.billing_reason, invoice.auto_advance) == (
        "draft",
        "subscription_cycle",
        False,
    )
    assert len(client.v1.charges.list(params={"customer": customer.id}).data) == charges_before

    # Finalized without Stripe collecting it, then paid by hand: one charge.
    opened = client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": False})
    assert (opened.status, opened.attempt_count, opened.next_payment_attempt) == ("open", 0, None)
    paid = client.v1.invoices.pay(invoice.id, params={"off_session": True})
    assert paid.status == "paid"
    assert len(client.v1.charges.list(params={"customer": customer.id}).data) == charges_before + 1

    # At resumes_at collection resumes by itself; the next renewal is charged as usual.
    advance(client, clock.id, FEB_1 + 6 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).pause_collection is None
