"""More time to pay, as pure rules: which dates a customer may pick, when a request is refused,
which requests are approved at once and which wait for staff, and when the agreed charge is
tried.  The limits are part of the recovery policy staff version in the admin
(RecoveryPolicy.extensions, validated here); the services pass the facts, nothing here reads the
database or Stripe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Annotated

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from pydantic import BaseModel, ConfigDict, Field, model_validator

DAY = dt.timedelta(days=1)
YEAR = dt.timedelta(days=365)


class Rules(BaseModel):
    """The extension part of one recovery policy version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The latest date a customer may pick, counted from the payment's original due date.
    max_days: Annotated[int, Field(ge=1, le=60)] = 14
    # How many requests (whatever became of them) a customer may make in 12 months.
    max_per_year: Annotated[int, Field(ge=0, le=12)] = 2
    # Requests up to this many days after the due date are approved at once ...
    auto_days: Annotated[int, Field(ge=0, le=60)] = 7
    # ... unless the customer asked before in the last 12 months ...
    auto_first_only: bool = True
    # ... or the amount is above the threshold in its currency (minor units); a currency without
    # a threshold always goes to staff.
    auto_max_amount: dict[Annotated[str, Field(pattern=r"^[a-z]{3}$")], Annotated[int, Field(ge=0)]] = {
        "eur": 20000,
        "usd": 20000,
        "gbp": 20000,
        "sek": 200000,
        "nok": 200000,
        "dkk": 150000,
    }
    # How many days before a renewal a customer may ask to move its charge.
    before_renewal_days: Annotated[int, Field(ge=0, le=30)] = 14
    # The local hour on the agreed date at which the charge is tried: the morning, when a salary
    # that came overnight is there and a decline can still be fixed the same day.
    charge_hour: Annotated[int, Field(ge=6, le=20)] = 10

    @model_validator(mode="after")
    def _coherent(self) -> Rules:
        if self.auto_days > self.max_days:
            raise ValueError("auto_days is within max_days")
        return self


DEFAULT = Rules()


class Kind(enum.StrEnum):
    # The payment failed: its recovery waits until the agreed date.
    AFTER_FAILURE = "after_failure"
    # The customer knows the next renewal's payment will fail: its charge moves to the date.
    BEFORE_RENEWAL = "before_renewal"


class Review(enum.StrEnum):
    """Why a request waits for staff."""

    LONG = "long"
    REPEAT = "repeat"
    AMOUNT = "amount"


REVIEW_TEXTS: dict[Review, Promise] = {
    Review.LONG: _("more days than are approved at once"),
    Review.REPEAT: _("not the first request in 12 months"),
    Review.AMOUNT: _("an amount above the threshold"),
}


class Refusal(enum.StrEnum):
    RUNNING = "running"
    TOO_MANY = "too_many"
    OUT_OF_RANGE = "out_of_range"
    NO_DATES = "no_dates"


@dataclasses.dataclass(frozen=True)
class Window:
    """The dates a customer may pick (both included), in their own calendar."""

    first: dt.date
    last: dt.date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.first <= day <= self.last


def window(*, due: dt.datetime, now: dt.datetime, zone: dt.tzinfo, rules: Rules) -> Window | None:
    """From tomorrow (or the day after the due date, if that is later) to `max_days` after the
    due date; None when no date is left."""
    due_day = due.astimezone(zone).date()
    first = max(now.astimezone(zone).date() + DAY, due_day + DAY)
    last = due_day + rules.max_days * DAY
    return Window(first, last) if first <= last else None


@dataclasses.dataclass(frozen=True)
class Facts:
    due: dt.datetime
    until: dt.date
    amount: int
    currency: str
    # Requests in the last 12 months (whatever became of them), this one not counted.
    earlier: int
    running: bool


def refusal(*, facts: Facts, allowed: Window | None, rules: Rules) -> Refusal | None:
    if facts.running:
        return Refusal.RUNNING
    if facts.earlier >= rules.max_per_year:
        return Refusal.TOO_MANY
    if allowed is None:
        return Refusal.NO_DATES
    if facts.until not in allowed:
        return Refusal.OUT_OF_RANGE
    return None


def reviews(*, facts: Facts, zone: dt.tzinfo, rules: Rules) -> list[Review]:
    """Why the request goes to staff; empty when it is approved at once."""
    found = []
    if (facts.until - facts.due.astimezone(zone).date()).days > rules.auto_days:
        found.append(Review.LONG)
    if rules.auto_first_only and facts.earlier > 0:
        found.append(Review.REPEAT)
    limit = rules.auto_max_amount.get(facts.currency.lower())
    if limit is None or facts.amount > limit:
        found.append(Review.AMOUNT)
    return found


def charge_at(*, until: dt.date, zone: dt.tzinfo, rules: Rules) -> dt.datetime:
    """When the agreed charge is tried: the policy's local hour on the agreed day, in UTC."""
    return dt.datetime.combine(until, dt.time(rules.charge_hour), tzinfo=zone).astimezone(dt.UTC)


def may_ask_before_renewal(*, renewal: dt.datetime, now: dt.datetime, rules: Rules) -> bool:
    return now < renewal <= now + rules.before_renewal_days * DAY
