"""A GET never calls Stripe, and costs the same number of SQL queries whether the customer has one
card and one invoice or dozens."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import gateway
from billing.errors import StripeUnavailable
from billing.models import (
    BillingChange,
    BillingCustomer,
    Delivery,
    Invoice,
    PaymentMethod,
    Price,
    Subscription,
    Tier,
)
from billing.money import customer_zone, format_day
from tests.billing.support import mirror_customer, stripe_counted
from tests.portal_support import logged_in

pytestmark = pytest.mark.django_db


def _pages(customer: BillingCustomer) -> dict[str, dict[str, Any]]:
    """Every page a customer can GET, with the headers it is requested with."""
    change = BillingChange.objects.filter(customer=customer).order_by("created_at").first()
    assert change is not None
    unpaid = Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN).order_by("created").first()
    assert unpaid is not None
    return {
        "dashboard": {"path": "/"},
        "cards": {"path": "/cards/"},
        "plan": {"path": "/plan/"},
        "cancel": {"path": "/cancel/"},
        "add card": {"path": "/cards/add/"},
        "details": {"path": "/details/"},
        "change": {"path": f"/changes/{change.pk}/"},
        "pause": {"path": "/pause/"},
        "change (htmx poll)": {"path": f"/changes/{change.pk}/", "HTTP_HX_REQUEST": "true"},
        "back from the bank": {
            "path": "/cards/return/",
            "data": {"setup_intent": "seti_1234567890abcdef", "redirect_status": "succeeded"},
        },
        "invoices": {"path": "/invoices/"},
        "invoices, page 2": {"path": "/invoices/", "data": {"page": "2"}},
        "pay an invoice with another card": {"path": f"/invoices/{unpaid.stripe_id}/pay/"},
        "back from the bank, paying an invoice": {
            "path": f"/invoices/{unpaid.stripe_id}/pay/return/",
            "data": {"setup_intent": "seti_1234567890abcdef", "redirect_status": "succeeded"},
        },
        "back from the bank, refused": {
            "path": "/cards/return/",
            "data": {"setup_intent": "seti_1234567890abcdef", "redirect_status": "failed"},
        },
    }


def _get(client: Client, page: dict[str, Any]) -> Any:
    response = client.get(**page)
    assert response.status_code == 200, page
    return response


def test_no_page_calls_stripe(settings: Any) -> None:
    customer = mirror_customer(email="reader@example.com", cards=5, invoices=6)
    client = logged_in(customer)
    with stripe_counted(settings) as stripe:
        for page in _pages(customer).values():
            _get(client, page)
        assert stripe.calls == 0
        # The control: a call, had a page made one, is counted (and fails as Stripe being down).
        with pytest.raises(StripeUnavailable):
            gateway.customer_retrieve(customer_id=str(customer.stripe_customer_id))
        assert stripe.calls == 1


def test_pages_show_the_mirror(settings: Any) -> None:
    """What the no-call test renders is the customer's state, not an empty shell."""
    customer = mirror_customer(email="shown@example.com", cards=3, invoices=3)
    client = logged_in(customer)
    with stripe_counted(settings) as stripe:
        dashboard = _get(client, {"path": "/"}).content.decode()
        cards = _get(client, {"path": "/cards/"}).content.decode()
    assert stripe.calls == 0
    default = PaymentMethod.objects.get(stripe_id=customer.default_payment_method_id)
    assert f"•••• {default.last4}" in dashboard
    assert "A payment of €19.00 has not gone through yet." in dashboard
    for card in PaymentMethod.objects.filter(customer=customer):
        assert f'data-card="{card.last4}"' in cards


def _query_counts(customer: BillingCustomer) -> dict[str, int]:
    client = logged_in(customer)
    pages = _pages(customer)
    for page in pages.values():
        _get(client, page)  # warm: the first request of a session may read more than later ones
    counts = {}
    for name, page in pages.items():
        with CaptureQueriesContext(connection) as queries:
            _get(client, page)
        counts[name] = len(queries)
    return counts


