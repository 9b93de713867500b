"""Cancelling from the customer's side: the survey, the honest alternative with its real price,
the cancel at the end of the paid period (kept in Stripe's words too), the undo, what happens to
an unpaid invoice (never charged again), the answers kept, and the usual guarantees: one change
for a double submit, pending then once through an outage, nothing across customers."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.conf import settings
from django.core import mail
from django.test import Client

from billing import sync, tasks
from billing.models import BillingChange, BillingCustomer, CancellationFeedback, Invoice, Subscription
from tests.billing.conftest import StripeSwitch
from tests.portal_support import logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")

Status = BillingChange.Status
DAY = 86400


def _survey(client: Client, reason: str, comment: str = "") -> str:
    response = client.post("/cancel/", {"reason": reason, "comment": comment, "token": "cancel-form-1"})
    assert response.status_code == 200
    return response.content.decode()


def _hidden(html: str, form_action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `form_action` on the page."""
    form = re.search(rf'<form method="post" action="{re.escape(form_action)}">(.*?)</form>', html, re.S)
    assert form, html
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(1)))


def _stripe_sub(customer: BillingCustomer) -> Any:
    return stripe_client().v1.subscriptions.retrieve(Subscription.objects.get(customer=customer).stripe_id)


def test_too_expensive_is_offered_a_cheaper_plan_declines_cancels_then_keeps(
    committed: Callable[[], Any],
) -> None:
    customer = make_customer(email="leaving@example.com", price="pro_month_eur")
    client = logged_in(customer)
    dashboard = client.get("/").content.decode()
    assert 'href="/cancel/"' in dashboard
    survey = client.get("/cancel/").content.decode()
    assert "and then ends. Nothing more is charged." in survey
    # No reason: said, in words, and nothing else happens.
    refused = client.post("/cancel/", {"reason": "", "token": "cancel-form-1"}).content.decode()
    assert "Please choose a reason" in refused

    offer = _survey(client, "too_expensive", "Money is tight this year.")
    assert "Would a cheaper plan help?" in offer
    assert "Switch to Standard (monthly) instead" in offer
    assert re.search(r'data-test="offer-next">€19.00 on ', offer)  # Stripe's preview of the renewal
    with committed():
        response = client.post("/cancel/confirm/", _hidden(offer, "/cancel/confirm/"))
        again = client.post("/cancel/confirm/", _hidden(offer, "/cancel/confirm/"))
    (change,) = BillingChange.objects.filter(customer=customer, kind="subscription_cancel")
    assert response["Location"] == again["Location"] == f"/changes/{change.pk}/"
    assert change.status == Status.APPLIED, change.error_message
    stripe_sub = _stripe_sub(customer)
    assert stripe_sub.cancel_at_period_end is True
    assert (stripe_sub.cancellation_details.feedback, stripe_sub.cancellation_details.comment) == (
        "too_expensive",
        "Money is tight this year.",
    )
    (feedback,) = CancellationFeedback.objects.filter(customer=customer)
    assert (feedback.reason, feedback.offer, feedback.offer_taken, feedback.change_id) == (
        "too_expensive",
        "cheaper_plan",
        False,
        change.pk,
    )
    dashboard = client.get("/").content.decode()
    assert "Ends on " in dashboard and "Keep my subscription" in dashboard
    assert 'href="/cancel/"' not in dashboard
    [ends] = [m for m in mail.outbox if m.subject.startswith("Your subscription ends on ")]
    assert "you can use it until then" in ends.body.lower()

    with committed():
        client.post("/cancel/undo/", {"token": "undo-form-1"})
    assert _stripe_sub(customer).cancel_at_period_end is False
    assert "Ends on " not in client.get("/").content.decode()
    assert [m.subject for m in mail.outbox if m.subject.startswith("You keep")] == [
        "You keep your subscription to Pro (monthly)"
    ]


def test_taking_the_cheaper_plan_instead_schedules_it_and_cancels_nothing(
    committed: Callable[[], Any],
) -> None:
    customer = make_customer(email="stays-cheaper@example.com", price="pro_month_eur")
    client = logged_in(customer)
    offer = _survey(client, "too_expensive")
    with committed():
        client.post("/cancel/offer/", _hidden(offer, "/cancel/offer/"))
    (change,) = BillingChange.objects.filter(customer=customer)
    assert (change.kind, change.status) == ("plan_change", Status.APPLIED)
    sub = Subscription.objects.select_related("scheduled_price").get(customer=customer)
    assert sub.scheduled_price is not None and sub.scheduled_price.lookup_key == "standard_month_eur"
    assert _stripe_sub(customer).cancel_at_period_end is False
    (feedback,) = CancellationFeedback.objects.filter(customer=customer)
    assert (feedback.offer, feedback.offer_taken, feedback.change_id) == ("cheaper_plan", True, change.pk)


