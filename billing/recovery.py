"""The recovery rules, as pure functions: the escalation policy and its validation, when each step
of a case is sent, and a customer's access (full, grace, restricted) while a payment is owed.

The policy is data staff edit in the admin (billing.models.RecoveryPolicy, a new version each
save); `spec()` validates a version into `Policy`, so a bad edit is refused when it is saved, not
when a case runs it.  Nothing here reads the database or Stripe: the services pass the facts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import itertools
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from billing.extensions import DEFAULT as EXTENSION_DEFAULTS
from billing.extensions import Rules as ExtensionRules
from billing.policy import Channel

DAY = dt.timedelta(days=1)
CAP_WINDOW = dt.timedelta(hours=24)


class Tone(enum.StrEnum):
    """How a reminder speaks; it escalates, and each tone has its own texts (billing messages
    `payment_failed_<tone>`)."""

    FRIENDLY = "friendly"
    REMINDER = "reminder"
    DIRECT = "direct"
    FINAL = "final"


class Condition(enum.StrEnum):
    """When a step is sent at all (it is always skipped once the case is closed)."""

    ALWAYS = "always"
    # Only if the customer has not clicked any link of the case yet (they are on it otherwise).
    UNOPENED = "unopened"


class EndAction(enum.StrEnum):
    RESTRICT = "restrict"
    CANCEL = "cancel"


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,29}$")]
    day: Annotated[int, Field(ge=0, le=60)]
    tone: Tone
    channels: Annotated[tuple[Channel, ...], Field(min_length=1)]
    condition: Condition = Condition.ALWAYS


class Policy(BaseModel):
    """One version of the escalation policy, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: Annotated[tuple[Step, ...], Field(min_length=1, max_length=10)]
    grace_days: Annotated[int, Field(ge=1, le=60)]
    end_action: EndAction
    daily_cap: Annotated[int, Field(ge=1, le=5)]
    retry_hold_hours: Annotated[int, Field(ge=0, le=72)]
    link_days: Annotated[int, Field(ge=1, le=30)]
    extensions: ExtensionRules = EXTENSION_DEFAULTS

    @model_validator(mode="after")
    def _coherent(self) -> Policy:
        days = [step.day for step in self.steps]
        if days[0] != 0:
            raise ValueError("the first step is sent on day 0, when the payment fails")
        if any(later <= earlier for earlier, later in itertools.pairwise(days)):
            raise ValueError("steps are sent on increasing days")
        if len({step.name for step in self.steps}) != len(self.steps):
            raise ValueError("each step has its own name")
        finals = [step for step in self.steps if step.tone == Tone.FINAL]
        if len(finals) != 1 or self.steps[-1].tone != Tone.FINAL:
            raise ValueError("the last step, and only it, is the final notice")
        if days[-1] >= self.grace_days:
            raise ValueError("the final notice goes before access ends (grace_days)")
        if any(len(set(step.channels)) != len(step.channels) for step in self.steps):
            raise ValueError("a step names each channel once")
        return self


# What the seeds suggest: a friendly word at once, a reminder, a direct one with a text message,
# and a final notice in every channel a few days before access ends.
DEFAULT = Policy(
    steps=(
        Step(name="friendly", day=0, tone=Tone.FRIENDLY, channels=(Channel.EMAIL, Channel.IN_APP)),
        Step(name="reminder", day=3, tone=Tone.REMINDER, channels=(Channel.EMAIL,)),
        Step(name="direct", day=7, tone=Tone.DIRECT, channels=(Channel.EMAIL, Channel.SMS)),
        Step(name="final", day=11, tone=Tone.FINAL, channels=(Channel.EMAIL, Channel.SMS, Channel.IN_APP)),
    ),
    grace_days=14,
    end_action=EndAction.RESTRICT,
    daily_cap=1,
    retry_hold_hours=12,
    link_days=14,
)


class InvalidPolicy(ValueError):
    """A policy version staff tried to save does not hold together; the message says why."""


