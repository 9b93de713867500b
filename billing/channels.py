"""How a rendered message reaches the customer: email through Django's mail backend, text messages
through a pluggable backend (`BILLING_SMS_BACKEND`; the file and Twilio backends are in
billing/sms.py), and the in-app list, which is the outbox row itself and needs no transport."""

from __future__ import annotations

import logging
from typing import Protocol

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.module_loading import import_string

from billing.messages import Rendered
from billing.models import BillingCustomer
from billing.policy import Channel

logger = logging.getLogger(__name__)


class ChannelUnavailable(Exception):
    """The mail server or the SMS provider can't take the message now; it is tried again later."""


class MessageRefused(Exception):
    """The provider refused this message for good (an invalid or unsubscribed number): trying it
    again would only be refused again, so the delivery ends failed at once, for staff to see."""


class SmsBackend(Protocol):
    def send(self, *, to: str, text: str) -> None: ...


class LocmemSmsBackend:
    """Keeps text messages in `LocmemSmsBackend.outbox` (development and tests), as Django's
    locmem email backend keeps emails in `mail.outbox`."""

    outbox: list[tuple[str, str]] = []

    def send(self, *, to: str, text: str) -> None:
        LocmemSmsBackend.outbox.append((to, text))


class ConsoleSmsBackend:
    def send(self, *, to: str, text: str) -> None:
        logger.info("SMS to %s: %s", to, text)


def address(*, customer: BillingCustomer, channel: Channel) -> str:
    """Where the customer receives this channel; empty when they can't."""
    if channel == Channel.EMAIL:
        return customer.email or str(getattr(customer.user, "email", "") or "")
    if channel == Channel.SMS:
        return customer.phone
    return "in-app"


def send(*, channel: Channel, to: str, rendered: Rendered) -> None:
    """Hand one message to its transport; ChannelUnavailable when the transport is down."""
    if channel == Channel.EMAIL:
        email = EmailMultiAlternatives(subject=rendered.subject, body=rendered.text, to=[to])
        email.attach_alternative(rendered.html, "text/html")
        try:
            email.send()
        except OSError as exc:  # SMTP errors are OSErrors: the server, not the message
            raise ChannelUnavailable(f"{type(exc).__name__}: {exc}") from exc
    elif channel == Channel.SMS:
        backend: SmsBackend = import_string(settings.BILLING_SMS_BACKEND)()
        backend.send(to=to, text=rendered.text)
