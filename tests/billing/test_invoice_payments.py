"""Paying an open invoice now from the Invoices page (billing/services/invoices.py): with the
default card or another one, declined, approved with the bank (3-D Secure), while Stripe is down,
and only ever the customer's own invoice.  Each payment is made once, and the customer gets one
receipt and one confirmation."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client

from billing import changes, sync, tasks
from billing.models import BillingChange, BillingCustomer, Delivery, Invoice, Subscription
from billing.services import approvals, invoices
from tests.billing.conftest import StripeSwitch
from tests.billing.support import authenticate, confirmed_setup_intent, successful_charges
from tests.portal_support import deliver_events, logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")

Status = BillingChange.Status


def _owing(email: str, *, default: str | None = "pm_card_visa") -> tuple[BillingCustomer, Invoice]:
    """A subscriber whose first payment was declined (one open invoice of €19.00), whose default
    card is now `default` (None: still the card that declined)."""
    customer = make_customer(email=email, card="pm_card_chargeCustomerFail")
    if default is not None:
        api = stripe_client()
        card = api.v1.payment_methods.attach(default, params={"customer": customer.stripe_customer_id})
        api.v1.customers.update(
            customer.stripe_customer_id, params={"invoice_settings": {"default_payment_method": card.id}}
        )
        sync.reconcile_customer(customer_id=customer.pk)
        customer.refresh_from_db()
    return customer, Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)


def _pay_now_form(client: Client, invoice: Invoice) -> dict[str, str]:
    """The "Pay … now with …" button's form on the Invoices page."""
    html = client.get("/invoices/").content.decode()
    form = re.search(
        rf'action="/invoices/{invoice.stripe_id}/pay/confirm/">.*?name="token" value="([^"]+)">'
        r'.*?name="card" value="(\d+)">',
        html,
        re.S,
    )
    assert form, html
    return {"token": form.group(1), "card": form.group(2)}


def _pay_now(client: Client, invoice: Invoice, committed: Callable[[], Any]) -> tuple[BillingChange, str]:
    """Click the button; returns the change it made and its page."""
    form = _pay_now_form(client, invoice)
    with committed():
        response = client.post(f"/invoices/{invoice.stripe_id}/pay/confirm/", form)
    assert response.status_code == 302, response.content
    change = BillingChange.objects.get(kind="invoice_pay", pk=response["Location"].split("/")[2])
    return change, client.get(response["Location"]).content.decode()


def _emails(customer: BillingCustomer) -> list[str]:
    return sorted(
        Delivery.objects.filter(customer=customer, channel=Delivery.Channel.EMAIL).values_list(
            "message", flat=True
        )
    )


def _webhooks(committed: Callable[[], Any]) -> None:
    """Every event Stripe sent so far reaches the portal (twice: Stripe may deliver one again)."""
    with committed():
        deliver_events()
        deliver_events()


def _result(change: BillingChange) -> invoices.InvoicePayResult:
    change.refresh_from_db()
    result = changes.result_of(change)
    assert isinstance(result, invoices.InvoicePayResult), (
        change.status,
        change.error_code,
        change.error_message,
    )
    return result


def test_an_open_invoice_is_paid_with_the_default_card_with_one_receipt_and_one_confirmation(
    committed: Callable[[], Any],
) -> None:
    customer, invoice = _owing("ada@example.com")
    client = logged_in(customer)
    assert "Pay €19.00 now with Visa •••• 4242" in client.get("/invoices/").content.decode()

    change, page = _pay_now(client, invoice, committed)
    assert "Done: your payment of €19.00 with Visa •••• 4242 went through, and the invoice is paid." in page
    assert _result(change).outcome == "paid"
    assert stripe_client().v1.invoices.retrieve(invoice.stripe_id).status == "paid"
    [charge] = successful_charges(customer=customer)
    assert (charge.amount, charge.payment_method) == (1900, customer.default_payment_method_id)
    # The pages know at once, without waiting for the webhooks.
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert Subscription.objects.get(customer=customer).status == Subscription.Status.ACTIVE

    _webhooks(committed)
    assert _emails(customer) == ["invoice_paid_now", "payment_received"]
    assert sorted(m.subject for m in mail.outbox) == [
        "Payment received",
        "Your payment of €19.00 went through",
    ]
    listed = client.get("/invoices/").content.decode()
    assert "Pay €19.00 now" not in listed
    assert 'data-test="invoice-status">Paid<' in listed


