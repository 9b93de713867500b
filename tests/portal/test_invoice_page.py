"""The Invoices page: every invoice of the customer's, newest first, twenty a page, each with its
number, date, amount, status in words and links to Stripe's hosted page and PDF, and a way to pay
the open ones; from the mirror only, in the same number of queries for one invoice or hundreds."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from billing.models import BillingChange, BillingCustomer, Invoice, PaymentMethod, Subscription
from tests.billing.support import add_mirror_rows, mirror_customer, stripe_counted
from tests.portal_support import logged_in

pytestmark = pytest.mark.django_db


def _rows(html: str) -> list[str]:
    return re.findall(r'data-invoice="(in_[0-9a-f]+)"', html)


def _ordered(customer: BillingCustomer) -> list[str]:
    return list(
        Invoice.objects.filter(customer=customer)
        .order_by("-created", "-pk")
        .values_list("stripe_id", flat=True)
    )


def test_invoices_are_listed_newest_first_twenty_a_page(settings: Any) -> None:
    customer = mirror_customer(email="pages@example.com", cards=1, invoices=45)
    client = logged_in(customer)
    everything = _ordered(customer)
    with stripe_counted(settings) as stripe:
        first = client.get("/invoices/").content.decode()
        second = client.get("/invoices/", {"page": "2"}).content.decode()
        third = client.get("/invoices/", {"page": "3"}).content.decode()
        past = client.get("/invoices/", {"page": "4"}).content.decode()
        nonsense = client.get("/invoices/", {"page": "<script>"}).content.decode()
    assert stripe.calls == 0
    assert _rows(first) == everything[:20]
    assert _rows(second) == everything[20:40]
    assert _rows(third) == everything[40:]
    assert _rows(past) == [] and "There are no more invoices." in past
    assert _rows(nonsense) == everything[:20]
    assert 'href="?page=2"' in first and "Older invoices" in first and "Newer invoices" not in first
    assert 'href="?page=1"' in second and 'href="?page=3"' in second
    assert "Older invoices" not in third and "Page 3" in third


def test_each_invoice_shows_its_number_date_amount_status_and_links() -> None:
    customer = mirror_customer(email="rows@example.com", cards=1, invoices=3)
    Invoice.objects.filter(customer=customer, number="INV-0002").update(
        status=Invoice.Status.UNCOLLECTIBLE, invoice_pdf="https://invoice.example/2/pdf"
    )
    PaymentMethod.objects.filter(customer=customer).update(exp_year=timezone.now().year + 2)
    # Drafts are not final: not listed.
    Invoice.objects.create(
        stripe_id="in_draft000000001",
        customer=customer,
        status=Invoice.Status.DRAFT,
        currency="eur",
        created=timezone.now(),
        stripe_state_at=timezone.now(),
    )
    # Stockholm: the first invoice dated late on 31 January UTC is 1 February there.
    customer.time_zone = "Europe/Stockholm"
    customer.save(update_fields=["time_zone"])
    Invoice.objects.filter(customer=customer, number="INV-0000").update(
        created=dt.datetime(2027, 1, 31, 23, 30, tzinfo=dt.UTC)
    )
    with translation.override("en"):
        html = logged_in(customer).get("/invoices/").content.decode()
    assert "in_draft" not in html
    rows = re.findall(r'<li class="invoice-row".*?</li>', html, re.S)
    by_number = {re.findall(r"INV-\d{4}", row)[0]: row for row in rows}
    unpaid, paid, written_off = by_number["INV-0000"], by_number["INV-0001"], by_number["INV-0002"]
    assert "1 February 2027" in unpaid
    assert "€19.00" in unpaid
    assert 'data-test="invoice-status">Unpaid<' in unpaid
    assert 'data-test="invoice-status">Paid<' in paid
    assert 'data-test="invoice-status">Written off<' in written_off
    assert 'href="https://invoice.example/0"' in unpaid
    assert 'href="https://invoice.example/2/pdf"' in written_off
    # Only the open one can be paid, with the default card or another.
    card = PaymentMethod.objects.get(stripe_id=customer.default_payment_method_id)
    assert f"Pay €19.00 now with {card.brand.title()} •••• {card.last4}" in unpaid
    assert "Pay with another card" in unpaid
    assert "Pay €" not in paid and "Pay €" not in written_off


def test_voided_invoices_and_the_nav_link() -> None:
    customer = mirror_customer(email="void@example.com", cards=1, invoices=3)
    with translation.override("en"):
        html = logged_in(customer).get("/invoices/").content.decode()
    assert 'data-test="invoice-status">Cancelled<' in html
    assert '<a href="/invoices/" aria-current="page">Invoices</a>' in html


def test_an_expired_default_card_is_not_offered_another_card_is() -> None:
    customer = mirror_customer(email="expired@example.com", cards=1, invoices=1)
    PaymentMethod.objects.filter(customer=customer).update(exp_year=timezone.now().year - 2)
    html = logged_in(customer).get("/invoices/").content.decode()
    assert "now with" not in html
    assert "Pay €19.00 with a card" in html
    assert "Your default card has expired. Please pay with another card." in html


def test_a_paused_subscriptions_invoice_says_why_it_cant_be_paid() -> None:
    customer = mirror_customer(email="paused@example.com", cards=1, invoices=1)
    sub = Subscription.objects.get(customer=customer)
    Subscription.objects.filter(pk=sub.pk).update(status=Subscription.Status.PAUSED)
    Invoice.objects.filter(customer=customer).update(subscription_stripe_id=sub.stripe_id)
    client = logged_in(customer)
    html = client.get("/invoices/").content.decode()
    assert "Your subscription is paused, so nothing is collected until it resumes." in html
    assert "Pay €" not in html
    invoice = Invoice.objects.get(customer=customer)
    response = client.get(f"/invoices/{invoice.stripe_id}/pay/", follow=True)
    assert "Your subscription is paused" in response.content.decode()
    assert response.redirect_chain == [("/invoices/", 302)]


def test_the_same_queries_for_one_invoice_or_five_hundred_on_any_page(settings: Any) -> None:
    few = mirror_customer(email="one@example.com", cards=1, invoices=1)
    many = mirror_customer(email="hundreds@example.com", cards=3, invoices=500)
    # Payments on their way for some: one read finds them all.
    for invoice in Invoice.objects.filter(customer=many, status=Invoice.Status.OPEN)[:30]:
        BillingChange.objects.create(customer=many, kind="invoice_pay", params={"invoice": invoice.stripe_id})
    add_mirror_rows(customer=few, cards=0, invoices=0)

    def count(customer: BillingCustomer, page: str) -> int:
        client = logged_in(customer)
        client.get("/invoices/", {"page": page})  # warm
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/invoices/", {"page": page}).status_code == 200
        return len(queries)

    with stripe_counted(settings) as stripe:
        counts = {(c.email, page): count(c, page) for c in (few, many) for page in ("1", "2", "25")}
    assert stripe.calls == 0
    assert len(set(counts.values())) == 1, counts
    assert (
        "A payment of this invoice is already on its way."
        in logged_in(many).get("/invoices/").content.decode()
    )
