"""The price catalog, declared once: tiers × intervals × currencies.

`manage.py sync_catalog` makes the database and Stripe agree with this file.  Amounts are
minor units; a quarter and a year are cheaper than three or twelve months, and the
portal shows that saving.  Tier names are product names and
are not translated.  Lookup keys are stable: `<tier>_<interval>_<currency>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from billing.models import Interval

CURRENCIES = ("eur", "sek", "usd")

# Stripe's recurring fields for each of our intervals.
STRIPE_RECURRING: dict[str, tuple[str, int]] = {
    Interval.MONTH: ("month", 1),
    Interval.QUARTER: ("month", 3),
    Interval.YEAR: ("year", 1),
}
MONTHS_PER_INTERVAL = {Interval.MONTH: 1, Interval.QUARTER: 3, Interval.YEAR: 12}


@dataclass(frozen=True)
class TierSpec:
    key: str
    name: str
    rank: int
    # interval -> currency -> minor units
    amounts: dict[str, dict[str, int]]
    # What the tier includes, for the Plan page (translated).
    includes: tuple[Promise, ...] = ()
    # False: staff move customers to it; the portal doesn't offer it.
    self_serve: bool = True


TIERS: tuple[TierSpec, ...] = (
    TierSpec(
        key="basic",
        name="Basic",
        rank=1,
        amounts={
            Interval.MONTH: {"eur": 900, "sek": 9900, "usd": 1000},
            Interval.QUARTER: {"eur": 2500, "sek": 27900, "usd": 2800},
            Interval.YEAR: {"eur": 9000, "sek": 99000, "usd": 10000},
        },
        includes=(_("1 user"), _("5 projects"), _("Email support")),
    ),
    TierSpec(
        key="standard",
        name="Standard",
        rank=2,
        amounts={
            Interval.MONTH: {"eur": 1900, "sek": 19900, "usd": 2000},
            Interval.QUARTER: {"eur": 5400, "sek": 56700, "usd": 5700},
            Interval.YEAR: {"eur": 19000, "sek": 199000, "usd": 20000},
        },
        includes=(_("5 users"), _("Unlimited projects"), _("Email support")),
    ),
    TierSpec(
        key="pro",
        name="Pro",
        rank=3,
        amounts={
            Interval.MONTH: {"eur": 4900, "sek": 49900, "usd": 5000},
            Interval.QUARTER: {"eur": 13900, "sek": 142200, "usd": 14200},
            Interval.YEAR: {"eur": 49000, "sek": 499000, "usd": 50000},
        },
        includes=(_("25 users"), _("Unlimited projects"), _("Priority support by phone")),
    ),
)


def lookup_key(*, tier: str, interval: str, currency: str) -> str:
    return f"{tier}_{interval}_{currency}"


def spec(key: str) -> TierSpec | None:
    """The declaration of the tier with this key, if the catalog still has it."""
    return next((tier for tier in TIERS if tier.key == key), None)