def spec(*, data: dict[str, Any]) -> Policy:
    """A stored policy version as a validated Policy; InvalidPolicy with the reasons otherwise."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'policy'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidPolicy(reasons) from exc


# --------------------------------------------------------------------------- when a step goes


def step_due(*, opened_at: dt.datetime, step: Step) -> dt.datetime:
    return opened_at + step.day * DAY


def send_time(
    *,
    due: dt.datetime,
    first: bool,
    hard: bool,
    next_retry_at: dt.datetime | None,
    hold_hours: int,
    recent_sends: Sequence[dt.datetime],
    daily_cap: int,
) -> dt.datetime:
    """When a step that is due at `due` may go (quiet hours are the outbox's, on top).

    A reminder due shortly before Stripe's next automatic retry of a soft decline waits until an
    hour after it: if the retry succeeds, the customer needn't hear from us at all.  The first
    message never waits for a retry: the customer hears at once.  And a customer hears about
    their payments at most `daily_cap` times in 24 hours (`recent_sends`: when the recovery
    messages of the last 24 hours went)."""
    at = due
    holding = not first and not hard and next_retry_at is not None
    if holding and next_retry_at is not None and at <= next_retry_at <= at + dt.timedelta(hours=hold_hours):
        at = next_retry_at + dt.timedelta(hours=1)
    if len(recent_sends) >= daily_cap:
        window_opens = sorted(recent_sends)[-daily_cap] + CAP_WINDOW
        at = max(at, window_opens)
    return at


# --------------------------------------------------------------------------- access


class Level(enum.IntEnum):
    """A customer's access, best last: the product asks `level >= Level.GRACE` and the like."""

    NONE = 0
    RESTRICTED = 1
    GRACE = 2
    FULL = 3


@dataclasses.dataclass(frozen=True)
class SubscriptionFacts:
    """What access depends on for one subscription."""

    stripe_id: str
    # billing.state.Phase's value, and whether the subscription itself is paused (no service)
    # rather than only its collection (which keeps access).
    phase: str
    paused_service: bool
    # The open recovery case on it, if any: when its grace ends.
    case_id: int | None = None
    grace_ends_at: dt.datetime | None = None
    # The customer was given until then to pay the case's invoice (billing.extensions).
    extended_until: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Access:
    level: Level
    # Until when grace lasts (GRACE), or since when access is restricted (RESTRICTED by a case).
    until: dt.datetime | None = None
    case_id: int | None = None
    subscription: str = ""
    # Full access while the customer has more time to pay: the agreed date (the state
    # "extended until").
    extended_until: dt.datetime | None = None

    @property
    def name(self) -> str:
        return self.level.name.lower()


def subscription_access(*, facts: SubscriptionFacts, now: dt.datetime) -> Access:
    sub = facts.stripe_id
    if facts.phase == "ended":
        return Access(Level.NONE, subscription=sub)
    if facts.case_id is not None and facts.extended_until is not None:
        return Access(
            Level.FULL, case_id=facts.case_id, subscription=sub, extended_until=facts.extended_until
        )
    if facts.case_id is not None and facts.grace_ends_at is not None:
        if now < facts.grace_ends_at:
            return Access(Level.GRACE, until=facts.grace_ends_at, case_id=facts.case_id, subscription=sub)
        return Access(Level.RESTRICTED, until=facts.grace_ends_at, case_id=facts.case_id, subscription=sub)
    if facts.paused_service or facts.phase == "incomplete":
        return Access(Level.RESTRICTED, subscription=sub)
    if facts.phase == "past_due":
        # Failed, but its case is not open yet (the event is on its way): what was paid goes on.
        return Access(Level.GRACE, subscription=sub)
    return Access(Level.FULL, subscription=sub)


def customer_access(*, subscriptions: Sequence[SubscriptionFacts], now: dt.datetime) -> Access:
    """The best access any of the customer's subscriptions gives: a failed payment on one takes
    nothing from another that is paid for."""
    found = [subscription_access(facts=facts, now=now) for facts in subscriptions]
    if not found:
        return Access(Level.NONE)
    return max(found, key=lambda access: access.level)
