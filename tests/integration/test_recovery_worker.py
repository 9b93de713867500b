"""Payment recovery with its real moving parts: a renewal declined on the emulator's test clock,
Stripe's webhooks posted by the test and processed by a `celery worker` process through Redis,
and the messages sent by that worker through transports the test reads back (emails and text
messages in files, or the Twilio stand-in).

No beat process runs here: the test runs the recovery job's work itself
(`recovery.send_due_steps` at the clock's time) and sends the outbox's sweep task when it says
so.  Quiet hours are off for the test and for the workers, so the hour the suite runs at never
holds a message back.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import random
import re
import signal
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db.models import F
from django.test import Client
from django.utils import timezone, translation
from django.utils.translation import gettext

from billing import links, messages, sms, tasks
from billing.models import BillingCustomer, Delivery, Invoice, LinkEvent, RecoveryCase, StripeEvent
from billing.money import customer_zone
from billing.policy import Channel
from billing.services import recovery
from tests.billing.recovery_support import Renewal, links_in
from tests.billing.support import confirmed_setup_intent
from tests.integration.support import FAST_RETRIES, VISIBILITY_TIMEOUT_SECONDS, Worker, Workers, wait_until
from tests.portal_support import emulator_events, post_event, stripe_client
from tests.support.twilio_standin import TwilioStandin

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

QUIET_OFF = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}
# The workers' policy: the fixture's short retries, and no quiet hours.
POLICY = {**FAST_RETRIES, **QUIET_OFF}
RENEWAL_DAY = 32  # Renewal.fail() moves the clock this far: the renewal is declined on the way
PHONE = "+31612345678"

TWILIO_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TWILIO_AUTH_TOKEN = "tok-" + "7c1e4b" * 5
TWILIO_FROM = "+15005550006"

# The first message's subject (templates/billing/messages/payment_failed_friendly/subject.txt).
SUBJECT_MSGID = "Your payment of %(amount)s didn't go through"


# --------------------------------------------------------------------------- transports


@pytest.fixture()
def mailbox(tmp_path: Path) -> Path:
    """Where the workers' file email backend writes (Django's filebased backend)."""
    folder = tmp_path / "mailbox"
    folder.mkdir()
    return folder


@pytest.fixture()
def sms_folder(tmp_path: Path) -> Path:
    """Where billing.sms.FileSmsBackend appends the workers' text messages."""
    folder = tmp_path / "sms"
    folder.mkdir()
    return folder