def test_a_reason_without_an_alternative_goes_straight_to_the_confirmation() -> None:
    customer = make_customer(email="switching@example.com", price="standard_month_eur")
    page = _survey(logged_in(customer), "switching")
    assert "Would a cheaper plan help?" not in page
    assert _hidden(page, "/cancel/confirm/")["offer"] == "none"


def test_cancelling_drops_a_change_scheduled_for_the_renewal(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="sched-cancel@example.com", price="pro_month_eur")
    client = logged_in(customer)
    offer = _survey(client, "too_expensive")
    client.post("/cancel/offer/", _hidden(offer, "/cancel/offer/"))  # Basic... Standard at the renewal
    page = _survey(client, "switching")
    assert "The change to Standard (monthly) you scheduled won't happen." in html.unescape(page)
    with committed():
        client.post("/cancel/confirm/", _hidden(page, "/cancel/confirm/"))
    change = BillingChange.objects.get(customer=customer, kind="subscription_cancel")
    assert change.status == Status.APPLIED, change.error_message
    stripe_sub = _stripe_sub(customer)
    assert (stripe_sub.cancel_at_period_end, stripe_sub.schedule) == (True, None)
    assert Subscription.objects.get(customer=customer).scheduled_price_id is None


def _past_due(email: str) -> tuple[BillingCustomer, str]:
    """On a test clock: the first month paid, the card then failing, the renewal failed (past due,
    its invoice open with a retry planned).  Returns the customer and the clock."""
    api = stripe_client()
    customer = make_customer(email=email, card=None, price=None)
    clock = api.v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())})
    on_clock = api.v1.customers.create(params={"email": email, "test_clock": clock.id})
    BillingCustomer.objects.filter(pk=customer.pk).update(stripe_customer_id=on_clock.id)
    visa = api.v1.payment_methods.attach("pm_card_visa", params={"customer": on_clock.id})
    api.v1.customers.update(on_clock.id, params={"invoice_settings": {"default_payment_method": visa.id}})
    from billing.models import Price

    price = Price.objects.get(lookup_key="standard_month_eur").stripe_price_id
    api.v1.subscriptions.create(params={"customer": on_clock.id, "items": [{"price": price}]})
    failing = api.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": on_clock.id})
    api.v1.customers.update(on_clock.id, params={"invoice_settings": {"default_payment_method": failing.id}})
    _advance(clock.id, int(time.time()) + 32 * DAY)
    sync.reconcile_customer(customer_id=customer.pk)
    customer.refresh_from_db()
    assert Subscription.objects.get(customer=customer).status == "past_due"
    return customer, clock.id


def _advance(clock: str, to: int) -> None:
    stripe_client().v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})
    requests.post(
        f"{settings.STRIPE_API_BASE}/_emulator/test_clocks/{clock}/wait", json={"timeout": 30}, timeout=35
    ).raise_for_status()


@pytest.mark.parametrize(("policy", "status"), [("void", "void"), ("keep_owed", "open")])
def test_a_customer_whose_payment_fails_is_told_and_never_charged_after_cancelling(
    policy: str, status: str, settings: Any, committed: Callable[[], Any]
) -> None:
    settings.BILLING_POLICY = {"cancel": {"unpaid_invoice": policy}}
    customer, clock = _past_due(f"past-due-{policy}@example.com")
    (unpaid,) = Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN)
    client = logged_in(customer)
    page = _survey(client, "other")
    said = {
        "void": "Your unpaid invoice of €19.00 is cancelled: you won't owe it",
        "keep_owed": "Your unpaid invoice of €19.00 is still owed, but we won't try to charge it again",
    }[policy]
    assert said in html.unescape(page)
    with committed():
        client.post("/cancel/confirm/", _hidden(page, "/cancel/confirm/"))
    invoice = stripe_client().v1.invoices.retrieve(unpaid.stripe_id)
    assert (invoice.status, invoice.next_payment_attempt) == (status, None)
    attempts = invoice.attempt_count
    # Weeks pass: the retries that were planned never happen, and the subscription ends.
    _advance(clock, int(time.time()) + 70 * DAY)
    later = stripe_client().v1.invoices.retrieve(unpaid.stripe_id)
    assert (later.status, later.attempt_count) == (status, attempts)
    charges = stripe_client().v1.charges.list(params={"customer": customer.stripe_customer_id}).data
    assert [c.status for c in charges if c.status == "succeeded"] == ["succeeded"]  # the first month only
    assert _stripe_sub(customer).status == "canceled"