def test_queries_per_page_do_not_grow_with_cards_invoices_changes_or_messages(settings: Any) -> None:
    few = mirror_customer(email="few@example.com", cards=1, invoices=1)
    many = mirror_customer(email="many@example.com", cards=25, invoices=40)
    assert PaymentMethod.objects.filter(customer=many).count() == 25
    assert Invoice.objects.filter(customer=many, status=Invoice.Status.OPEN).count() >= 13
    assert (
        BillingChange.objects.filter(customer=many).count()
        > BillingChange.objects.filter(customer=few).count()
    )
    assert Delivery.objects.filter(customer=many).count() > Delivery.objects.filter(customer=few).count()
    # A catalog the Plan page lists, and a downgrade scheduled for the renewal on the dashboard.
    standard = Price.objects.get(lookup_key="standard_month_eur")
    Price.objects.filter(pk=standard.pk).update(stripe_price_id="price_standard")
    basic_tier = Tier.objects.create(key="basic", name="Basic", rank=1)
    basic = Price.objects.create(
        tier=basic_tier,
        interval="month",
        currency="eur",
        unit_amount=900,
        lookup_key="basic_month_eur",
        stripe_price_id="price_basic",
    )
    Subscription.objects.filter(customer=many).update(
        scheduled_price=basic,
        scheduled_at=timezone.now() + dt.timedelta(days=30),
        schedule_id="sub_sched_1",
        # And an upgrade waiting for its payment.
        pending_price=standard,
        pending_expires_at=timezone.now() + dt.timedelta(hours=20),
    )
    page = logged_in(many).get("/").content.decode()
    assert "Changes to Basic (monthly) on " in page
    assert "Your change to Standard is waiting for its payment." in page

    with stripe_counted(settings) as stripe:
        few_counts = _query_counts(few)
        many_counts = _query_counts(many)
    assert stripe.calls == 0
    assert many_counts == few_counts
    # And few at that: a page is a handful of indexed reads.
    assert max(few_counts.values()) <= 12, few_counts


def test_the_pause_page_and_a_paused_dashboard_call_no_stripe_in_fixed_queries(settings: Any) -> None:
    """Paused (Stripe's pause, with the portal's resume date and the pause that made it), the
    dashboard says until when and offers the resume, and the pause page previews the resume."""
    few = mirror_customer(email="paused-few@example.com", cards=1, invoices=0)
    many = mirror_customer(email="paused-many@example.com", cards=25, invoices=0)
    resumes_at = timezone.now() + dt.timedelta(days=40)
    for customer in (few, many):
        Invoice.objects.filter(customer=customer).delete()
        Subscription.objects.filter(customer=customer).update(
            status=Subscription.Status.PAUSED, pause_resumes_at=resumes_at
        )
        BillingChange.objects.create(
            customer=customer,
            kind="subscription_pause",
            status=BillingChange.Status.APPLIED,
            applied_at=timezone.now() - dt.timedelta(days=20),
            params={"subscription": "sub_x", "months": 2, "resumes_at": int(resumes_at.timestamp())},
            result={
                "subscription": "sub_x",
                "plan": "Standard (monthly)",
                "currency": "eur",
                "resumes_at": resumes_at.isoformat(),
                "credit": 1200,
                "next_amount": 700,
            },
        )
    client = logged_in(few)
    with stripe_counted(settings) as stripe:
        dashboard = _get(client, {"path": "/"}).content.decode()
        pause = _get(client, {"path": "/pause/"}).content.decode()
    assert stripe.calls == 0
    with timezone.override(customer_zone(customer.time_zone)):  # the date as the page shows it
        until = format_day(value=resumes_at, language="en")
    assert f"Paused until {until}" in dashboard
    assert 'data-test="resume"' in dashboard
    assert "Resume now and pay €7.00" in pause

    def counts(customer: BillingCustomer) -> dict[str, int]:
        found = {}
        client = logged_in(customer)
        for path in ("/", "/pause/"):
            _get(client, {"path": path})
            with CaptureQueriesContext(connection) as queries:
                _get(client, {"path": path})
            found[path] = len(queries)
        return found

    with stripe_counted(settings) as stripe:
        assert counts(few) == counts(many)
    assert stripe.calls == 0
    assert max(counts(few).values()) <= 12
