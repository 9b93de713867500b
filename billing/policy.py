"""The rules, as pure functions over a frozen policy value.

`current()` builds the policy from `settings.BILLING_POLICY` (defaults below); every rule takes it,
or the part it needs, plus plain facts, and touches neither the database nor Stripe, so rules are
tested on their own and the same rule serves pages, services and jobs.  A refusal is a sentence
for the customer (translated when it is made), or None.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.translation import gettext as _


class Category(enum.StrEnum):
    """What a message is for, which decides whether a customer may opt out of it."""

    PAYMENT_CRITICAL = "payment_critical"
    REMINDER = "reminder"
    CONFIRMATION = "confirmation"
    INFORMATION = "information"


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    IN_APP = "in_app"


# --------------------------------------------------------------------------- the policy value


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Waits between tries: the listed delays in turn, then `max_seconds` each time."""

    delays_seconds: tuple[int, ...] = (5, 30, 120, 600, 1800)
    max_seconds: int = 3600

    def delay(self, *, attempts: int) -> dt.timedelta:
        if attempts <= 0:
            return dt.timedelta(0)
        if attempts <= len(self.delays_seconds):
            return dt.timedelta(seconds=self.delays_seconds[attempts - 1])
        return dt.timedelta(seconds=self.max_seconds)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How long one item (a change, an event, a message) is tried before it ends failed.

    Two budgets: an error of ours or of the data (a bug, a card gone) ends it after
    `max_attempts` tries; Stripe or the mail server being unreachable ends it only after it has
    waited `give_up_after_seconds`, since an outage is not the item's fault."""

    backoff: Backoff = Backoff()
    max_attempts: int = 5
    give_up_after_seconds: int = 3 * 24 * 3600
    # While items wait out an outage on their (long) backoff, one of them is tried this often, so
    # that all of them go soon after Stripe answers again.
    probe_seconds: int = 60


@dataclasses.dataclass(frozen=True)
class QuietHours:
    """No message the customer did not cause is sent between `start` and `end`, their time."""

    start_hour: int = 21
    end_hour: int = 8


@dataclasses.dataclass(frozen=True)
class PausePolicy:
    lengths_months: tuple[int, ...] = (1, 2, 3)
    max_per_year: int = 2
    # The reminder that a pause ends soon goes this many days before the resume.
    reminder_days_before: int = 3


@dataclasses.dataclass(frozen=True)
class CancelPolicy:
    # What cancelling does to an unpaid invoice (billing.cancellation.Unpaid): "void" (no longer
    # owed) or "keep_owed" (still owed, payable by the customer, never retried).  Either way no
    # automatic retry charges a customer who has cancelled.
    unpaid_invoice: str = "void"


@dataclasses.dataclass(frozen=True)
class ExtensionPolicy:
    max_days: int = 14
    max_per_year: int = 2
    auto_approve_days: int = 7


@dataclasses.dataclass(frozen=True)
class RenewalDays:
    """How many days before a renewal its reminder goes, per interval (monthly renewals get none)."""

    quarterly: int = 7
    yearly: int = 30

    def __post_init__(self) -> None:
        if not (1 <= self.quarterly <= 60 and 1 <= self.yearly <= 90):
            raise ValueError("BILLING_POLICY: predunning.renewal_days are 1-60 (quarterly) and 1-90 (yearly)")


@dataclasses.dataclass(frozen=True)
class PredunningPolicy:
    """The nightly reminders before a charge (billing.predunning)."""

    # A card that expires before the next charge is reminded about this many days before it.
    card_days: int = 14
    renewal_days: RenewalDays = RenewalDays()
    # Subscriptions one step of the scan reads (a slice of primary keys, one transaction each).
    batch: int = 5000
    # Pre-dunning reminders a customer gets in 24 hours at most; the rest wait for the next night.
    daily_cap: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.card_days <= 60:
            raise ValueError("BILLING_POLICY: predunning.card_days is 1-60")
        if not 1 <= self.batch <= 100_000:
            raise ValueError("BILLING_POLICY: predunning.batch is 1-100000")
        if not 1 <= self.daily_cap <= 5:
            raise ValueError("BILLING_POLICY: predunning.daily_cap is 1-5")