@pytest.fixture()
def standin() -> Iterator[TwilioStandin]:
    server = TwilioStandin(account_sid=TWILIO_ACCOUNT_SID, auth_token=TWILIO_AUTH_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture()
def worker_env(request: pytest.FixtureRequest, mailbox: Path, sms_folder: Path) -> dict[str, str]:
    """The workers send emails to `mailbox` and text messages to `sms_folder` (the file backends),
    or, for a test that asks for the `standin` fixture, through Twilio's client to the stand-in;
    quiet hours off (BILLING_POLICY, JSON, read by portal/settings.py)."""
    env = {
        "BILLING_POLICY": json.dumps(POLICY),
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "DJANGO_EMAIL_FILE_PATH": str(mailbox),
        "BILLING_SMS_BACKEND": "billing.sms.FileSmsBackend",
        "BILLING_SMS_FILE_PATH": str(sms_folder),
    }
    if "standin" in request.fixturenames:
        server: TwilioStandin = request.getfixturevalue("standin")
        env.update(
            BILLING_SMS_BACKEND="billing.sms.TwilioSmsBackend",
            TWILIO_ACCOUNT_SID=TWILIO_ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=TWILIO_AUTH_TOKEN,
            TWILIO_FROM=TWILIO_FROM,
            TWILIO_API_BASE=server.url,
            # Longer than the test: a held request is ended by the kill, not by the client.
            TWILIO_TIMEOUT_SECONDS="300",
        )
    return env


@pytest.fixture(autouse=True)
def _test_process(settings: Any, mailbox: Path, sms_folder: Path) -> None:
    """This process (the web requests the test makes, the recovery job it runs) with the same
    policy and transports as the workers: a message it sent itself would be counted too."""
    settings.BILLING_POLICY = POLICY
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(mailbox)
    settings.BILLING_SMS_BACKEND = "billing.sms.FileSmsBackend"
    settings.BILLING_SMS_FILE_PATH = sms_folder


def read_mailbox(folder: Path) -> list[EmailMessage]:
    """Every email the file backend wrote to `folder` (each file: messages, each followed by a
    line of 79 dashes)."""
    found: list[EmailMessage] = []
    for path in sorted(folder.glob("*.log")):
        for chunk in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if chunk.strip():
                parsed = email.message_from_bytes(chunk, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                found.append(parsed)
    return found


def subject(message: EmailMessage) -> str:
    # Unfolded: Django folds a long encoded subject onto the next line ("Subject: \n =?utf-8?...").
    return str(message["Subject"]).strip()


def plain_text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def delivery_of_link(url: str) -> int:
    """The delivery a deep link names (its token starts with the delivery's id, base 36)."""
    token = links.parse(url.rstrip("/").rsplit("/", 1)[-1])
    assert token is not None, url
    return token.delivery_id


def rendered(delivery: Delivery, customer: BillingCustomer, *, language: str) -> messages.Rendered:
    """The delivery as billing.messages renders it with `language` active (in the customer's
    time zone), as the outbox does with the customer's language when it sends."""
    message = messages.MESSAGES[delivery.message]
    with translation.override(language), timezone.override(customer_zone(customer.time_zone)):
        return messages.render(
            message=message,
            channel=Channel(delivery.channel),
            facts=messages.facts_of(message=message, context=delivery.context),
            customer=customer,
            delivery_id=delivery.pk,
        )


# --------------------------------------------------------------------------- events and deliveries


class Webhooks:
    """Posts the emulator's events to the webhook endpoint as Stripe would (each new one once, or
    all of them again), and waits for the worker to have processed what it posted."""

    def __init__(self) -> None:
        self.client = Client()
        self.posted: set[str] = set()

    def post(self, event: dict[str, Any]) -> None:
        assert post_event(self.client, event).status_code == 200
        self.posted.add(event["id"])

    def new(self) -> list[dict[str, Any]]:
        return [event for event in emulator_events() if event["id"] not in self.posted]

    def post_new(self) -> None:
        for event in self.new():
            self.post(event)

    def processed(self, *, workers: list[Worker]) -> None:
        def done() -> bool:
            stored = StripeEvent.objects.filter(stripe_id__in=self.posted)
            return (
                stored.count() == len(self.posted)
                and not stored.exclude(
                    status__in=(StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED)
                ).exists()
            )

        wait_until(done, timeout=40, what="the worker to process every posted event", workers=workers)


def deliveries(customer: BillingCustomer, **filters: Any) -> list[Delivery]:
    return list(Delivery.objects.filter(customer=customer, **filters).order_by("created_at", "pk"))


def wait_sent(
    customer: BillingCustomer, *, message: str, workers: list[Worker], count: int = 1
) -> list[Delivery]:
    """The message's deliveries to the customer once every one of them (`count`) is sent or
    suppressed (nothing of it waiting or being sent any more)."""

    def settled() -> list[Delivery] | None:
        found = deliveries(customer, message=message)
        if len(found) == count and all(d.status in ("sent", "suppressed") for d in found):
            return found
        return None

    return wait_until(settled, timeout=30, what=f"{message} to be sent", workers=workers)


def steps_at(renewal: Renewal, hooks: Webhooks, *, day: float, workers: list[Worker]) -> None:
    """The clock moves to `day` after the start, Stripe's new events (its retries) reach the worker
    and are processed, and the recovery job runs at that moment (as beat would, every minute)."""
    renewal.move(days=day)
    hooks.post_new()
    hooks.processed(workers=workers)
    recovery.send_due_steps(now=renewal.at(day), limit=100)


def _task_ids(log: str, task: str, what: str) -> set[str]:
    return set(re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] {what}", log))


# --------------------------------------------------------------------------- 1. the whole episode


def test_a_declined_renewal_is_recovered_from_the_text_message_with_one_thank_you(
    catalog: None,
    workers: Workers,
    mailbox: Path,
    sms_folder: Path,
) -> None:
    """`insufficient_funds` from start to end: the worker sends the first message in the customer's
    language within a minute of `invoice.payment_failed` arriving, the reminders follow on days
    3 and 7 in the policy's channels (the text message through the file backend), the customer
    pays with a new card from the text message's link, the case closes `recovered`
    (`card_update`), one thank-you goes in the channel they used (and in-app), and the final
    notice never goes."""
    renewal = Renewal(email="nl-owing@example.com", language="nl", phone=PHONE)
    customer = renewal.customer
    worker = workers.start()
    renewal.fail()
    hooks = Webhooks()

    # Stripe's events of the renewal, in the order it emitted them; the clock starts when the
    # failure reaches the site.
    events = hooks.new()
    assert [e["type"] for e in events].count("invoice.payment_failed") == 1
    failure_posted_at = None
    for event in events:
        if event["type"] == "invoice.payment_failed":
            failure_posted_at = timezone.now()
        hooks.post(event)
    assert failure_posted_at is not None
    [first, in_app] = wait_sent(customer, message="payment_failed_friendly", workers=[worker], count=2)
    assert (first.channel, first.status, in_app.channel, in_app.status) == ("email", "sent", "in_app", "sent")
    assert first.created_at >= failure_posted_at  # the case was opened by that webhook
    assert first.sent_at is not None
    took = (first.sent_at - failure_posted_at).total_seconds()
    print(f"\nfirst message sent {took:.3f} s after invoice.payment_failed was posted")
    assert took < 60, took
    hooks.processed(workers=[worker])

    case = renewal.case
    assert (case.status, case.family, case.hard, case.decline_codes) == (
        "open",
        "insufficient_funds",
        False,
        ["insufficient_funds"],
    )
    assert (case.amount, case.currency) == (1900, "eur")

    # The email, in the customer's language: exactly what billing.messages renders with Dutch
    # active, and not what it renders in English (today the amount's Dutch format tells them
    # apart; once the Dutch texts are in, the words as well).
    [mail] = [m for m in read_mailbox(mailbox) if links_in(plain_text(m))]
    assert mail["To"] == "nl-owing@example.com"
    dutch = rendered(first, customer, language="nl")
    english = rendered(first, customer, language="en")
    assert subject(mail) == dutch.subject
    assert dutch.subject != english.subject
    assert "19,00" in dutch.subject and "19.00" in english.subject
    with translation.override("nl"):
        translated = gettext(SUBJECT_MSGID) != SUBJECT_MSGID
    if translated:
        assert "payment" not in subject(mail).lower(), subject(mail)
    body = plain_text(mail)
    assert body.strip() == dutch.text.strip()
    # A working deep link: it names this delivery, and opens the case's fix page without a login.
    [link] = links_in(body)
    assert delivery_of_link(link) == first.pk
    page = Client().get(link)
    assert page.status_code == 200
    assert 'data-test="fix-title"' in page.content.decode()

    # Day 3: a reminder by email; day 7: a direct one by email and text message.
    steps_at(renewal, hooks, day=RENEWAL_DAY + 3.5, workers=[worker])
    [reminder] = wait_sent(customer, message="payment_failed_reminder", workers=[worker])
    assert (reminder.channel, reminder.status) == ("email", "sent")
    steps_at(renewal, hooks, day=RENEWAL_DAY + 7.5, workers=[worker])
    direct = wait_sent(customer, message="payment_failed_direct", workers=[worker], count=2)
    assert [(d.channel, d.status) for d in direct] == [("email", "sent"), ("sms", "sent")]
    [text] = sms.read_texts(folder=sms_folder)
    assert text.to == PHONE
    assert text.text == rendered(direct[1], customer, language="nl").text
    [sms_link] = links_in(text.text)
    assert delivery_of_link(sms_link) == direct[1].pk

    # From the text message: the page, then its "Pay with another card" button (a POST), the
    # pay page, and a new card that pays the invoice.
    browser = Client()
    page_html = browser.get(sms_link).content.decode()
    other_card = re.search(
        r'<form method="post" action="([^"]+)">(?:(?!</form>).)*name="next" value="card"', page_html, re.S
    )
    assert other_card is not None, page_html
    opened = browser.post(other_card.group(1), {"next": "card"})
    invoice_id = case.invoice_stripe_id
    assert (opened.status_code, opened["Location"]) == (302, f"/invoices/{invoice_id}/pay/")
    assert browser.get(opened["Location"]).status_code == 200
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_mastercard")
    paid = browser.post(f"/invoices/{invoice_id}/pay/confirm/", {"setup_intent": setup_intent})
    assert paid.status_code == 302 and paid["Location"].startswith("/changes/")
    assert stripe_client().v1.invoices.retrieve(invoice_id).status == "paid"
    # Stripe's events of the payment (and every earlier one again) reach the worker.
    hooks.post_new()
    for event in emulator_events():
        hooks.post(event)
    hooks.processed(workers=[worker])

    case.refresh_from_db()
    assert (case.status, case.outcome) == ("recovered", "card_update")
    assert Invoice.objects.get(stripe_id=invoice_id).status == "paid"
    assert LinkEvent.objects.filter(case=case, kind="opened").get().delivery_id == direct[1].pk
    assert LinkEvent.objects.filter(case=case, kind="used").count() == 1
    # One thank-you: by text message (the channel they answered from) and in-app, nothing more.
    thanks = wait_sent(customer, message="payment_recovered", workers=[worker], count=2)
    assert sorted((d.channel, d.status) for d in thanks) == [("in_app", "sent"), ("sms", "sent")]
    [thank_you_sms] = [d for d in thanks if d.channel == "sms"]
    texts = sms.read_texts(folder=sms_folder)
    assert [t.text for t in texts] == [text.text, rendered(thank_you_sms, customer, language="nl").text]
    assert texts[1].to == PHONE

    # Day 12: the final notice was due on day 11; the case is closed, so it never goes.
    before = Delivery.objects.count()
    renewal.move(days=RENEWAL_DAY + 12)
    assert recovery.send_due_steps(now=renewal.at(RENEWAL_DAY + 12), limit=100) == 0
    assert Delivery.objects.count() == before
    assert not Delivery.objects.filter(customer=customer, message="payment_failed_final").exists()
    assert len(sms.read_texts(folder=sms_folder)) == 2
    # Every email delivery reached the mailbox once (no thank-you email among them).
    sent_emails = deliveries(customer, channel="email", status="sent")
    assert "payment_recovered" not in {d.message for d in sent_emails}
    assert len(read_mailbox(mailbox)) == len(sent_emails)
    assert not deliveries(customer, status__in=("pending", "sending", "failed"))
    # And the worker sent each of them (this process only published the tasks), once.
    for delivery in deliveries(customer, channel__in=("email", "sms")):
        assert (
            worker.log().count(f"delivery {delivery.pk} ({delivery.message}, {delivery.channel}) sent") == 1
        )


# --------------------------------------------------------------------------- 2. a lost card


def test_a_lost_card_stops_stripes_retries_and_the_link_asks_for_a_new_card(
    catalog: None, workers: Workers, mailbox: Path
) -> None:
    """`lost_card` is a hard decline: once the worker processed the renewal's events, Stripe no
    longer collects the invoice automatically (auto_advance off, no next attempt), twenty days
    bring no further attempt, and the message's link is for a new card."""
    renewal = Renewal(email="lost-card@example.com", decline="lost_card", language="sv")
    worker = workers.start()
    renewal.fail()
    hooks = Webhooks()
    hooks.post_new()
    hooks.processed(workers=[worker])
    [first, _in_app] = wait_sent(
        renewal.customer, message="payment_failed_friendly", workers=[worker], count=2
    )

    case = renewal.case
    assert (case.family, case.hard, case.action, case.retries_stopped_reason) == (
        "lost_stolen",
        True,
        "update_card",
        "hard_decline",
    )
    api = stripe_client()
    invoice = api.v1.invoices.retrieve(case.invoice_stripe_id)
    assert (invoice.status, invoice.auto_advance, invoice.next_payment_attempt) == ("open", False, None)
    assert Invoice.objects.get(stripe_id=case.invoice_stripe_id).next_payment_attempt is None
    attempts = invoice.attempt_count
    assert attempts >= 1

    renewal.move(days=RENEWAL_DAY + 20)
    later = api.v1.invoices.retrieve(case.invoice_stripe_id)
    assert (later.status, later.attempt_count, later.next_payment_attempt) == ("open", attempts, None)
    assert renewal.customer.stripe_customer_id
    charges = api.v1.charges.list(params={"customer": renewal.customer.stripe_customer_id}).data
    assert len([c for c in charges if c.status == "failed"]) == attempts

    # The email's link is for a new card ("u"), and its page's button leads to the card form.
    [link] = [link for m in read_mailbox(mailbox) for link in links_in(plain_text(m))]
    assert re.search(r"/l/[0-9a-z]+u-", link), link
    token = links.parse(link.rstrip("/").rsplit("/", 1)[-1])
    assert token is not None
    assert (token.delivery_id, token.purpose) == (first.pk, links.Purpose.UPDATE_CARD)
    browser = Client()
    page = browser.get(link).content.decode()
    button = re.search(r'<form method="post" action="([^"]+)">', page)
    assert button is not None, page
    assert 'name="next" value="card"' not in page  # no "pay with the card on file" either
    assert browser.post(button.group(1))["Location"] == "/cards/add/"
    assert browser.get("/cards/add/").status_code == 200


# --------------------------------------------------------------------------- 3. once, whatever happens


def test_duplicate_events_and_a_worker_killed_mid_send_deliver_each_message_at_most_once(
    catalog: None, workers: Workers, mailbox: Path, standin: TwilioStandin
) -> None:
    """Every webhook five times, shuffled, and the worker SIGKILLed while a text message is with
    the transport: each message reaches its transport at most once, the one caught mid-send ends
    `failed` with a note for staff, every other one is sent, and no duplicate row exists.

    The slow transport: text messages go through the Twilio backend (Twilio's own client) to the
    stand-in (tests/support/twilio_standin.py), told to hold the next request unanswered
    (`hang_next`), with the workers' Twilio timeout longer than the test.  The test waits until
    the delivery is claimed (`sending`, committed) and the stand-in holds its request, then kills
    the worker.  Redis hands the unacknowledged send task to a new worker after the visibility
    timeout; that worker must not send the claimed message again.  The outbox's sweep then
    finds the claim abandoned (its `claimed_at` moved back beyond tasks.CLAIM_TIMEOUT, as if the
    ten minutes had passed) and ends it failed.  Emails go to files, and each message is counted
    at its transport by the delivery its link names."""
    renewal = Renewal(email="once-nl@example.com", language="nl", phone=PHONE)
    customer = renewal.customer
    first = workers.start()
    renewal.fail()
    renewal.move(days=RENEWAL_DAY + 7.5)  # Stripe's retries too: more events, and the steps due

    hooks = Webhooks()
    events = hooks.new()
    assert "invoice.payment_failed" in {e["type"] for e in events}
    shuffled = events * 5
    random.Random(20240601).shuffle(shuffled)
    for event in shuffled:
        hooks.post(event)
    hooks.processed(workers=[first])
    wait_sent(customer, message="payment_failed_friendly", workers=[first], count=2)

    # The reminder, then the direct step, whose text message the stand-in holds.
    recovery.send_due_steps(now=renewal.at(RENEWAL_DAY + 7.5), limit=100)
    wait_sent(customer, message="payment_failed_reminder", workers=[first])
    standin.hang_next(1)
    recovery.send_due_steps(now=renewal.at(RENEWAL_DAY + 7.5), limit=100)
    held = wait_until(
        lambda: (
            Delivery.objects.filter(
                customer=customer, message="payment_failed_direct", channel="sms", status="sending"
            ).first()
            if standin.holding == 1
            else None
        ),
        timeout=20,
        what="the worker to be sending the text message, the stand-in holding it",
        workers=[first],
    )
    assert held.claimed_at is not None

    assert first.kill() == -signal.SIGKILL
    # The send tasks the dead worker took and never finished (never acknowledged either).
    log = first.log()
    unfinished = _task_ids(log, "billing.tasks.send_delivery", "received") - _task_ids(
        log, "billing.tasks.send_delivery", "succeeded"
    )
    assert unfinished, first.describe()
    # The stand-in answers the dead connection (503); the request was taken once, and no message
    # was created from it.
    standin.release()
    wait_until(lambda: standin.holding == 0 and len(standin.received) == 1, timeout=10, what="the stand-in")

    # Redelivery: the new worker gets the same send task back and finds the delivery claimed.
    second = workers.start()
    for task_id in unfinished:
        second.wait_for_log(
            rf"Task billing\.tasks\.send_delivery\[{task_id}\] succeeded in [\d.]+s: False",
            timeout=VISIBILITY_TIMEOUT_SECONDS + 20,
        )
    held.refresh_from_db()
    assert (held.status, held.attempts, held.sent_at) == ("sending", 0, None)
    assert len(standin.received) == 1

    # The sweep, ten minutes later for the claim: failed, with a note for staff, not sent again.
    Delivery.objects.filter(pk=held.pk).update(
        claimed_at=F("claimed_at") - tasks.CLAIM_TIMEOUT - dt.timedelta(seconds=1)
    )
    for _ in range(2):
        sweep = tasks.send_pending_deliveries.delay()
        second.wait_for_log(rf"Task billing\.tasks\.send_pending_deliveries\[{sweep.id}\] succeeded")
    held.refresh_from_db()
    assert held.status == "failed"
    assert "may or may not have been delivered" in held.last_error
    assert held.sent_at is None
    assert f"delivery {held.pk} (" not in first.log() + second.log()

    # The final notice goes on day 11, in every channel, the text message too (the stand-in
    # answers again); every event arrives five times more, shuffled, meanwhile.
    recovery.send_due_steps(now=renewal.at(RENEWAL_DAY + 11.5), limit=100)
    random.Random(7).shuffle(shuffled)
    for event in shuffled:
        hooks.post(event)
    hooks.processed(workers=[second])
    wait_sent(customer, message="payment_failed_final", workers=[second], count=3)

    # Each message once: one row per message and channel (five copies of every event, the
    # redelivered task and two sweeps made none more), all sent but the one caught mid-send.
    rows = deliveries(customer)
    assert len({d.dedupe_key for d in rows}) == len(rows)
    assert sorted((d.message, d.channel, d.status) for d in rows) == sorted(
        [
            ("payment_failed_friendly", "email", "sent"),
            ("payment_failed_friendly", "in_app", "sent"),
            ("payment_failed_reminder", "email", "sent"),
            ("payment_failed_direct", "email", "sent"),
            ("payment_failed_direct", "sms", "failed"),
            ("payment_failed_final", "email", "sent"),
            ("payment_failed_final", "sms", "sent"),
            ("payment_failed_final", "in_app", "sent"),
            # The first month's receipt, from ten copies of its invoice.paid.
            ("payment_received", "email", "sent"),
            ("payment_received", "in_app", "sent"),
        ]
    )
    assert StripeEvent.objects.filter(stripe_id__in=hooks.posted).count() == len(events)
    assert RecoveryCase.objects.filter(customer=customer).count() == 1

    # At the transports, by the delivery each message's link names: each at most once; every
    # sent email and text message exactly once; the held text message only as the one request
    # the stand-in took (and answered 503 to nobody), never created.
    mails = read_mailbox(mailbox)
    emails = Counter(delivery_of_link(link) for m in mails for link in links_in(plain_text(m)))
    assert emails == Counter({d.pk: 1 for d in rows if d.channel == "email" and d.case_id is not None})
    assert len(mails) == len([d for d in rows if d.channel == "email"])  # and the receipt once
    requested = Counter(delivery_of_link(link) for r in standin.received for link in links_in(r.form["Body"]))
    [final_sms] = [d for d in rows if d.message == "payment_failed_final" and d.channel == "sms"]
    assert requested == Counter({held.pk: 1, final_sms.pk: 1})
    created = Counter(delivery_of_link(link) for m in standin.messages for link in links_in(m["body"]))
    assert created == Counter({final_sms.pk: 1})
    assert [r.form["To"] for r in standin.received] == [PHONE, PHONE]
    assert settings.BILLING_SMS_BACKEND == "billing.sms.FileSmsBackend"  # this process sent none
    assert not sms.read_texts(folder=Path(settings.BILLING_SMS_FILE_PATH))
