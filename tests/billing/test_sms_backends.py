"""Text message backends: the file backend (development, the demo's mailbox) keeps whole lines
whoever appends, and the Twilio backend, through Twilio's official client against a local
stand-in for the Messages API, tells an outage (tried again later) from a refusal (ended at
once, never tried again) and never lets the auth token into an error."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model

from billing import channels, messages, outbox, tasks
from billing.channels import ChannelUnavailable
from billing.messages import MESSAGES, Facts, Message, Rendered
from billing.models import BillingCustomer, Delivery
from billing.policy import Category, Channel
from billing.sms import FileSmsBackend, SmsRejected, Text, TwilioSmsBackend, read_texts
from tests.support.twilio_standin import TwilioStandin, segments

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "tok-" + "5f3a9c" * 5  # a value no Twilio answer could contain by chance
SENDER = "+15005550006"
SERVICE = "MG" + "fedcba9876543210" * 2
PHONE = "+46701234567"
# Midday in Stockholm: no quiet hours in the way.
MIDDAY = dt.datetime(2026, 12, 2, 11, 0, tzinfo=dt.UTC)


# --------------------------------------------------------------------------- the file backend


def test_the_file_backend_appends_json_lines_and_reads_them_back(tmp_path: pathlib.Path) -> None:
    backend = FileSmsBackend(folder=tmp_path / "sms")
    before = dt.datetime.now(dt.UTC)
    backend.send(to=PHONE, text="Betalning mottagen: 19,00 €.\nSe http://127.0.0.1:8000/")
    backend.send(to="+31612345678", text="Betaling ontvangen")

    lines = (tmp_path / "sms" / "texts.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert set(first) == {"to", "text", "sent_at"}
    assert dt.datetime.fromisoformat(first["sent_at"]).utcoffset() == dt.timedelta(0)

    texts = read_texts(folder=tmp_path / "sms")
    assert [(t.to, t.text) for t in texts] == [
        (PHONE, "Betalning mottagen: 19,00 €.\nSe http://127.0.0.1:8000/"),
        ("+31612345678", "Betaling ontvangen"),
    ]
    assert before <= texts[0].sent_at <= texts[1].sent_at  # newest last
    assert read_texts(folder=tmp_path / "nothing-yet") == []


def test_channels_send_a_text_through_the_file_backend_named_in_the_settings(
    tmp_path: pathlib.Path, settings: Any
) -> None:
    settings.BILLING_SMS_BACKEND = "billing.sms.FileSmsBackend"
    settings.BILLING_SMS_FILE_PATH = tmp_path
    channels.send(channel=Channel.SMS, to=PHONE, rendered=Rendered(subject="", text="Hej", html=""))
    [text] = read_texts(folder=tmp_path)
    assert isinstance(text, Text) and (text.to, text.text) == (PHONE, "Hej")


def test_two_backends_appending_at_once_keep_every_line_whole(tmp_path: pathlib.Path) -> None:
    per_writer = 200
    # Long lines (several kB) are where buffered writes in pieces would interleave.
    bodies = {"+46700000001": "a" * 6000 + "€", "+46700000002": "b" * 6000 + "ø"}
    start = threading.Barrier(len(bodies))
    errors: list[BaseException] = []

    def write(to: str) -> None:
        backend = FileSmsBackend(folder=tmp_path)
        try:
            start.wait()
            for n in range(per_writer):
                backend.send(to=to, text=f"{n}:{bodies[to]}")
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(to,)) for to in bodies]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    assert errors == []
    lines = (tmp_path / "texts.jsonl").read_bytes().splitlines()
    assert len(lines) == per_writer * len(bodies)
    records = [json.loads(line) for line in lines]  # every line a whole record
    for to, body in bodies.items():
        numbers = [int(r["text"].split(":")[0]) for r in records if r["to"] == to]
        assert numbers == list(range(per_writer))
        assert all(r["text"].split(":", 1)[1] == body for r in records if r["to"] == to)
    assert len(read_texts(folder=tmp_path)) == per_writer * len(bodies)


# --------------------------------------------------------------------------- the stand-in


@pytest.fixture(scope="module")
def standin_server() -> Iterator[TwilioStandin]:
    server = TwilioStandin(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture()
def standin(standin_server: TwilioStandin, settings: Any) -> Iterator[TwilioStandin]:
    """The stand-in, fresh, with the portal's Twilio settings pointed at it."""
    standin_server.reset()
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_FROM = SENDER
    settings.TWILIO_API_BASE = standin_server.url
    settings.TWILIO_TIMEOUT_SECONDS = 2.0
    yield standin_server
    standin_server.reset()


