"""The rules of a customer's details, as pure functions: which countries and time zones they choose
from, and what makes a VAT number, a mobile number or an address one we accept.

Each check returns the value as we keep it (a VAT number compact, a mobile number in E.164) or
raises DetailProblem with a sentence for the customer, translated in the active language when it
is raised.  Nothing here touches the database or Stripe: a value refused here never leaves the
form (portal/forms.py), so a typo never costs a call to Stripe or an error from it.
"""

from __future__ import annotations

import functools
import unicodedata
import zoneinfo

import phonenumbers
from babel.core import Locale, UnknownLocaleError
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from stdnum import exceptions as stdnum_errors
from stdnum.eu import vat

# What CLDR lists as territories but ISO 3166-1 (and so Stripe's `address[country]`) does not
# know: groupings (EU, UN, "world"), pseudo-locales and islands with no code of their own.
_NOT_COUNTRIES = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "ZZ"}
)

# The zones offered in the Details page's select: where our customers are (our currencies are EUR,
# SEK and USD) and a few for those who travel.  A customer's own zone is offered too if it is
# another one, so saving the page never changes it by surprise.
COMMON_ZONES = (
    "Europe/Stockholm",
    "Europe/Amsterdam",
    "Europe/Brussels",
    "Europe/Berlin",
    "Europe/Copenhagen",
    "Europe/Oslo",
    "Europe/Helsinki",
    "Europe/Dublin",
    "Europe/London",
    "Europe/Lisbon",
    "Europe/Madrid",
    "Europe/Paris",
    "Europe/Rome",
    "Europe/Vienna",
    "Europe/Warsaw",
    "Europe/Athens",
    "Atlantic/Reykjavik",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "UTC",
)

# Types of number a text message reaches.  Some countries (the US among them) can't tell a mobile
# number from a landline by the number alone, so those count as mobile.
_TEXTABLE = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


class DetailProblem(ValueError):
    """A value the customer gave that we don't accept; its message is for them."""


# --------------------------------------------------------------------------- countries


def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


@functools.cache
def _countries(language: str) -> tuple[tuple[str, str], ...]:
    names = {str(code): str(name) for code, name in _locale(language).territories.items()}
    codes = [code for code in names if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES]
    # By name as the customer reads it; accents sorted with their letter ("Åland" near "Aland").
    return tuple(
        sorted(
            ((code, names[code]) for code in codes),
            key=lambda pair: unicodedata.normalize("NFKD", pair[1]).casefold(),
        )
    )


def countries(*, language: str | None = None) -> tuple[tuple[str, str], ...]:
    """Every ISO 3166-1 country as (code, name in the language), sorted by name."""
    return _countries((language or get_language() or "en")[:2])


def country_codes() -> frozenset[str]:
    return frozenset(code for code, _name in _countries("en"))


# --------------------------------------------------------------------------- time zones


def zones(*, current: str = "") -> tuple[str, ...]:
    """The zones to choose from: the common ones, and the customer's own if it is another."""
    if current and current not in COMMON_ZONES:
        return (current, *COMMON_ZONES)
    return COMMON_ZONES


def checked_zone(value: str) -> str:
    """An IANA zone this machine knows, or "" for the portal's default."""
    if not value:
        return ""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DetailProblem(_("Please choose a time zone from the list."))
    return value


# --------------------------------------------------------------------------- VAT numbers


def checked_vat(value: str) -> str:
    """A European VAT number, compact ("SE 5566 7788 9901" → "SE556677889901"), or "" for none.
    Checked by its country's format and check digits, as Stripe's `eu_vat` tax id wants it."""
    if not value.strip():
        return ""
    try:
        return str(vat.validate(value))
    except stdnum_errors.InvalidComponent:
        raise DetailProblem(
            _(
                "A VAT number starts with the two letters of its country, as in SE556677889901. "
                "Please check the beginning of the number."
            )
        )
    except stdnum_errors.InvalidChecksum:
        raise DetailProblem(
            _("This VAT number does not add up (its check digits are wrong). Please check it for a typo.")
        )
    except stdnum_errors.ValidationError:
        raise DetailProblem(
            _("This is not a valid VAT number for its country. Please check the number of digits.")
        )


# --------------------------------------------------------------------------- mobile numbers


def checked_mobile(value: str, *, country: str = "") -> str:
    """A mobile number in E.164 ("+46701234567"), or "" for none.  Written without its country
    code, the number is read as one of `country` (the billing address's)."""
    if not value.strip():
        return ""
    try:
        number = phonenumbers.parse(value, country.upper() or None)
    except phonenumbers.NumberParseException:
        raise DetailProblem(_("Please write the number with its country code, as in +46 70 123 45 67."))
    if not phonenumbers.is_valid_number(number):
        raise DetailProblem(
            _("This is not a valid phone number. Please check the country code and the digits.")
        )
    if phonenumbers.number_type(number) not in _TEXTABLE:
        raise DetailProblem(_("Text messages need a mobile number. This one looks like a landline."))
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


# --------------------------------------------------------------------------- addresses


ADDRESS_FIELDS = ("line1", "line2", "postal_code", "city", "country")


def address_problems(*, line1: str, line2: str, postal_code: str, city: str, country: str) -> dict[str, str]:
    """What an address lacks, by field: none, or one Stripe can print on an invoice (a street,
    a city and a country at least)."""
    if not any((line1, line2, postal_code, city, country)):
        return {}
    problems = {}
    if not line1:
        problems["line1"] = _("Please fill in the street and number, or leave the whole address empty.")
    if not city:
        problems["city"] = _("Please fill in the city, or leave the whole address empty.")
    if not country:
        problems["country"] = _("Please choose the country, or leave the whole address empty.")
    elif country not in country_codes():
        problems["country"] = _("Please choose a country from the list.")
    return problems
