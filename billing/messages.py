"""The message registry: every message to customers is declared once, where its feature lives.

A declaration names the message, its category (which decides whether a customer may opt out and
whether quiet hours apply), its channels, the facts it is written from (a validated model: ids,
amounts, codes, never a secret) and the page its button opens.  Its texts are templates beside
one another, one per channel, translated like every other string:

    templates/billing/messages/<name>/subject.txt   email subject
    templates/billing/messages/<name>/email.txt     email body (plain text; the HTML part is the
                                                     same text in billing/messages/email.html)
    templates/billing/messages/<name>/sms.txt       text message
    templates/billing/messages/<name>/in_app.txt    the line in the portal's list of messages
    templates/billing/messages/<name>/footer.txt    optional: the email's last line, if not the
                                                     usual "if you did not make this change"

Each template sees `f` (the facts), `customer` and `action_url`.  A message says what happened,
the bad news first.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.template import TemplateDoesNotExist, engines
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.functional import Promise, lazy
from django.utils.translation import gettext_lazy as _
from pydantic import BaseModel, ConfigDict

from billing import links
from billing.models import BillingCustomer, Delivery
from billing.policy import Category, Channel

TEMPLATES = "billing/messages"
_SPACES = re.compile(r"[ \t\r\n]+")


class Facts(BaseModel):
    """What a message is written from.  Stored with each delivery, so a resend reads the same."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclasses.dataclass(frozen=True)
class Message:
    name: str
    category: Category
    channels: tuple[Channel, ...]
    facts: type[Facts]
    # The portal page the email's button and the text message's link open, and which facts
    # fill its URL ("portal:change", ("change_id",)).
    action: str = "portal:dashboard"
    action_args: tuple[str, ...] = ()
    action_label: Promise = dataclasses.field(default_factory=lambda: _("See your subscription"))
    # Prompted by the customer's own action (they are on the page): sent at once, quiet hours or not.
    prompted: bool = False
    # The button of an email or text message is a deep link (billing.links) for the action its facts
    # name (`action`), working without a password; in the portal it opens `action` as usual.
    link: bool = False
    # Why a delivery written earlier is no longer worth sending (None: send it), asked when it is
    # sent: a reminder about something that has changed since (a card refreshed, say) is dropped.
    still_due: Callable[[Delivery], str | None] | None = None

    def template(self, part: str) -> str:
        return f"{TEMPLATES}/{self.name}/{part}"

    def action_url(self, facts: Facts) -> str:
        path = reverse(self.action, args=[getattr(facts, arg) for arg in self.action_args])
        return str(settings.PORTAL_BASE_URL).rstrip("/") + path


MESSAGES: dict[str, Message] = {}

# The template of each channel's text; an email has a subject as well as its body.
PARTS: dict[Channel, tuple[str, ...]] = {
    Channel.EMAIL: ("subject.txt", "email.txt"),
    Channel.SMS: ("sms.txt",),
    Channel.IN_APP: ("in_app.txt",),
}


def declare(
    name: str,
    *,
    category: Category,
    channels: tuple[Channel, ...],
    facts: type[Facts],
    action: str = "portal:dashboard",
    action_args: tuple[str, ...] = (),
    action_label: Promise = _("See your subscription"),
    prompted: bool | None = None,
    link: bool = False,
    still_due: Callable[[Delivery], str | None] | None = None,
) -> Message:
    """Declare a message; `prompted` defaults to True for confirmations (of what the customer did)."""
    if name in MESSAGES:
        raise ValueError(f"message {name!r} is declared twice")
    missing = [arg for arg in action_args if arg not in facts.model_fields]
    if missing:
        raise ValueError(f"message {name!r}: its facts have no {missing}")
    if link and "action" not in facts.model_fields:
        raise ValueError(f"message {name!r}: a deep link needs its facts' `action`")
    if prompted is None:
        prompted = category == Category.CONFIRMATION
    message = Message(
        name, category, channels, facts, action, action_args, action_label, prompted, link, still_due
    )
    MESSAGES[name] = message
    return message


@dataclasses.dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _portal_url() -> str:
    return str(settings.PORTAL_BASE_URL).rstrip("/") + reverse("portal:dashboard")


def _purpose(facts: Facts) -> links.Purpose:
    """What a deep-link message's facts say its link is for (declare() checks they have it)."""
    return links.Purpose(facts.model_dump()["action"])


def _action_url(message: Message, facts: Facts, link: tuple[int, int] | None) -> str:
    if message.link and link is not None:
        delivery_id, customer_id = link
        return links.url_for(delivery_id=delivery_id, purpose=_purpose(facts), customer_id=customer_id)
    return message.action_url(facts)


def _extend_url(link: tuple[int, int]) -> str:
    delivery_id, customer_id = link
    return links.url_for(delivery_id=delivery_id, purpose=links.Purpose.EXTEND, customer_id=customer_id)


# Made only if a template shows them.  In-app lines do not, and the dashboard lists several.
_lazy_action_url = lazy(_action_url, str)
_lazy_portal_url = lazy(_portal_url, str)
_lazy_extend_url = lazy(_extend_url, str)


def _context(
    *, message: Message, facts: Facts, customer: BillingCustomer, delivery_id: int | None = None
) -> dict[str, Any]:
    link = (delivery_id, customer.pk) if delivery_id is not None else None
    return {
        "f": facts,
        "customer": customer,
        "action_url": _lazy_action_url(message, facts, link),
        "action_label": links.label(purpose=_purpose(facts)) if message.link else message.action_label,
        "portal_url": _lazy_portal_url(),
        "message": message,
        # A failed payment's messages offer more time to pay, by a link of its own purpose.
        "extend_url": _lazy_extend_url(link) if message.link and link is not None else "",
    }


def _text(template: str, context: dict[str, Any]) -> str:
    # Plain text is not HTML: the "text" engine does not escape (settings.TEMPLATES).
    return str(engines["text"].get_template(template).render(context))


def _line(text: str) -> str:
    # Not str.split(): money keeps its non-breaking spaces ("19,00\xa0€").
    return _SPACES.sub(" ", text).strip()


def _footer(message: Message, context: dict[str, Any]) -> str:
    try:
        return _line(_text(message.template("footer.txt"), context))
    except TemplateDoesNotExist:
        return _line(_text(f"{TEMPLATES}/footer.txt", context))


def render(
    *,
    message: Message,
    channel: Channel,
    facts: Facts,
    customer: BillingCustomer,
    delivery_id: int | None = None,
) -> Rendered:
    """The message's text for one channel in the active language and time zone (the caller sets
    the customer's).  Sent as `delivery_id`, a message with a deep link carries that delivery's."""
    context = _context(
        message=message,
        facts=facts,
        customer=customer,
        delivery_id=None if channel == Channel.IN_APP else delivery_id,
    )
    if channel == Channel.EMAIL:
        subject = _line(_text(message.template("subject.txt"), context))
        body = _text(message.template("email.txt"), context).strip()
        layout = {**context, "subject": subject, "body": body, "footer": _footer(message, context)}
        return Rendered(
            subject=subject,
            text=_text(f"{TEMPLATES}/email.txt", layout),
            # The HTML part is the same text, escaped, in the HTML layout.
            html=render_to_string(f"{TEMPLATES}/email.html", layout),
        )
    return Rendered(subject="", text=_line(_text(message.template(PARTS[channel][0]), context)), html="")


def facts_of(*, message: Message, context: dict[str, Any]) -> Facts:
    return message.facts.model_validate(context)
