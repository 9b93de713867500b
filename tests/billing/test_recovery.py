"""Payment recovery through the emulator: a failed renewal opens one case, the customer hears at
once in their language with a link that fixes it, reminders follow on the policy's days and stop
the moment the payment is made, and a hard decline stops Stripe's retries on that card."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client

from billing import channels
from billing.models import BillingChange, Delivery, Invoice, LinkEvent, PaymentAttempt, RecoveryCase
from billing.services import recovery
from tests.billing.recovery_support import Renewal, emails_to, links_in, recovery_deliveries
from tests.billing.support import confirmed_setup_intent
from tests.portal_support import emulator_events, post_event, stripe_client

pytestmark = pytest.mark.django_db

QUIET_OFF = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}


@pytest.fixture(autouse=True)
def _no_quiet_hours(settings: Any, catalog: None) -> None:
    # The hour these tests run at must not hold their messages (quiet hours have their own test).
    settings.BILLING_POLICY = QUIET_OFF
    channels.LocmemSmsBackend.outbox.clear()


def _deliver_all(committed: Callable[[], Any], *, times: int = 1, shuffle: bool = False) -> None:
    """Every event the emulator emitted, `times` over, in order or shuffled, as Stripe may send them."""
    events = emulator_events() * times
    if shuffle:
        random.Random(7).shuffle(events)
    client = Client()
    for event in events:
        with committed():
            assert post_event(client, event).status_code == 200


def _steps(renewal: Renewal, committed: Callable[[], Any], *, day: float) -> None:
    """The clock moves to `day`, Stripe's events arrive, and the beat job runs at that moment."""
    renewal.move(days=day)
    _deliver_all(committed)
    with committed():
        recovery.send_due_steps(now=renewal.at(day), limit=100)


def test_a_declined_renewal_opens_one_case_and_the_customer_hears_at_once_in_their_language(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="sv-owing@example.com", language="sv")
    renewal.fail()
    # Duplicates and any order: every event five times, shuffled.
    _deliver_all(committed, times=5, shuffle=True)
    case = renewal.case
    assert (case.status, case.family, case.hard, case.decline_codes) == (
        "open",
        "insufficient_funds",
        False,
        ["insufficient_funds"],
    )
    assert (case.amount, case.currency) == (1900, "eur")
    assert case.grace_ends_at == case.opened_at + dt.timedelta(days=14)
    assert PaymentAttempt.objects.filter(case=case).count() >= 1
    (email,) = [m for m in emails_to("sv-owing@example.com") if links_in(m.body)]
    assert "19,00" in email.subject
    assert "Din betalning" in email.subject or "betalning" in email.subject.lower()
    (link,) = links_in(email.body)
    assert [d.channel for d in recovery_deliveries(renewal.customer)] == ["email", "in_app"]
    # The link opens the fix page for this invoice, without a login, in the customer's words.
    page = Client().get(link)
    assert page.status_code == 200
    assert "Lägg till ett nytt kort" in page.content.decode() or "kort" in page.content.decode()


def test_reminders_follow_on_the_policys_days_in_its_channels_and_stop_when_the_card_is_replaced(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="owing@example.com", phone="+46701234567")
    renewal.fail()
    _deliver_all(committed)
    _steps(renewal, committed, day=32 + 3.5)
    _steps(renewal, committed, day=32 + 7.5)
    sent = [(d.message, d.channel) for d in recovery_deliveries(renewal.customer) if d.channel != "in_app"]
    assert sent == [
        ("payment_failed_friendly", "email"),
        ("payment_failed_reminder", "email"),
        ("payment_failed_direct", "email"),
        ("payment_failed_direct", "sms"),
    ]
    (text,) = channels.LocmemSmsBackend.outbox
    assert text[0] == "+46701234567"
    (sms_link,) = links_in(text[1])
    assert len(text[1]) <= 160 * 2
    # From the text message: the page, then its "another card" button (a POST), then a new card.
    anonymous = Client()
    page = anonymous.get(sms_link).content.decode()
    assert "Pay with another card" in page
    invoice_id = renewal.case.invoice_stripe_id
    with committed():
        opened = anonymous.post(sms_link, {"next": "card"})
    assert opened.status_code == 302 and opened["Location"] == f"/invoices/{invoice_id}/pay/"
    assert anonymous.get(opened["Location"]).status_code == 200
    setup_intent = confirmed_setup_intent(customer=renewal.customer, payment_method="pm_card_mastercard")
    with committed():
        paid = anonymous.post(f"/invoices/{invoice_id}/pay/confirm/", {"setup_intent": setup_intent})
    assert paid.status_code == 302 and paid["Location"].startswith("/changes/")
    assert "paid" in anonymous.get(paid["Location"]).content.decode()
    _deliver_all(committed)
    case = renewal.case
    assert (case.status, case.outcome) == ("recovered", "card_update")
    assert Invoice.objects.get(stripe_id=case.invoice_stripe_id).status == "paid"
    # One thank-you, in the channel the customer answered from (the text message), and in-app.
    thanks = Delivery.objects.filter(customer=renewal.customer, message="payment_recovered")
    assert sorted(d.channel for d in thanks) == ["in_app", "sms"]
    assert "Thank you" in channels.LocmemSmsBackend.outbox[-1][1]
    assert LinkEvent.objects.filter(case=case, kind="opened").count() == 1
    assert LinkEvent.objects.filter(case=case, kind="used").count() == 1
    # The final notice was due on day 11: it never goes.
    before = Delivery.objects.count()
    _steps(renewal, committed, day=32 + 12)
    assert Delivery.objects.count() == before
    assert not any("Final notice" in m.subject for m in mail.outbox)