def test_the_stand_in_counts_segments_as_an_sms_is_split() -> None:
    assert segments("a" * 160) == ("GSM-7", 1)
    assert segments("a" * 161) == ("GSM-7", 2)
    assert segments("a" * 306) == ("GSM-7", 2)
    assert segments("a" * 307) == ("GSM-7", 3)
    assert segments("€" * 80) == ("GSM-7", 1)  # from the extension table: two septets each
    assert segments("€" * 81) == ("GSM-7", 2)
    assert segments("ł" * 70) == ("UCS-2", 1)
    assert segments("ł" * 71) == ("UCS-2", 2)
    assert segments("😀" * 35) == ("UCS-2", 1)  # two UTF-16 code units each


# --------------------------------------------------------------------------- the Twilio backend


def test_a_text_reaches_twilio_with_its_number_sender_body_and_credentials(standin: TwilioStandin) -> None:
    TwilioSmsBackend().send(to=PHONE, text="Betalning mottagen: 19,00 €")

    [request] = standin.received
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert (request.username, request.password) == (ACCOUNT_SID, AUTH_TOKEN)
    assert request.form == {"To": PHONE, "From": SENDER, "Body": "Betalning mottagen: 19,00 €"}
    assert request.headers["User-Agent"].startswith("twilio-python/")
    assert request.status == 201
    [message] = standin.messages
    assert message["sid"].startswith("SM") and len(message["sid"]) == 34
    assert (message["status"], message["num_segments"]) == ("queued", "1")


def test_a_messaging_service_sends_in_place_of_a_number(standin: TwilioStandin, settings: Any) -> None:
    settings.TWILIO_FROM = SERVICE
    TwilioSmsBackend().send(to=PHONE, text="Hej")
    [request] = standin.received
    assert request.form == {"To": PHONE, "MessagingServiceSid": SERVICE, "Body": "Hej"}
    assert standin.messages[0]["status"] == "accepted"


@pytest.mark.parametrize(
    ("to", "arrange", "code"),
    [
        ("0701234567", None, 21211),  # not E.164
        (PHONE, "unsubscribed", 21610),  # the customer texted STOP
        (PHONE, "landlines", 21614),
    ],
)
def test_a_number_twilio_refuses_is_a_rejection_not_an_outage(
    standin: TwilioStandin, to: str, arrange: str | None, code: int
) -> None:
    if arrange:
        getattr(standin, arrange).add(to)
    with pytest.raises(SmsRejected) as raised:
        TwilioSmsBackend().send(to=to, text="Hej")
    assert not isinstance(raised.value, ChannelUnavailable)
    assert (raised.value.code, raised.value.status) == (code, 400)
    assert str(code) in str(raised.value)
    assert "\033" not in str(raised.value)  # Twilio's own str() colours it on a terminal


def test_a_body_over_1600_characters_is_refused(standin: TwilioStandin) -> None:
    with pytest.raises(SmsRejected) as raised:
        TwilioSmsBackend().send(to=PHONE, text="x" * 1601)
    assert raised.value.code == 21617


@pytest.mark.parametrize("status", [503, 429])
def test_twilio_down_or_throttling_is_an_outage(standin: TwilioStandin, status: int) -> None:
    standin.fail_next(1, status=status)
    with pytest.raises(ChannelUnavailable) as raised:
        TwilioSmsBackend().send(to=PHONE, text="Hej")
    assert f"HTTP {status}" in str(raised.value)
    # Only that one: the next try goes through.
    TwilioSmsBackend().send(to=PHONE, text="Hej")
    assert [r.status for r in standin.received] == [status, 201]


def test_an_answer_later_than_the_timeout_is_an_outage(standin: TwilioStandin, settings: Any) -> None:
    settings.TWILIO_TIMEOUT_SECONDS = 0.3
    standin.hang_next(1)
    with pytest.raises(ChannelUnavailable, match="Timeout"):
        TwilioSmsBackend().send(to=PHONE, text="Hej")
    assert standin.messages == []


def test_no_connection_is_an_outage(standin: TwilioStandin, settings: Any) -> None:
    settings.TWILIO_API_BASE = "http://127.0.0.1:9"  # discard: nothing listens
    with pytest.raises(ChannelUnavailable, match="ConnectionError"):
        TwilioSmsBackend().send(to=PHONE, text="Hej")


