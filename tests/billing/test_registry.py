"""Every change kind and every message is complete: declared with all it needs, with its texts for
each of its channels in English, Swedish and Dutch; and a message that is not due now, or not
wanted, is held or suppressed, never lost."""

from __future__ import annotations

import datetime as dt
import enum
import pathlib
import re
import types
import uuid
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone, translation

from billing import changes, checks, messages, outbox, tasks
from billing.changes import ChangeKind, ChangeParams, ChangeResult
from billing.channels import LocmemSmsBackend
from billing.messages import MESSAGES, Facts, Message
from billing.models import BillingCustomer, Delivery
from billing.policy import Category, Channel

LANGUAGES = ("en", "sv", "nl")
UNRENDERED = re.compile(r"\{\{|\{%|%\(\w+\)|&[a-z]+;|&#")


def _example(model: type[Facts]) -> Facts:
    """Facts to render a message from: a value of the right type for every field."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if get_origin(annotation) in (types.UnionType, Union):  # "int | None": the int
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        if annotation is dt.datetime:
            values[name] = dt.datetime(2027, 3, 21, 12, tzinfo=dt.UTC)  # "March", "mars", "maart"
        elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            values[name] = next(iter(annotation))
        elif annotation is int and name.endswith("_id"):
            values[name] = 4242
        elif name == "family":
            values[name] = "insufficient_funds"
        elif name == "end_action":
            values[name] = "restrict"
        elif name.endswith("_id"):
            values[name] = str(uuid.uuid5(uuid.NAMESPACE_URL, name))  # the same in every rendering
        elif annotation is int:
            values[name] = 1900
        elif annotation is bool:
            values[name] = True
        elif name.endswith("currency"):
            values[name] = "eur"
        elif name == "decline_code":
            values[name] = "insufficient_funds"
        else:
            values[name] = "visa" if name == "brand" else f"{name}-4242"
    return model(**values)


def _render_all(message: Message, customer: BillingCustomer) -> dict[tuple[str, str], str]:
    facts = _example(message.facts)
    texts = {}
    for channel in message.channels:
        for language in LANGUAGES:
            with translation.override(language):
                rendered = messages.render(message=message, channel=channel, facts=facts, customer=customer)
            texts[(channel, language)] = "\n".join((rendered.subject, rendered.text))
    return texts


def _words(text: str) -> set[str]:
    text = re.sub(r"https?://\S+", " ", text)
    return {word.lower() for word in re.findall(r"[^\W\d_]{4,}", text)}


def test_every_change_kind_declares_everything() -> None:
    assert changes.KINDS
    for name, kind in changes.KINDS.items():
        assert checks.kind_problems(kind) == [], name


def test_the_check_names_what_a_kind_lacks() -> None:
    """The control: a kind missing its pieces is reported, one problem per piece."""

    class Half(ChangeKind[ChangeParams, ChangeResult]):
        name = "half"
        label = "half"  # type: ignore[assignment]
        template = "portal/changes/no_such_template.html"
        Params = ChangeParams
        Result = ChangeResult
        messages = (messages.Message("undeclared", Category.INFORMATION, (Channel.EMAIL,), Facts),)
        dedupe = ("no_such_param",)
        supersedes = False

    problems = checks.kind_problems(Half())
    assert any("dedupe names ['no_such_param']" in p for p in problems)
    assert any("does not say how it is applied" in p for p in problems)
    assert any("does not say how it is confirmed" in p for p in problems)
    assert any("'undeclared', which is not a declared message" in p for p in problems)
    assert any("no_such_template.html, which does not exist" in p for p in problems)
    assert checks.kind_problems(types.SimpleNamespace(name="bare")) == [  # type: ignore[arg-type]
        "declares no label, template, Params, Result, messages, dedupe, supersedes"
    ]


def test_manage_py_check_passes() -> None:
    call_command("check", "--fail-level", "WARNING")


@pytest.mark.django_db
def test_every_message_is_written_for_each_of_its_channels_in_three_languages() -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="reader", email="reader@example.com")
    customer = BillingCustomer.objects.create(user=user, email=user.email)
    assert MESSAGES
    for name, message in MESSAGES.items():
        assert checks.message_problems(message) == [], name
        texts = _render_all(message, customer)
        for (channel, language), text in texts.items():
            assert text.strip(), (name, channel, language)
            assert not UNRENDERED.search(text), (name, channel, language, text)
        # An untranslated sentence shows up as English words in the Swedish or Dutch text; only
        # the facts themselves (a card brand, say) may be the same.
        facts_words = _words(" ".join(str(v) for v in _example(message.facts).model_dump().values()))
        for channel in message.channels:
            english = _words(texts[(channel, "en")]) - facts_words
            for language in ("sv", "nl"):
                shared = english & _words(texts[(channel, language)])
                assert not shared, f"{name} ({channel}) has English left in {language}: {sorted(shared)}"


def test_no_message_can_carry_a_secret() -> None:
    """Facts are declared field by field (unknown ones are refused), and none is a secret."""
    for name, message in MESSAGES.items():
        assert message.facts.model_config.get("extra") == "forbid", name
        for field in message.facts.model_fields:
            assert "secret" not in field and "token" not in field, (name, field)
        with pytest.raises(ValueError):
            message.facts(**_example(message.facts).model_dump(), client_secret="pi_1_secret_2")
    for kind in changes.KINDS.values():
        annotations = [kind.Result.model_fields[f].annotation for f in kind.Result.model_fields]
        nested = [a for a in annotations if isinstance(a, type) and issubclass(a, ChangeResult)]
        nested += [
            x
            for a in annotations
            if get_origin(a) is not None
            for x in get_args(a)
            if isinstance(x, type) and issubclass(x, ChangeResult)
        ]
        for model in (kind.Result, *nested):
            assert all("secret" not in field for field in model.model_fields), (kind.name, model)


# --------------------------------------------------------------------------- a reminder, by text and email


class ReminderFacts(Facts):
    amount: int
    currency: str


@pytest.fixture()
def reminder(tmp_path: pathlib.Path, settings: Any) -> Iterator[Message]:
    """A message of the reminder category (not the customer's doing), on email and SMS, with its
    texts in a template folder of the test's own."""
    folder = tmp_path / "billing" / "messages" / "test_reminder"
    folder.mkdir(parents=True)
    texts = {
        "subject.txt": "{% load billing_format %}Payment of {{ f.amount|money:f.currency }} due",
        "email.txt": "{% load billing_format %}Your payment of {{ f.amount|money:f.currency }} is due soon.",
        "sms.txt": "{% load billing_format %}{{ f.amount|money:f.currency }} due soon: {{ action_url }}",
        "in_app.txt": "Payment due soon.",
    }
    for name, text in texts.items():
        (folder / name).write_text(text)
    settings.TEMPLATES = [{**engine, "DIRS": [tmp_path, *engine["DIRS"]]} for engine in settings.TEMPLATES]
    message = messages.declare(
        "test_reminder",
        category=Category.REMINDER,
        channels=(Channel.EMAIL, Channel.SMS, Channel.IN_APP),
        facts=ReminderFacts,
    )
    LocmemSmsBackend.outbox.clear()
    yield message
    del MESSAGES["test_reminder"]
    LocmemSmsBackend.outbox.clear()


@pytest.fixture()
def stockholm_customer(db: None) -> BillingCustomer:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="sms", email="sms@example.com")
    return BillingCustomer.objects.create(
        user=user, email=user.email, phone="+46701234567", time_zone="Europe/Stockholm"
    )