def test_a_lost_card_stops_stripes_retries_and_the_message_asks_for_a_new_card(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="lost@example.com", decline="lost_card")
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    assert (case.family, case.hard, case.action, case.retries_stopped_reason) == (
        "lost_stolen",
        True,
        "update_card",
        "hard_decline",
    )
    invoice = stripe_client().v1.invoices.retrieve(case.invoice_stripe_id)
    assert (invoice.auto_advance, invoice.next_payment_attempt) == (False, None)
    attempts = invoice.attempt_count
    renewal.move(days=32 + 20)
    later = stripe_client().v1.invoices.retrieve(case.invoice_stripe_id)
    assert (later.status, later.attempt_count) == ("open", attempts)
    (email,) = [m for m in emails_to("lost@example.com") if links_in(m.body)]
    assert "Add a new card" in email.body
    assert "try the card again" not in email.body


def test_an_opted_out_reminder_is_not_sent_while_payment_critical_ones_are(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="opted@example.com")
    renewal.customer.opt_outs = ["reminder"]
    renewal.customer.save(update_fields=["opt_outs"])
    renewal.fail()
    _deliver_all(committed)
    _steps(renewal, committed, day=32 + 3.5)
    _steps(renewal, committed, day=32 + 7.5)
    emails = {
        (d.message, d.status, d.suppressed_reason)
        for d in recovery_deliveries(renewal.customer, channel="email")
    }
    assert emails == {
        ("payment_failed_friendly", "sent", ""),
        ("payment_failed_reminder", "suppressed", "opted_out"),
        ("payment_failed_direct", "sent", ""),
    }


def test_a_payment_made_by_stripes_retry_closes_the_case_and_drops_a_reminder_waiting_for_the_morning(
    committed: Callable[[], Any], settings: Any
) -> None:
    renewal = Renewal(email="retry@example.com", time_zone="Europe/Stockholm")
    renewal.fail()
    _deliver_all(committed)
    # A reminder written but held (quiet hours, say) when the retry succeeds.
    settings.BILLING_POLICY = {}  # quiet hours 21:00-08:00, and it is 23:00 in Stockholm
    night = dt.datetime(2027, 1, 12, 22, 0, tzinfo=dt.UTC)
    with time_machine.travel(night, tick=False), committed():
        recovery.send_due_steps(now=renewal.at(32 + 3.5), limit=100)
    held = Delivery.objects.get(customer=renewal.customer, message="payment_failed_reminder", channel="email")
    assert held.status == "pending"
    assert held.send_after == dt.datetime(2027, 1, 13, 7, 0, tzinfo=dt.UTC)  # 08:00 in Stockholm
    from tests.billing.recovery_support import set_decline

    set_decline(payment_method=renewal.card, code=None)
    renewal.move(days=32 + 8)
    _deliver_all(committed)
    case = renewal.case
    assert (case.status, case.outcome) == ("recovered", "retry")
    held.refresh_from_db()
    assert (held.status, held.suppressed_reason) == ("suppressed", "case_closed")
    # The invoice's receipt is the thank-you: one message, not two.
    assert not Delivery.objects.filter(
        customer=renewal.customer, message="payment_received", about=f"invoice:{case.invoice_stripe_id}"
    ).exists()
    assert (
        Delivery.objects.filter(
            customer=renewal.customer, message="payment_recovered", channel="email"
        ).count()
        == 1
    )


def test_every_message_of_a_case_goes_once_under_duplicate_events_and_repeated_sweeps(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="once@example.com", phone="+31612345678")
    renewal.fail()
    renewal.move(days=32 + 7.5)
    for _ in range(3):
        _deliver_all(committed, times=2, shuffle=True)
        with committed():
            recovery.send_due_steps(now=renewal.at(32 + 7.5), limit=100)
    keys = [d.dedupe_key for d in recovery_deliveries(renewal.customer)]
    assert len(keys) == len(set(keys))
    assert len([m for m in emails_to("once@example.com") if links_in(m.body)]) == len(
        recovery_deliveries(renewal.customer, channel="email", status="sent")
    )
    assert RecoveryCase.objects.filter(customer=renewal.customer).count() == 1


def test_a_renewal_the_bank_wants_approved_is_approved_through_the_link(committed: Callable[[], Any]) -> None:
    renewal = Renewal(email="approve@example.com", decline="authentication_required")
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    assert (case.family, case.action, case.hard) == ("authentication", "approve", False)
    (email,) = [m for m in emails_to("approve@example.com") if links_in(m.body)]
    (link,) = links_in(email.body)
    assert "a-" in link  # its purpose: approving the payment
    browser = Client()
    page = browser.get(link).content.decode()
    assert "Approve the payment" in page
    with committed():
        asked = browser.post(link, {"next": "pay", "token": _token(page)})
    assert asked["Location"].startswith("/changes/")
    change = BillingChange.objects.get(customer=renewal.customer, kind="invoice_pay")
    assert change.result["outcome"] == "action_required"  # waiting for the bank's check
    # The bank's check, passed in the customer's browser; Stripe tells the portal by webhook.
    from tests.billing.support import authenticate

    authenticate(intent_id=_intent_of(case.invoice_stripe_id))
    _deliver_all(committed)
    case.refresh_from_db()
    assert (case.status, case.outcome) == ("recovered", "pay_now")
    assert browser.get(asked["Location"]).status_code == 200


def _token(page: str) -> str:
    import re

    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _intent_of(invoice_id: str) -> str:
    invoice = stripe_client().v1.invoices.retrieve(
        invoice_id, params={"expand": ["payments.data.payment.payment_intent"]}
    )
    return str(invoice.payments.data[0].payment.payment_intent.id)
