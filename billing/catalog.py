"""The price catalog, declared once: tiers × intervals × currencies.

`manage.py sync_catalog` makes the database and Stripe agree with this file.  Amounts are
minor units; a quarter and a year are cheaper than three or twelve months, and the
portal shows that saving.  Tier names are product names and
are not translated.  Lookup keys are stable: `<tier>_<interval>_<currency>`.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    ),
)


def lookup_key(*, tier: str, interval: str, currency: str) -> str:
    return f"{tier}_{interval}_{currency}"