@dataclasses.dataclass(frozen=True)
class BillingPolicy:
    changes: RetryPolicy = RetryPolicy()
    events: RetryPolicy = RetryPolicy(max_attempts=8)
    messages: RetryPolicy = RetryPolicy(
        backoff=Backoff(delays_seconds=(30, 120, 600), max_seconds=1800), give_up_after_seconds=24 * 3600
    )
    quiet_hours: QuietHours = QuietHours()
    # How long access continues after a failed payment (room for the recovery engine).
    grace_days: int = 7
    pause: PausePolicy = PausePolicy()
    cancel: CancelPolicy = CancelPolicy()
    extension: ExtensionPolicy = ExtensionPolicy()
    predunning: PredunningPolicy = PredunningPolicy()


def build(overrides: Mapping[str, Any] | None = None) -> BillingPolicy:
    """The default policy with `overrides` applied; nested parts are dicts of their fields
    ({"changes": {"max_attempts": 3, "backoff": {"delays_seconds": [1, 2]}}})."""
    built: BillingPolicy = _replaced(BillingPolicy(), overrides or {})
    return built


def _replaced(value: Any, overrides: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(value)}
    changes: dict[str, Any] = {}
    for name, given in overrides.items():
        if name not in fields:
            raise ValueError(f"BILLING_POLICY: {type(value).__name__} has no setting {name!r}")
        current = getattr(value, name)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            changes[name] = _replaced(current, given)
        elif isinstance(current, tuple):
            changes[name] = tuple(given)
        else:
            changes[name] = type(current)(given)
    return dataclasses.replace(value, **changes)


@functools.cache
def current() -> BillingPolicy:
    return build(getattr(settings, "BILLING_POLICY", None))


@receiver(setting_changed)
def _forget_policy(*, setting: str, **kwargs: Any) -> None:
    if setting == "BILLING_POLICY":
        current.cache_clear()


# --------------------------------------------------------------------------- retries


def next_try(
    *, policy: RetryPolicy, attempts: int, outage: bool, waiting_since: dt.datetime, now: dt.datetime
) -> dt.datetime | None:
    """When to try an item again after its `attempts`-th try failed, or None to give up."""
    if outage:
        if now - waiting_since >= dt.timedelta(seconds=policy.give_up_after_seconds):
            return None
    elif attempts >= policy.max_attempts:
        return None
    return now + policy.backoff.delay(attempts=attempts)


@dataclasses.dataclass(frozen=True)
class Failure:
    """What one more failed try means for an item."""

    attempts: int
    # The error as staff read it.
    error: str
    # When to try again; None when the item has had its chances.
    retry_at: dt.datetime | None


def failure(
    *,
    policy: RetryPolicy,
    attempts: int,
    error: BaseException,
    outage: bool,
    waiting_since: dt.datetime,
    now: dt.datetime,
) -> Failure:
    """An item tried `attempts` times before failed once more."""
    count = attempts + 1
    retry_at = next_try(policy=policy, attempts=count, outage=outage, waiting_since=waiting_since, now=now)
    return Failure(attempts=count, error=f"{type(error).__name__}: {error}"[:2000], retry_at=retry_at)


