"""Template filters for money and dates in the active language: {{ invoice.amount_due|money:invoice.currency }}."""

from __future__ import annotations

import datetime as dt

from django import template

from billing.money import format_day, format_money

register = template.Library()


@register.filter
def money(amount: int | None, currency: str) -> str:
    if amount is None:
        return ""
    return format_money(amount=int(amount), currency=currency or "eur")


@register.filter
def day(value: dt.datetime | dt.date | None, style: str = "long") -> str:
    return format_day(value=value, style=style)