def test_a_declined_payment_says_why_and_offers_another_card(committed: Callable[[], Any]) -> None:
    customer, invoice = _owing("alan@example.com", default=None)
    client = logged_in(customer)
    change, page = _pay_now(client, invoice, committed)
    assert "The bank declined the payment of €19.00 with Visa •••• 0341. The invoice is still unpaid." in page
    assert "your bank can tell you why, or you can use a different card." in page
    assert f'href="/invoices/{invoice.stripe_id}/pay/"' in page
    assert _result(change).outcome == "declined"
    assert stripe_client().v1.invoices.retrieve(invoice.stripe_id).status == "open"
    assert successful_charges(customer=customer) == []
    _webhooks(committed)
    assert _emails(customer) == ["invoice_payment_declined"]
    [message] = mail.outbox
    assert message.subject == "Your payment of €19.00 was declined"
    assert f"/invoices/{invoice.stripe_id}/pay/" in message.body
    # Declined is not "on its way": the invoice may be paid again at once.
    assert client.get(f"/invoices/{invoice.stripe_id}/pay/").status_code == 200


def test_a_payment_the_bank_wants_approved_is_approved_on_the_change_page(
    committed: Callable[[], Any],
) -> None:
    customer, invoice = _owing("barbara@example.com", default="pm_card_authenticationRequired")
    client = logged_in(customer)
    change, page = _pay_now(client, invoice, committed)
    assert "Your bank wants you to approve the payment of €19.00." in page
    assert "Approve payment" in page
    assert _result(change).outcome == "action_required"

    # The customer approves in the bank's check (Stripe.js on the change page), then the page
    # asks the portal to look again.
    secret = approvals.payment_secret(change=change)
    assert authenticate(intent_id=secret.split("_secret_")[0]) == "succeeded"
    with committed():
        response = client.post(f"/changes/{change.pk}/recheck/", follow=True)
    assert "Done: your payment of €19.00 with Visa •••• 3184 went through" in response.content.decode()
    assert _result(change).outcome == "paid"
    assert len(successful_charges(customer=customer)) == 1

    _webhooks(committed)
    assert _result(change).outcome == "paid"
    assert _emails(customer) == ["invoice_paid_now", "invoice_payment_needs_approval", "payment_received"]


def test_the_webhook_settles_an_approved_payment_when_the_customer_closed_the_tab(
    committed: Callable[[], Any],
) -> None:
    customer, invoice = _owing("closed@example.com", default="pm_card_authenticationRequired")
    change, _page = _pay_now(logged_in(customer), invoice, committed)
    authenticate(intent_id=approvals.payment_secret(change=change).split("_secret_")[0])
    _webhooks(committed)
    assert _result(change).outcome == "paid"
    assert _emails(customer) == ["invoice_paid_now", "invoice_payment_needs_approval", "payment_received"]


def test_another_card_pays_and_becomes_the_default(committed: Callable[[], Any]) -> None:
    customer, invoice = _owing("grace@example.com", default=None)
    client = logged_in(customer)
    assert client.get(f"/invoices/{invoice.stripe_id}/pay/").status_code == 200
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_mastercard")
    with committed():
        response = client.post(f"/invoices/{invoice.stripe_id}/pay/confirm/", {"setup_intent": setup_intent})
        again = client.post(f"/invoices/{invoice.stripe_id}/pay/confirm/", {"setup_intent": setup_intent})
    assert response["Location"] == again["Location"]
    change = BillingChange.objects.get(customer=customer, kind="invoice_pay")
    result = _result(change)
    assert (result.outcome, result.brand, result.last4, result.new_card) == (
        "paid",
        "mastercard",
        "4444",
        True,
    )
    customer.refresh_from_db()
    new_card = stripe_client().v1.setup_intents.retrieve(setup_intent).payment_method
    assert customer.default_payment_method_id == new_card
    [charge] = successful_charges(customer=customer)
    assert charge.payment_method == new_card


def test_paying_with_another_card_instead_of_approving_confirms_one_payment(
    committed: Callable[[], Any],
) -> None:
    """The bank wants the first payment approved; the customer pays with another card instead.
    The first change learns the invoice is paid, but the customer is told of one payment only."""
    customer, invoice = _owing("mary@example.com", default="pm_card_authenticationRequired")
    client = logged_in(customer)
    waiting, _page = _pay_now(client, invoice, committed)
    assert _result(waiting).outcome == "action_required"
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_visa")
    with committed():
        client.post(f"/invoices/{invoice.stripe_id}/pay/confirm/", {"setup_intent": setup_intent})
    _webhooks(committed)
    assert _result(waiting).outcome == "already_paid"
    paid = BillingChange.objects.exclude(pk=waiting.pk).get(customer=customer, kind="invoice_pay")
    assert _result(paid).outcome == "paid"
    assert _emails(customer) == ["invoice_paid_now", "invoice_payment_needs_approval", "payment_received"]
    assert len(successful_charges(customer=customer)) == 1
    page = client.get(f"/changes/{waiting.pk}/").content.decode()
    assert "This invoice had already been paid, so nothing more was charged." in page