def test_wrong_credentials_are_refused_and_the_token_is_in_no_error(
    standin: TwilioStandin, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "tok-wrong-" + "9e8d7c" * 5
    settings.TWILIO_AUTH_TOKEN = wrong
    caplog.set_level("DEBUG")
    with pytest.raises(SmsRejected) as raised:
        TwilioSmsBackend().send(to=PHONE, text="Hej")
    assert (raised.value.code, raised.value.status) == (20003, 401)
    # This request's answer (an earlier test's held request, let go at its end, may land here too).
    (sent,) = [r for r in standin.received if r.password == wrong]
    assert sent.status == 401
    shown = "".join(traceback.format_exception(raised.value)) + repr(TwilioSmsBackend()) + caplog.text
    assert wrong not in shown and AUTH_TOKEN not in shown


def test_without_credentials_the_backend_says_which_settings_are_missing(settings: Any) -> None:
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = ""
    settings.TWILIO_FROM = SENDER
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="TWILIO_AUTH_TOKEN"):
        TwilioSmsBackend()


# --------------------------------------------------------------------------- through the outbox


class DueFacts(Facts):
    amount: int


@pytest.fixture()
def by_text(tmp_path: pathlib.Path, settings: Any, standin: TwilioStandin) -> Iterator[Message]:
    """A payment-critical message by text only, sent through the Twilio backend."""
    folder = tmp_path / "billing" / "messages" / "test_by_text"
    folder.mkdir(parents=True)
    for part, text in {
        "subject.txt": "Payment due",
        "email.txt": "Payment due",
        "sms.txt": "Your payment is due: {{ action_url }}",
        "in_app.txt": "Payment due",
    }.items():
        (folder / part).write_text(text)
    settings.TEMPLATES = [{**engine, "DIRS": [tmp_path, *engine["DIRS"]]} for engine in settings.TEMPLATES]
    settings.BILLING_SMS_BACKEND = "billing.sms.TwilioSmsBackend"
    message = messages.declare(
        "test_by_text", category=Category.PAYMENT_CRITICAL, channels=(Channel.SMS,), facts=DueFacts
    )
    yield message
    del MESSAGES[message.name]


def _texter(phone: str) -> BillingCustomer:
    user = get_user_model().objects.create_user(username=phone, email=f"{phone[1:]}@example.com")
    return BillingCustomer.objects.create(
        user=user, email=user.email, phone=phone, time_zone="Europe/Stockholm"
    )


def _enqueue(customer: BillingCustomer, message: Message, committed: Any) -> Delivery:
    with time_machine.travel(MIDDAY, tick=False), committed():
        [delivery] = outbox.enqueue(
            customer=customer, message=message, about="invoice:in_1", step="due", facts=DueFacts(amount=1)
        )
    return Delivery.objects.get(pk=delivery.pk)


@pytest.mark.django_db
def test_an_outage_leaves_the_text_waiting_and_it_goes_once_twilio_is_back(
    by_text: Message, standin: TwilioStandin, committed: Any
) -> None:
    standin.fail_next(1, status=503)
    delivery = _enqueue(_texter(PHONE), by_text, committed)

    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempts == 1
    assert delivery.send_after > MIDDAY
    assert "503" in delivery.last_error and AUTH_TOKEN not in delivery.last_error

    with time_machine.travel(delivery.send_after + dt.timedelta(seconds=1), tick=False), committed():
        assert tasks.send_pending_deliveries() == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert [r.status for r in standin.received] == [503, 201]
    assert standin.received[-1].form["Body"].startswith("Your payment is due: http")


@pytest.mark.django_db
def test_a_refused_number_ends_failed_at_once_and_is_never_tried_again(
    by_text: Message, standin: TwilioStandin, committed: Any
) -> None:
    """The number is unsubscribed (21610): trying again would only be refused again."""
    standin.unsubscribed.add(PHONE)
    delivery = _enqueue(_texter(PHONE), by_text, committed)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == 1
    assert "21610" in delivery.last_error and AUTH_TOKEN not in delivery.last_error
    # Ended: no more tries, however long the sweep keeps running.
    with time_machine.travel(MIDDAY + dt.timedelta(days=30), tick=False), committed():
        assert tasks.send_pending_deliveries() == 0
    assert len(standin.received) == 1
