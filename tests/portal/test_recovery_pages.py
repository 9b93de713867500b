"""The portal while a payment is owed: a banner on every page with the date access lasts until,
the fix page, the messages list with its unread count, the product's pages by access, and the
number of queries per page fixed however many cases and messages a customer has."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import BillingCustomer, Delivery, Invoice, RecoveryCase
from billing.services import recovery
from tests.billing.support import mirror_customer
from tests.portal_support import logged_in

pytestmark = pytest.mark.django_db


def _case(customer: BillingCustomer, *, status: str = "open", grace_days: float = 10) -> RecoveryCase:
    invoice = Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN).first()
    now = timezone.now()
    return RecoveryCase.objects.create(
        customer=customer,
        invoice_stripe_id=invoice.stripe_id if invoice and status == "open" else f"in_{secrets.token_hex(6)}",
        subscription_stripe_id=customer.subscriptions.get().stripe_id,
        amount=1900,
        currency="eur",
        decline_codes=["insufficient_funds"],
        family="insufficient_funds",
        action="pay_now",
        policy=recovery.active_policy(),
        status=status,
        opened_at=now - dt.timedelta(days=2),
        grace_ends_at=now + dt.timedelta(days=grace_days),
    )


def _in_app(customer: BillingCustomer, case: RecoveryCase, *, n: int, read: bool = False) -> None:
    Delivery.objects.bulk_create(
        Delivery(
            customer=customer,
            message="payment_failed_friendly",
            category="payment_critical",
            channel="in_app",
            about=f"invoice:{case.invoice_stripe_id}",
            dedupe_key=f"{customer.pk}:{case.pk}:{i}:in_app:{secrets.token_hex(4)}",
            context=recovery._facts(case, None).model_dump(mode="json"),
            case=case,
            status="sent",
            sent_at=timezone.now(),
            read_at=timezone.now() if read else None,
        )
        for i in range(n)
    )


def test_every_page_says_a_payment_is_owed_and_until_when_access_lasts(settings: Any) -> None:
    customer = mirror_customer(email="banner@example.com")
    case = _case(customer)
    client = logged_in(customer)
    for path in ("/", "/cards/", "/invoices/", "/plan/", "/details/", "/messages/", "/app/"):
        page = client.get(path).content.decode()
        assert 'data-test="recovery-banner"' in page, path
        assert f'href="/fix/{case.pk}/"' in page, path
    fix = client.get(f"/fix/{case.pk}/").content.decode()
    assert 'data-test="recovery-banner"' not in fix  # it is the page the banner leads to
    assert "Your card didn&#x27;t have enough funds" in fix
    # The dashboard's own banner for the unpaid invoice gives way to the case's.
    assert "has not gone through yet" not in client.get("/").content.decode()
    RecoveryCase.objects.filter(pk=case.pk).update(status="recovered")
    assert 'data-test="recovery-banner"' not in client.get("/").content.decode()


def test_a_case_is_someone_elses_fix_page_for_nobody_else() -> None:
    owner = mirror_customer(email="owner-fix@example.com")
    case = _case(owner)
    other = mirror_customer(email="other-fix@example.com")
    assert logged_in(other).get(f"/fix/{case.pk}/").status_code == 404
    assert logged_in(other).post(f"/fix/{case.pk}/pay/", {"token": "x" * 22}).status_code == 404


def test_the_messages_list_marks_what_is_unread_until_the_customer_marks_it_read() -> None:
    customer = mirror_customer(email="inbox@example.com")
    Delivery.objects.filter(customer=customer).update(read_at=timezone.now())
    case = _case(customer)
    _in_app(customer, case, n=2)
    client = logged_in(customer)
    page = client.get("/messages/").content.decode()
    assert '<span class="count" data-test="unread">2 new</span>' in page
    read = Delivery.objects.filter(customer=customer, channel="in_app", status="sent").count() - 2
    assert page.count('class="unread"') == 2 and page.count('class="read"') == read > 0
    # Looking is not reading: a GET changes nothing; the button does.
    assert Delivery.objects.filter(customer=customer, read_at=None).count() == 2
    assert client.post("/messages/read/").status_code == 302
    assert 'data-test="unread"' not in client.get("/messages/").content.decode()


def test_the_product_asks_for_access_in_one_place() -> None:
    customer = mirror_customer(email="product@example.com")
    client = logged_in(customer)
    assert client.get("/app/").status_code == 200
    case = _case(customer)
    graced = client.get("/app/").content.decode()
    assert 'data-level="grace"' in graced
    RecoveryCase.objects.filter(pk=case.pk).update(grace_ends_at=timezone.now() - dt.timedelta(minutes=1))
    restricted = client.get("/app/")
    assert restricted.status_code == 402
    assert 'data-level="restricted"' in restricted.content.decode()
    assert f'href="/fix/{case.pk}/"' in restricted.content.decode()


def _queries(client: Any, path: str) -> int:
    client.get(path)  # warm
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code in (200, 402)
    return len(queries)


def test_queries_per_page_with_an_open_case_do_not_grow_with_cases_or_messages() -> None:
    few = mirror_customer(email="few-cases@example.com")
    many = mirror_customer(email="many-cases@example.com", cards=10, invoices=20)
    few_case = _case(few)
    many_case = _case(many)
    _in_app(few, few_case, n=1)
    for _ in range(20):
        old = _case(many, status="recovered")
        _in_app(many, old, n=5, read=True)
    _in_app(many, many_case, n=30)
    for path in ("/", "/cards/", "/invoices/", "/messages/", "/app/"):
        assert _queries(logged_in(few), path) == _queries(logged_in(many), path), path
    assert _queries(logged_in(few), f"/fix/{few_case.pk}/") == _queries(
        logged_in(many), f"/fix/{many_case.pk}/"
    )