def probe_due(*, policy: RetryPolicy, attempted_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether an item waiting out an outage may be tried now, ahead of its backoff, to learn
    whether the outage is over."""
    return attempted_at is None or now - attempted_at >= dt.timedelta(seconds=policy.probe_seconds)


# --------------------------------------------------------------------------- cards


def card_expired(*, exp_year: int, exp_month: int, today: dt.date) -> bool:
    return (exp_year, exp_month) < (today.year, today.month)


def card_expires_before(*, exp_year: int, exp_month: int, moment: dt.datetime) -> bool:
    """A card works until the end of its expiry month."""
    first_after = dt.datetime(exp_year + exp_month // 12, exp_month % 12 + 1, 1, tzinfo=dt.UTC)
    return first_after <= moment


def default_refusal(*, exp_year: int, exp_month: int, today: dt.date) -> str | None:
    if card_expired(exp_year=exp_year, exp_month=exp_month, today=today):
        return _("This card has expired.")
    return None


def backup_refusal(*, card_id: str, default_card_id: str, consent: bool) -> str | None:
    if not consent:
        return _("Please confirm that we may charge the backup card when your default card fails.")
    if card_id == default_card_id:
        return _("The default card can't also be the backup card.")
    return None


def card_removal_refusal(
    *, card_id: str, default_card_id: str, other_cards: int, live_subscription: bool
) -> str | None:
    """A customer with a live subscription keeps at least one card; otherwise the next charge has
    nothing to go to.  The default card can go once another card can take its place."""
    if not live_subscription:
        return None
    if other_cards == 0:
        return _("This is your only card and your subscription needs one. Add another card first.")
    if card_id == default_card_id:
        return _("This is your default card. Make another card the default first.")
    return None


# --------------------------------------------------------------------------- messages


def delivery_suppression(
    *, category: Category, channel: Channel, opt_outs: list[str], has_address: bool
) -> str | None:
    """Why a message is not sent on a channel ("opted_out", "no_address"), or None to send it.
    The in-app list is the customer's record of what happened: it always gets the message."""
    if channel == Channel.IN_APP:
        return None
    if not has_address:
        return "no_address"
    if opted_out(category=category, channel=channel, opt_outs=opt_outs):
        return "opted_out"
    return None


# The categories no customer can switch off: news of their money (a failed payment, a final
# notice) and the confirmation of a change they made (the way they learn of one they did not).
MANDATORY = frozenset({Category.PAYMENT_CRITICAL, Category.CONFIRMATION})


def may_opt_out(*, category: Category, channel: Channel | None = None) -> bool:
    """Whether the customer may switch off `category` (on `channel`, or on every channel)."""
    return category not in MANDATORY and channel != Channel.IN_APP


def opt_out_key(*, category: Category, channel: Channel) -> str:
    """How one switched-off category and channel is kept in BillingCustomer.opt_outs."""
    return f"{category}:{channel}"


def opted_out(*, category: Category, channel: Channel, opt_outs: list[str]) -> bool:
    """Whether the customer switched this category off on this channel (a bare category in
    `opt_outs` means every channel); never for what may not be switched off."""
    if not may_opt_out(category=category, channel=channel):
        return False
    return category in opt_outs or opt_out_key(category=category, channel=channel) in opt_outs


@dataclasses.dataclass(frozen=True)
class Preference:
    """One category on one channel as the Details page shows it: on or off, and whether the
    customer may switch it."""

    category: Category
    channel: Channel
    on: bool
    locked: bool

    @property
    def key(self) -> str:
        return opt_out_key(category=self.category, channel=self.channel)


def preferences(*, opt_outs: list[str]) -> list[list[Preference]]:
    """Every category (a row) on every channel (a column), as the customer has them."""
    return [
        [
            Preference(
                category=category,
                channel=channel,
                on=not opted_out(category=category, channel=channel, opt_outs=opt_outs),
                locked=not may_opt_out(category=category, channel=channel),
            )
            for channel in Channel
        ]
        for category in Category
    ]


def opt_outs_from(*, switched_on: set[str]) -> list[str]:
    """The opt-outs for a Details form: every switchable category and channel not left on (by
    opt_out_key), in a stable order; what may not be switched off is never stored as off."""
    return [
        opt_out_key(category=category, channel=channel)
        for category in Category
        for channel in Channel
        if may_opt_out(category=category, channel=channel)
        and opt_out_key(category=category, channel=channel) not in switched_on
    ]


def send_after(
    *, quiet: QuietHours, prompted: bool, channel: Channel, now: dt.datetime, zone: dt.tzinfo
) -> dt.datetime:
    """The earliest moment to send: at once for what the customer's own action prompted (they are
    there, waiting for it) and for the in-app list; anything else waits for the end of the
    customer's quiet hours."""
    if prompted or channel == Channel.IN_APP:
        return now
    local = now.astimezone(zone)
    hour = local.hour
    quiet_now = (
        quiet.start_hour <= hour or hour < quiet.end_hour
        if quiet.start_hour > quiet.end_hour
        else quiet.start_hour <= hour < quiet.end_hour
    )
    if not quiet_now:
        return now
    end = local.replace(hour=quiet.end_hour, minute=0, second=0, microsecond=0)
    if end <= local:
        end = (local + dt.timedelta(days=1)).replace(hour=quiet.end_hour, minute=0, second=0, microsecond=0)
    return end.astimezone(dt.UTC)