def _enqueue(customer: BillingCustomer, message: Message, about: str) -> dict[str, Delivery]:
    made = outbox.enqueue(
        customer=customer,
        message=message,
        about=about,
        step="due",
        facts=ReminderFacts(amount=19900, currency="sek"),
    )
    return {d.channel: d for d in made}


def test_a_reminder_waits_for_the_end_of_quiet_hours_then_goes_by_email_and_text(
    reminder: Message, stockholm_customer: BillingCustomer, committed: Any
) -> None:
    from django.core import mail

    evening = dt.datetime(2026, 12, 1, 22, 30, tzinfo=dt.UTC)  # 23:30 in Stockholm
    with time_machine.travel(evening), committed():
        made = _enqueue(stockholm_customer, reminder, "invoice:in_1")
        assert tasks.send_pending_deliveries() == 0
    morning = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert made["email"].send_after == made["sms"].send_after == morning
    assert made["in_app"].status == Delivery.Status.SENT  # the portal's list shows it at once
    assert mail.outbox == [] and LocmemSmsBackend.outbox == []

    with time_machine.travel(morning + dt.timedelta(seconds=30)), committed():
        assert tasks.send_pending_deliveries() == 2
    assert [m.subject for m in mail.outbox] == ["Payment of SEK199.00 due"]
    [(to, text)] = LocmemSmsBackend.outbox
    assert to == "+46701234567"
    assert text.startswith("SEK199.00 due soon: http")

    # The same reminder again (a duplicate webhook, a retried job) makes nothing new.
    with committed():
        assert _enqueue(stockholm_customer, reminder, "invoice:in_1") == {}
    assert Delivery.objects.count() == 3


def test_an_opted_out_customer_or_one_without_a_phone_is_not_sent_it(
    reminder: Message, stockholm_customer: BillingCustomer, committed: Any
) -> None:
    stockholm_customer.opt_outs = ["reminder"]
    stockholm_customer.phone = ""
    stockholm_customer.save()
    with time_machine.travel(dt.datetime(2026, 12, 2, 11, 0, tzinfo=dt.UTC)), committed():
        made = _enqueue(stockholm_customer, reminder, "invoice:in_2")
        assert tasks.send_pending_deliveries() == 0
    assert (made["email"].status, made["email"].suppressed_reason) == (
        Delivery.Status.SUPPRESSED,
        "opted_out",
    )
    assert (made["sms"].status, made["sms"].suppressed_reason) == (Delivery.Status.SUPPRESSED, "no_address")
    assert made["in_app"].status == Delivery.Status.SENT
    assert LocmemSmsBackend.outbox == []
    assert timezone.now()  # the clock is back