def test_a_payment_asked_for_while_stripe_is_down_is_made_once_when_it_is_back(
    stripe_down: StripeSwitch, committed: Callable[[], Any]
) -> None:
    customer, invoice = _owing("edsger@example.com")
    client = logged_in(customer)
    form = _pay_now_form(client, invoice)
    stripe_down()
    with committed():
        response = client.post(f"/invoices/{invoice.stripe_id}/pay/confirm/", form)
    change = BillingChange.objects.get(customer=customer, kind="invoice_pay")
    assert response["Location"] == f"/changes/{change.pk}/"
    assert (
        "Our payment provider is not answering right now" in client.get(response["Location"]).content.decode()
    )
    assert (change.status, change.error_code) == (Status.PENDING, "connection_error")

    # Another click, from another tab, is refused: a payment is already on its way.
    listed = client.get("/invoices/").content.decode()
    assert "A payment of this invoice is already on its way." in listed
    assert "Pay €19.00 now" not in listed
    with committed():
        refused = client.post(
            f"/invoices/{invoice.stripe_id}/pay/confirm/", {**form, "token": "another-tab-1"}, follow=True
        )
    assert "A payment of this invoice is already on its way." in refused.content.decode()
    assert BillingChange.objects.filter(customer=customer).count() == 1

    stripe_down.back()
    assert successful_charges(customer=customer) == []
    change.refresh_from_db()
    assert change.next_attempt_at is not None
    with time_machine.travel(change.next_attempt_at + dt.timedelta(seconds=1)), committed():
        assert tasks.apply_pending_changes() == 1
    assert _result(change).outcome == "paid"
    with committed():
        changes.apply(change_id=change.pk)
    [charge] = successful_charges(customer=customer)
    assert charge.amount == 1900
    _webhooks(committed)
    assert _emails(customer) == ["invoice_paid_now", "payment_received"]


def test_a_payment_tried_again_after_its_answer_was_lost_is_not_made_twice(
    committed: Callable[[], Any],
) -> None:
    """The worker's first try reached Stripe but its answer never came back: the next try, with the
    same idempotency key, gets Stripe's saved answer, and the invoice is paid once."""
    customer, invoice = _owing("lost@example.com")
    change = BillingChange.objects.create(
        customer=customer,
        kind="invoice_pay",
        params={"invoice": invoice.stripe_id, "payment_method": customer.default_payment_method_id},
    )
    stripe_client().v1.invoices.pay(
        invoice.stripe_id,
        params={"payment_method": customer.default_payment_method_id, "off_session": True},
        options={"idempotency_key": change.idempotency_key("pay")},
    )
    with committed():
        changes.apply(change_id=change.pk)
    assert _result(change).outcome == "paid"
    assert len(successful_charges(customer=customer)) == 1


def test_an_invoice_paid_meanwhile_is_not_charged_again(committed: Callable[[], Any]) -> None:
    customer, invoice = _owing("meanwhile@example.com")
    change = BillingChange.objects.create(
        customer=customer,
        kind="invoice_pay",
        params={"invoice": invoice.stripe_id, "payment_method": customer.default_payment_method_id},
    )
    # Paid at Stripe (the hosted page, an automatic retry) before the change was applied.
    stripe_client().v1.invoices.pay(
        invoice.stripe_id, params={"payment_method": customer.default_payment_method_id}
    )
    with committed():
        changes.apply(change_id=change.pk)
    assert _result(change).outcome == "already_paid"
    assert len(successful_charges(customer=customer)) == 1
    assert "invoice_paid_now" not in _emails(customer)


def test_another_customers_invoice_is_not_found_and_nothing_is_paid(committed: Callable[[], Any]) -> None:
    _owner, invoice = _owing("owner@example.com")
    intruder = make_customer(email="intruder@example.com")
    client = logged_in(intruder)
    card = intruder.payment_methods.get()
    assert client.get(f"/invoices/{invoice.stripe_id}/pay/").status_code == 404
    assert client.get(f"/invoices/{invoice.stripe_id}/pay/return/").status_code == 404
    with committed():
        posted = client.post(
            f"/invoices/{invoice.stripe_id}/pay/confirm/", {"token": "intruder-01", "card": str(card.pk)}
        )
        setup = confirmed_setup_intent(customer=intruder)
        with_card = client.post(f"/invoices/{invoice.stripe_id}/pay/confirm/", {"setup_intent": setup})
    assert (posted.status_code, with_card.status_code) == (404, 404)
    assert BillingChange.objects.filter(kind="invoice_pay").count() == 0
    assert stripe_client().v1.invoices.retrieve(invoice.stripe_id).status == "open"
    assert invoice.stripe_id not in client.get("/invoices/").content.decode()


def test_someone_elses_card_never_pays(committed: Callable[[], Any]) -> None:
    customer, invoice = _owing("own@example.com")
    other = make_customer(email="other@example.com")
    client = logged_in(customer)
    form = {**_pay_now_form(client, invoice), "card": str(other.payment_methods.get().pk)}
    with committed():
        response = client.post(f"/invoices/{invoice.stripe_id}/pay/confirm/", form)
    assert response.status_code == 404
    assert BillingChange.objects.filter(kind="invoice_pay").count() == 0
