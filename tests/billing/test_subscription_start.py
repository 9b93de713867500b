"""Starting a subscription from the Plan page: a new sign-up (no Stripe customer yet) or a
customer whose subscription ended picks a plan, pays the first invoice with a card, and is
subscribed once; a declined or unapproved first payment starts nothing; one customer can't start
a subscription with another's card; an outage leaves the start pending, then made once."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from billing import sync, tasks
from billing.models import BillingChange, BillingCustomer, Delivery, Subscription
from billing.services import approvals
from billing.services.customers import customer_create
from billing.services.subscriptions import SubscriptionStartResult
from tests.billing.conftest import StripeSwitch
from tests.billing.support import authenticate, confirmed_setup_intent
from tests.portal_support import PASSWORD, logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")

Status = BillingChange.Status


def _sign_up(email: str) -> BillingCustomer:
    """A customer who just signed up: a portal account, no Stripe customer, no card."""
    user = get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return customer_create(user=user, email=email, language="en")


def _start(customer: BillingCustomer, price: str, *, client: Client | None = None, **data: str) -> Any:
    return (client or logged_in(customer)).post(
        "/plan/start/confirm/", {"price": price, "token": "start-token-1", **data}
    )


def _result(customer: BillingCustomer) -> tuple[BillingChange, SubscriptionStartResult]:
    (change,) = BillingChange.objects.filter(customer=customer, kind="subscription_start")
    assert change.status == Status.APPLIED, (change.status, change.error_code, change.error_message)
    return change, SubscriptionStartResult.model_validate(change.result)


def _stripe_subscriptions(customer: BillingCustomer) -> list[Any]:
    customer.refresh_from_db()
    return (
        stripe_client()
        .v1.subscriptions.list(params={"customer": customer.stripe_customer_id, "status": "all"})
        .data
    )


def test_a_new_sign_up_starts_a_subscription_from_the_plan_page(committed: Callable[[], Any]) -> None:
    customer = _sign_up("new@example.com")
    client = logged_in(customer)
    assert "Choose a plan" in client.get("/").content.decode()
    page = client.get("/plan/").content.decode()
    assert "Choose a plan to start one." in page
    assert page.count('data-test="start"') == 9
    start = client.get("/plan/start/", {"price": "standard_month_eur"}).content.decode()
    assert re.search(r'data-test="start-charge"><strong>€19.00</strong>', start)
    assert 'id="card-form"' in start  # no card yet: the card form

    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_visa")
    with committed():
        again = _start(customer, "standard_month_eur", setup_intent=setup_intent)
        response = _start(customer, "standard_month_eur", client=client, setup_intent=setup_intent)
    change, result = _result(customer)
    # Started and paid: the dashboard, with the confirmation (the second submit lands there too).
    assert response["Location"] == again["Location"] == "/"
    assert (result.outcome, result.amount, result.plan) == ("paid", 1900, "Standard (monthly)")
    (stripe_sub,) = _stripe_subscriptions(customer)
    assert stripe_sub.status == "active"
    assert stripe_client().v1.invoices.retrieve(result.invoice).amount_paid == 1900
    sub = Subscription.objects.select_related("price").get(customer=customer)
    assert (sub.status, sub.price.lookup_key) == ("active", "standard_month_eur")  # type: ignore[union-attr]
    assert [m.subject for m in mail.outbox if "Welcome" in m.subject] == [
        "Welcome: your subscription to Standard (monthly) has started"
    ]
    assert "Done: your subscription to Standard (monthly) has started. €19.00 was charged." in (
        client.get("/").content.decode()
    )
    assert "Done: your subscription to Standard (monthly) has started." in (
        client.get(f"/changes/{change.pk}/").content.decode()
    )
    # Subscribed, the Plan page offers changes, not another start.
    assert 'data-test="start"' not in client.get("/plan/").content.decode()
    refused = client.post(
        "/plan/start/confirm/", {"price": "pro_month_eur", "token": "start-token-2"}, follow=True
    )
    assert "This plan can&#x27;t be started here." in refused.content.decode()
    assert len(_stripe_subscriptions(customer)) == 1


def test_a_customer_whose_subscription_ended_starts_again_with_the_card_they_have(
    committed: Callable[[], Any],
) -> None:
    customer = make_customer(email="ended@example.com", price="basic_month_eur")
    stripe_client().v1.subscriptions.cancel(Subscription.objects.get(customer=customer).stripe_id)
    sync.reconcile_customer(customer_id=customer.pk)
    client = logged_in(customer)
    start = client.get("/plan/start/", {"price": "pro_year_eur"}).content.decode()
    assert "Pay €490.00 with Visa •••• 4242" in start
    with committed():
        _start(customer, "pro_year_eur")
    _change, result = _result(customer)
    assert (result.outcome, result.last4) == ("paid", "4242")
    assert [s.status for s in _stripe_subscriptions(customer)] == ["active", "canceled"]


def test_a_declined_first_payment_starts_nothing_and_says_why(committed: Callable[[], Any]) -> None:
    customer = _sign_up("declined-start@example.com")
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_chargeCustomerFail")
    with committed():
        _start(customer, "standard_month_eur", setup_intent=setup_intent)
    change, result = _result(customer)
    assert (result.outcome, result.decline_code) == ("declined", "generic_decline")
    page = logged_in(customer).get(f"/changes/{change.pk}/").content.decode()
    assert "has not started" in page and "Pay with another card" in page
    plan = logged_in(customer).get("/plan/").content.decode()
    assert "its first payment has not gone through yet" in plan
    assert 'data-test="start"' not in plan
    assert [m.subject for m in mail.outbox if "not started" in m.subject] == [
        "Your subscription to Standard (monthly) has not started yet"
    ]
    assert not Delivery.objects.filter(customer=customer, message="subscription_started").exists()


def test_a_first_payment_the_bank_wants_approved_starts_the_subscription_once_approved(
    committed: Callable[[], Any],
) -> None:
    customer = _sign_up("approve-start@example.com")
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_authenticationRequired")
    with committed():
        _start(customer, "standard_month_eur", setup_intent=setup_intent)
    change, result = _result(customer)
    assert result.outcome == "action_required"
    assert Subscription.objects.get(customer=customer).status == "incomplete"
    secret = approvals.payment_secret(change=change)
    assert authenticate(intent_id=secret.split("_secret_")[0]) == "succeeded"
    with committed():
        approvals.payment_recheck(change=change)
    _change, result = _result(customer)
    assert (result.outcome, result.amount) == ("paid", 1900)
    assert Subscription.objects.get(customer=customer).status == "active"
    assert [m.subject for m in mail.outbox if "Welcome" in m.subject] == [
        "Welcome: your subscription to Standard (monthly) has started"
    ]


def test_another_customers_card_starts_nothing() -> None:
    mine = _sign_up("mine-start@example.com")
    theirs = make_customer(email="theirs-start@example.com", card=None, price=None)
    foreign = confirmed_setup_intent(customer=theirs, payment_method="pm_card_visa")
    _start(mine, "standard_month_eur", setup_intent=foreign)
    (change,) = BillingChange.objects.filter(customer=mine, kind="subscription_start")
    assert (change.status, change.error_code) == (Status.FAILED, "setup_intent_foreign")
    assert not Subscription.objects.exists()
    assert _stripe_subscriptions(theirs) == []


def test_a_start_confirmed_while_stripe_is_down_is_made_once_when_it_is_back(
    stripe_down: StripeSwitch, committed: Callable[[], Any]
) -> None:
    customer = make_customer(email="down-start@example.com", price=None)
    stripe_down()
    _start(customer, "standard_month_eur")
    (change,) = BillingChange.objects.filter(customer=customer, kind="subscription_start")
    assert change.status == Status.PENDING
    stripe_down.back()
    with committed():
        tasks.apply_change(change_id=change.pk)
        tasks.apply_change(change_id=change.pk)
    _change, result = _result(customer)
    assert result.outcome == "paid"
    assert [s.status for s in _stripe_subscriptions(customer)] == ["active"]
    assert Delivery.objects.filter(customer=customer, message="subscription_started").count() == 2
