"""The "more time to pay" page: who may open it and what it shows, a form that says what is wrong in
the customer's language and loses nothing, a GET that never asks, CSRF on the POST, the staff
queue closed to customers, and queries fixed however many requests a customer made."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing.models import BillingCustomer, Extension
from billing.money import customer_zone
from tests.billing.support import mirror_customer
from tests.portal.test_recovery_pages import _case
from tests.portal_support import logged_in

pytestmark = pytest.mark.django_db


def _due_day(customer: BillingCustomer, days: int) -> dt.date:
    case = customer.recovery_cases.get(status="open")
    return case.opened_at.astimezone(customer_zone(customer.time_zone)).date() + dt.timedelta(days=days)


def test_without_a_payment_to_move_the_page_says_so() -> None:
    customer = mirror_customer(email="paid-up@example.com")
    page = logged_in(customer).get("/extend/").content.decode()
    assert "There is no payment to move at the moment" in page
    assert 'type="date"' not in page


def test_the_calendar_is_limited_to_the_policys_dates() -> None:
    customer = mirror_customer(email="calendar@example.com")
    _case(customer)
    page = logged_in(customer).get("/extend/").content.decode()
    # The case opened two days ago: from tomorrow (the due day + 3) to the due day + 14.
    assert f'min="{(_due_day(customer, 3)).isoformat()}"' in page
    assert f'max="{(_due_day(customer, 14)).isoformat()}"' in page
    assert "Up to 7 days after the original date is agreed at once" in page


def test_a_date_out_of_range_is_refused_in_the_customers_language_and_the_reason_is_kept() -> None:
    customer = mirror_customer(email="sv-later@example.com")
    BillingCustomer.objects.filter(pk=customer.pk).update(language="sv")
    _case(customer)
    client = logged_in(customer)
    answer = client.post("/extend/", {"until": _due_day(customer, 20).isoformat(), "reason": "lön den 25:e"})
    page = answer.content.decode()
    assert answer.status_code == 400
    assert "Välj ett datum" in page
    assert "lön den 25:e" in page  # nothing typed is lost
    assert not Extension.objects.exists()
    missing = client.post("/extend/", {"until": "", "reason": ""})
    assert missing.status_code == 400 and "Välj det datum du kan betala" in missing.content.decode()


def test_a_get_never_asks_and_a_post_needs_its_csrf_token() -> None:
    customer = mirror_customer(email="csrf-later@example.com")
    _case(customer)
    until = _due_day(customer, 3).isoformat()
    client = logged_in(customer)
    assert client.get(f"/extend/?until={until}").status_code == 200
    assert not Extension.objects.exists()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(customer.user)
    assert strict.post("/extend/", {"until": until}).status_code == 403
    assert not Extension.objects.exists()


def test_nobody_else_reaches_the_page_or_the_staff_queue() -> None:
    customer = mirror_customer(email="mine-later@example.com")
    _case(customer)
    assert Client().get("/extend/")["Location"].startswith("/accounts/login/")
    other = mirror_customer(email="theirs@example.com")
    # Another customer's page is their own: nothing of the first customer's payment.
    assert "There is no payment to move" in logged_in(other).get("/extend/").content.decode()
    assert logged_in(customer).get("/admin/billing/extension/").status_code == 302
    assert logged_in(customer).get("/admin/billing/extension/1/decide/").status_code == 302


def _queries(client: Client, path: str) -> int:
    client.get(path)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


def test_queries_on_the_page_do_not_grow_with_past_requests(settings: Any) -> None:
    few = mirror_customer(email="few-ext@example.com")
    many = mirror_customer(email="many-ext@example.com", cards=10, invoices=20)
    case = _case(many)
    for days in range(1, 6):
        Extension.objects.create(
            customer=many,
            kind="after_failure",
            status="denied",
            subscription_stripe_id=f"sub_old_{days}",
            amount=1900,
            currency="eur",
            due_at=case.opened_at,
            until=_due_day(many, days),
            charge_at=case.opened_at + dt.timedelta(days=days),
        )
    _case(few)
    assert _queries(logged_in(few), "/extend/") == _queries(logged_in(many), "/extend/")


def test_before_a_close_renewal_the_dashboard_offers_more_time_and_the_page_says_the_renewal() -> None:
    from django.utils import timezone

    from billing.models import Subscription

    customer = mirror_customer(email="renewing-soon@example.com", invoices=0)
    Subscription.objects.filter(customer=customer).update(
        status=Subscription.Status.ACTIVE, current_period_end=timezone.now() + dt.timedelta(days=5)
    )
    client = logged_in(customer)
    assert "Can't pay on that date?" in client.get("/").content.decode()
    page = client.get("/extend/").content.decode()
    assert "Your subscription renews on" in page and "when we charge €19.00" in page
    assert 'type="date"' in page
    # A renewal a month away is not close enough to move yet.
    Subscription.objects.filter(customer=customer).update(
        current_period_end=timezone.now() + dt.timedelta(days=25)
    )
    assert "There is no payment to move at the moment" in client.get("/extend/").content.decode()