def test_cancel_and_undo_while_stripe_is_down_are_made_once_when_it_is_back(
    stripe_down: StripeSwitch, committed: Callable[[], Any]
) -> None:
    customer = make_customer(email="down-cancel@example.com", price="standard_month_eur")
    client = logged_in(customer)
    page = _survey(client, "switching")
    stripe_down()
    client.post("/cancel/confirm/", _hidden(page, "/cancel/confirm/"))
    client.post("/cancel/confirm/", _hidden(page, "/cancel/confirm/"))
    (cancel,) = BillingChange.objects.filter(customer=customer, kind="subscription_cancel")
    assert cancel.status == Status.PENDING
    stripe_down.back()
    with committed():
        tasks.apply_change(change_id=cancel.pk)
        tasks.apply_change(change_id=cancel.pk)
    cancel.refresh_from_db()
    assert cancel.status == Status.APPLIED
    assert _stripe_sub(customer).cancel_at_period_end is True

    stripe_down()
    client.post("/cancel/undo/", {"token": "undo-down-1"})
    (keep,) = BillingChange.objects.filter(customer=customer, kind="subscription_keep")
    assert keep.status == Status.PENDING
    stripe_down.back()
    with committed():
        tasks.apply_change(change_id=keep.pk)
        tasks.apply_change(change_id=keep.pk)
    keep.refresh_from_db()
    assert keep.status == Status.APPLIED
    assert _stripe_sub(customer).cancel_at_period_end is False
    assert len([m for m in mail.outbox if m.subject.startswith("Your subscription ends on ")]) == 1


def test_one_customer_cant_cancel_or_keep_anothers_subscription() -> None:
    mine = make_customer(email="mine-cancel@example.com", price="standard_month_eur")
    theirs = make_customer(email="theirs-cancel@example.com", price="standard_month_eur")
    their_page = _survey(logged_in(theirs), "too_expensive")
    # Their offer's signed preview is theirs: taking it as me changes nothing.
    response = logged_in(mine).post("/cancel/offer/", _hidden(their_page, "/cancel/offer/"), follow=True)
    assert "This offer is out of date" in response.content.decode()
    assert not BillingChange.objects.exists()
    assert _stripe_sub(theirs).cancel_at_period_end is False
    # A change page of theirs is not found for me.
    logged_in(theirs).post("/cancel/confirm/", _hidden(their_page, "/cancel/confirm/"))
    change = BillingChange.objects.get(customer=theirs)
    assert logged_in(mine).get(f"/changes/{change.pk}/").status_code == 404
    # My undo is about my subscription only (which is not ending).
    logged_in(mine).post("/cancel/undo/", {"token": "undo-mine-1"})
    assert _stripe_sub(theirs).cancel_at_period_end is True
    assert not BillingChange.objects.filter(customer=mine).exists()


def test_not_using_it_is_offered_a_pause_and_takes_it_instead(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="break@example.com", price="standard_month_eur")
    client = logged_in(customer)
    offer = _survey(client, "not_using", "Travelling until spring.")
    assert "Would a break help instead?" in offer
    assert offer.count('name="months"') == 3  # the lengths the policy allows
    with committed():
        response = client.post("/cancel/pause/", {**_hidden(offer, "/cancel/pause/"), "months": "2"})
        again = client.post("/cancel/pause/", {**_hidden(offer, "/cancel/pause/"), "months": "2"})
    (change,) = BillingChange.objects.filter(customer=customer)
    assert response["Location"] == again["Location"] == f"/changes/{change.pk}/"
    assert (change.kind, change.status) == ("subscription_pause", Status.APPLIED), change.error_message
    assert _stripe_sub(customer).status == "paused"
    assert _stripe_sub(customer).cancel_at_period_end is False
    (feedback,) = CancellationFeedback.objects.filter(customer=customer)
    assert (feedback.reason, feedback.comment, feedback.offer, feedback.offer_taken) == (
        "not_using",
        "Travelling until spring.",
        "pause",
        True,
    )


def test_no_pause_is_offered_when_the_rules_refuse_one() -> None:
    # A customer with an unpaid invoice may not pause (billing/pauses.py): no offer, just the cancel.
    customer = make_customer(email="no-break@example.com", price="standard_month_eur")
    Invoice.objects.filter(customer=customer).update(status=Invoice.Status.OPEN, amount_remaining=1900)
    page = _survey(logged_in(customer), "temporary")
    assert "Would a break help instead?" not in page
    assert _hidden(page, "/cancel/confirm/")["offer"] == "none"


@pytest.mark.parametrize(
    ("language", "on_screen", "subject"),
    [
        ("sv", "Klart: ditt abonnemang på Standard (månadsvis) upphör den", "Ditt abonnemang upphör den"),
        ("nl", "Klaar: je abonnement op Standard (maandelijks) stopt op", "Je abonnement stopt op"),
    ],
)
def test_the_cancel_is_confirmed_in_the_customers_language(
    language: str, on_screen: str, subject: str, committed: Callable[[], Any]
) -> None:
    customer = make_customer(
        email=f"cancel-{language}@example.com", language=language, price="standard_month_eur"
    )
    client = logged_in(customer)
    page = _survey(client, "switching")
    with committed():
        response = client.post("/cancel/confirm/", _hidden(page, "/cancel/confirm/"), follow=True)
    assert on_screen in html.unescape(response.content.decode())
    [mailed] = [m for m in mail.outbox if m.to == [customer.email]]
    assert mailed.subject.startswith(subject)
