"""Money and dates for people: integer minor units + ISO currency in, the locale's way out (babel).

Dates are shown in the active time zone, which the portal's middleware and the outbox set to the
customer's (`customer_zone`).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from decimal import Decimal

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision
from django.conf import settings
from django.utils import timezone
from django.utils.translation import get_language

# Our UI languages mapped to the CLDR locales used for numbers and dates.
_LOCALES = {"en": "en_IE", "sv": "sv_SE", "nl": "nl_NL"}


@functools.cache
def _parsed(code: str) -> Locale:
    try:
        return Locale.parse(code)
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en_IE")


def _locale(language: str | None) -> Locale:
    return _parsed(_LOCALES.get((language or get_language() or "en")[:2], "en_IE"))


def to_major(*, amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-get_currency_precision(currency.upper()))


def format_money(*, amount: int, currency: str, language: str | None = None) -> str:
    """1900, "eur" → "€19.00" (en), "€ 19,00" (nl), "19,00 €" (sv)."""
    return _money(amount, currency.upper(), _locale(language))


# Babel takes tens of microseconds per amount or date, and a page shows the same few again and
# again.  The text depends on nothing but the arguments (no customer, no time zone), so it is
# kept, up to a bound.
@functools.lru_cache(maxsize=4096)
def _money(amount: int, currency: str, locale: Locale) -> str:
    return format_currency(to_major(amount=amount, currency=currency), currency, locale=locale)


def format_day(
    *, value: dt.datetime | dt.date | None, language: str | None = None, style: str = "long"
) -> str:
    """A date in the customer's words: "21 November 2026", "21 november 2026"."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value).date()
    return _day(value, style, _locale(language))


@functools.lru_cache(maxsize=4096)
def _day(value: dt.date, style: str, locale: Locale) -> str:
    return format_date(value, format=style, locale=locale)


@functools.cache
def _zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.PORTAL_DISPLAY_TIME_ZONE)


def customer_zone(name: str) -> dt.tzinfo:
    """The customer's time zone (an IANA name), or the portal's default when they have none."""
    return _zone(name or settings.PORTAL_DISPLAY_TIME_ZONE)
