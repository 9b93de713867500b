"""Notification preferences as the outbox honours them: a channel switched off for a category is
not used for it, and what may not be switched off (payment-critical messages, confirmations of
the customer's own changes, the portal's own list) is sent whatever the opt-outs say."""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail

from billing import messages, outbox, policy, tasks
from billing.channels import LocmemSmsBackend
from billing.messages import MESSAGES, Facts, Message
from billing.models import BillingCustomer, Delivery
from billing.policy import Category, Channel

ALL = (Channel.EMAIL, Channel.SMS, Channel.IN_APP)
# Midday in Stockholm: no quiet hours in the way.
MIDDAY = dt.datetime(2026, 12, 2, 11, 0, tzinfo=dt.UTC)


class DueFacts(Facts):
    amount: int


@pytest.fixture()
def declared(tmp_path: pathlib.Path, settings: Any) -> Iterator[dict[Category, Message]]:
    """A reminder and a payment-critical message on email, text and in-app, with texts of the
    test's own."""
    made = {}
    for category in (Category.REMINDER, Category.PAYMENT_CRITICAL):
        name = f"test_{category}"
        folder = tmp_path / "billing" / "messages" / name
        folder.mkdir(parents=True)
        for part, text in {
            "subject.txt": f"{category} subject",
            "email.txt": f"{category} email",
            "sms.txt": f"{category} text",
            "in_app.txt": f"{category} line",
        }.items():
            (folder / part).write_text(text)
        made[category] = messages.declare(name, category=category, channels=ALL, facts=DueFacts)
    settings.TEMPLATES = [{**engine, "DIRS": [tmp_path, *engine["DIRS"]]} for engine in settings.TEMPLATES]
    LocmemSmsBackend.outbox.clear()
    yield made
    for message in made.values():
        del MESSAGES[message.name]
    LocmemSmsBackend.outbox.clear()


@pytest.fixture()
def texter(db: None) -> BillingCustomer:
    """Switched text messages off for reminders (as the Details page saves it), and tried to for
    payment problems too (an edited request, or an older page): that one can't be."""
    user = get_user_model().objects.create_user(username="texter", email="texter@example.com")
    return BillingCustomer.objects.create(
        user=user,
        email=user.email,
        phone="+46701234567",
        time_zone="Europe/Stockholm",
        opt_outs=["reminder:sms", "payment_critical:sms", "payment_critical"],
    )


def _sent(customer: BillingCustomer, message: Message, about: str, committed: Any) -> dict[str, Delivery]:
    with time_machine.travel(MIDDAY), committed():
        made = outbox.enqueue(
            customer=customer, message=message, about=about, step="due", facts=DueFacts(amount=1)
        )
        tasks.send_pending_deliveries()
    return {d.channel: Delivery.objects.get(pk=d.pk) for d in made}


def test_an_opted_out_text_reminder_is_suppressed_and_a_payment_critical_text_is_still_sent(
    declared: dict[Category, Message], texter: BillingCustomer, committed: Any
) -> None:
    reminder = _sent(texter, declared[Category.REMINDER], "invoice:in_1", committed)
    assert (reminder["sms"].status, reminder["sms"].suppressed_reason) == (
        Delivery.Status.SUPPRESSED,
        "opted_out",
    )
    # Only the channel switched off: the email and the portal's line still go.
    assert reminder["email"].status == reminder["in_app"].status == Delivery.Status.SENT

    critical = _sent(texter, declared[Category.PAYMENT_CRITICAL], "invoice:in_2", committed)
    assert {channel: d.status for channel, d in critical.items()} == dict.fromkeys(
        ("email", "sms", "in_app"), Delivery.Status.SENT
    )
    assert LocmemSmsBackend.outbox == [("+46701234567", "payment_critical text")]
    assert sorted(m.subject for m in mail.outbox) == ["payment_critical subject", "reminder subject"]


def test_the_page_offers_to_switch_off_only_what_may_be() -> None:
    grid = {(p.category, p.channel): p for row in policy.preferences(opt_outs=["reminder:sms"]) for p in row}
    assert not grid[(Category.REMINDER, Channel.SMS)].on
    assert grid[(Category.REMINDER, Channel.EMAIL)].on
    locked = {key for key, pref in grid.items() if pref.locked}
    assert locked == {
        *((Category.PAYMENT_CRITICAL, c) for c in Channel),
        *((Category.CONFIRMATION, c) for c in Channel),
        (Category.REMINDER, Channel.IN_APP),
        (Category.INFORMATION, Channel.IN_APP),
    }
    # Saved from the page: whatever was left unticked among what may be switched off.
    assert policy.opt_outs_from(switched_on={"reminder:email", "information:email", "information:sms"}) == [
        "reminder:sms"
    ]
    # A bare category (as kept before there were channels) still means every channel.
    assert policy.opted_out(category=Category.REMINDER, channel=Channel.EMAIL, opt_outs=["reminder"])
    assert not policy.opted_out(
        category=Category.CONFIRMATION, channel=Channel.EMAIL, opt_outs=["confirmation"]
    )
