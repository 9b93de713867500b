"""Template filters for money and dates in the active language ({{ invoice.amount_due|money:invoice.currency }}),
and the line of an in-app message."""

from __future__ import annotations

import datetime as dt
import json

from django import template
from django.template.defaultfilters import title
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import get_language, gettext

from billing.messages import MESSAGES, facts_of, render
from billing.models import Delivery, PaymentMethod
from billing.money import format_day, format_money
from billing.policy import Channel

register = template.Library()


@register.filter
def money(amount: int | None, currency: str) -> str:
    if amount is None:
        return ""
    return format_money(amount=int(amount), currency=currency or "eur")


@register.filter
def day(value: dt.datetime | dt.date | None, style: str = "long") -> str:
    return format_day(value=value, style=style)


@register.simple_tag
def card_label(card: PaymentMethod) -> str:
    """A card as pages name it: "Visa •••• 4242 expires 07/2031" (the dashboard shows two, the
    cards page one per card: a tag, not an included template, is a fifth of the cost)."""
    expires = gettext("expires %(month)s/%(year)s") % {
        "month": f"{card.exp_month:02d}",
        "year": card.exp_year,
    }
    return format_html(
        '<span class="card-label"><span class="brand-name">{}</span> •••• {} <span class="muted">{}</span></span>\n',
        title(card.brand),
        card.last4,
        expires,
    )


@register.simple_tag
def in_app_line(delivery: Delivery) -> str:
    """A delivery's line in the portal's list of messages, in the active language (escaped)."""
    key = (
        delivery.customer_id,
        delivery.message,
        json.dumps(delivery.context, sort_keys=True),
        get_language(),
        str(timezone.get_current_timezone()),
    )
    line = _LINES.get(key)
    if line is None:
        if len(_LINES) >= _MOST_LINES:
            _LINES.clear()
        line = _LINES[key] = _line(delivery)
    return line


# A line is written from nothing but the message, its facts, the customer, the language and the
# time zone, so the same ones give the same text every time the dashboard shows it: written once
# per process, not per page view.  Keyed by all of them (not by the delivery's id, which a
# database may hand out again), and by the customer, so no one is ever shown another's line.
_LINES: dict[tuple[int, str, str, str | None, str], str] = {}
_MOST_LINES = 4096


def _line(delivery: Delivery) -> str:
    message = MESSAGES.get(delivery.message)
    if message is None:
        return ""
    facts = facts_of(message=message, context=delivery.context)
    return render(message=message, channel=Channel.IN_APP, facts=facts, customer=delivery.customer).text
