"""Template filters for money and dates in the active language ({{ invoice.amount_due|money:invoice.currency }}),
and the line of an in-app message."""

from __future__ import annotations

import datetime as dt

from django import template

from billing.messages import MESSAGES, facts_of, render
from billing.models import Delivery
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
def in_app_line(delivery: Delivery) -> str:
    """A delivery's line in the portal's list of messages, in the active language (escaped)."""
    message = MESSAGES.get(delivery.message)
    if message is None:
        return ""
    facts = facts_of(message=message, context=delivery.context)
    return render(message=message, channel=Channel.IN_APP, facts=facts, customer=delivery.customer).text
