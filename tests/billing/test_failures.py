"""Events and messages that keep failing: retried a bounded number of times, then `failed` where
staff see it, and never again by the sweeps, while the rest go on."""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from billing import channels, handlers, policy, tasks
from billing.models import BillingCustomer, Delivery, Invoice, StripeEvent
from tests.billing.conftest import Deliver
from tests.billing.support import pay_in_stripe
from tests.portal_support import emulator_events, make_customer

pytestmark = pytest.mark.usefixtures("catalog")


class DownMailServer(BaseEmailBackend):
    """A mail server that can't be reached."""

    def send_messages(self, email_messages: Any) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def _paid_invoice(email: str) -> tuple[BillingCustomer, Invoice]:
    customer = make_customer(email=email, card="pm_card_chargeCustomerFail")
    invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)
    pay_in_stripe(customer=customer, invoice_id=invoice.stripe_id)
    return customer, invoice


def _at(moment: dt.datetime, committed: Callable[[], Any], job: Callable[[], int]) -> int:
    with time_machine.travel(moment), committed():
        return job()


# --------------------------------------------------------------------------- events


def test_an_event_whose_handler_keeps_failing_ends_failed_and_is_not_queued_again(
    deliver: Deliver, committed: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _customer, invoice = _paid_invoice("event-bug@example.com")
    other_customer, other_invoice = _paid_invoice("event-fine@example.com")

    def broken(customer: BillingCustomer, event: StripeEvent) -> None:
        raise ValueError("a bug in the handler")

    events = emulator_events(types={"invoice.paid"})
    ours = next(e for e in events if e["data"]["object"]["id"] == invoice.stripe_id)
    theirs = next(e for e in events if e["data"]["object"]["id"] == other_invoice.stripe_id)
    with monkeypatch.context() as patch:
        patch.setitem(handlers.HANDLERS, "invoice.paid", broken)
        deliver(ours)
    stored = StripeEvent.objects.get(stripe_id=ours["id"])
    assert (stored.status, stored.attempts) == (StripeEvent.Status.RETRYING, 1)
    assert stored.last_error == "ValueError: a bug in the handler"

    # The bug is still there on every retry; another event meanwhile is processed as usual.
    deliver(theirs)
    assert StripeEvent.objects.get(stripe_id=theirs["id"]).status == StripeEvent.Status.PROCESSED
    with monkeypatch.context() as patch:
        patch.setitem(handlers.HANDLERS, "invoice.paid", broken)
        while stored.status == StripeEvent.Status.RETRYING:
            assert stored.next_attempt_at is not None
            assert (
                _at(stored.next_attempt_at + dt.timedelta(seconds=1), committed, tasks.process_pending_events)
                == 1
            )
            stored.refresh_from_db()
    assert stored.status == StripeEvent.Status.FAILED
    assert stored.attempts == policy.current().events.max_attempts
    assert _at(timezone.now() + dt.timedelta(days=30), committed, tasks.process_pending_events) == 0
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.OPEN

    # Once the bug is fixed, the replay command brings it home.
    from django.core.management import call_command

    with committed():
        call_command("replay_events")
    stored.refresh_from_db()
    assert stored.status == StripeEvent.Status.PROCESSED
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID
    assert other_customer.deliveries.filter(channel=Delivery.Channel.EMAIL).count() == 1


# --------------------------------------------------------------------------- messages


def test_a_message_the_mail_server_never_takes_ends_failed_after_a_day(
    deliver: Deliver, committed: Callable[[], Any], settings: Any
) -> None:
    settings.EMAIL_BACKEND = f"{__name__}.DownMailServer"
    _customer, invoice = _paid_invoice("mail-down@example.com")
    [event] = emulator_events(types={"invoice.paid"})
    deliver(event)
    email = Delivery.objects.get(channel=Delivery.Channel.EMAIL)
    in_app = Delivery.objects.get(channel=Delivery.Channel.IN_APP)
    assert in_app.status == Delivery.Status.SENT  # the portal shows it whatever the mail server does
    assert (email.status, email.attempts) == (Delivery.Status.PENDING, 1)
    assert email.last_error.startswith("ChannelUnavailable: SMTPServerDisconnected")
    assert email.send_after > timezone.now()
    assert _at(timezone.now(), committed, tasks.send_pending_deliveries) == 0  # not due yet

    tries = 1
    while email.status == Delivery.Status.PENDING:
        _at(email.send_after + dt.timedelta(seconds=1), committed, tasks.send_pending_deliveries)
        email.refresh_from_db()
        tries += 1
    assert email.status == Delivery.Status.FAILED
    assert email.attempts == tries
    assert email.send_after - email.created_at >= dt.timedelta(
        seconds=policy.current().messages.give_up_after_seconds
    )
    assert _at(email.send_after + dt.timedelta(days=7), committed, tasks.send_pending_deliveries) == 0
    assert mail.outbox == []
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID  # the payment itself is fine


def test_a_message_that_cannot_be_written_ends_failed_after_its_attempts(
    deliver: Deliver, committed: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _paid_invoice("render-bug@example.com")
    [event] = emulator_events(types={"invoice.paid"})

    def broken(**kwargs: Any) -> None:
        raise LookupError("no such template variable")

    monkeypatch.setattr(channels, "send", broken)
    deliver(event)
    email = Delivery.objects.get(channel=Delivery.Channel.EMAIL)
    while email.status == Delivery.Status.PENDING:
        _at(email.send_after + dt.timedelta(seconds=1), committed, tasks.send_pending_deliveries)
        email.refresh_from_db()
    assert email.status == Delivery.Status.FAILED
    assert email.attempts == policy.current().messages.max_attempts
    assert email.last_error == "LookupError: no such template variable"
