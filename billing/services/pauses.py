"""Pausing and resuming: the customer pauses for a length the policy allows, the subscription
resumes by itself on the date shown (a beat job), or earlier when the customer asks.  The rules are
billing/pauses.py; this module applies them through the change engine.

Stripe's pause (status `paused`, flexible billing mode) has no resume date, so the date is ours:
kept on the Stripe subscription's metadata (the mirror reads it back), and reached by
`resume_due`, which the beat runs every minute.  The resume is a change like the customer's own,
whose dedupe key is the subscription and its resume date: however often the job runs, and
whatever webhooks arrive twice, one change resumes one pause, with Stripe's idempotency keys
derived from it; a customer's early resume and the job's, should they meet, find the subscription
resumed already and charge nothing more.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Literal

from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from pydantic import StringConstraints

from billing import changes, gateway, messages, outbox, pauses, policy, selectors, sync
from billing.catalog import MONTHS_PER_INTERVAL
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.errors import InvalidRequest, Refused
from billing.messages import Facts
from billing.models import BillingChange, BillingCustomer, Interval, Price, Subscription
from billing.policy import Category, Channel
from billing.services import mirrored

SubscriptionId = Annotated[str, StringConstraints(pattern=r"^sub_[A-Za-z0-9_]{1,200}$")]

BOTH = (Channel.EMAIL, Channel.IN_APP)


# --------------------------------------------------------------------------- parameters and results


class PauseParams(ChangeParams):
    subscription: SubscriptionId
    months: int
    resumes_at: int
    # The page said a change scheduled for the renewal would be dropped (the plan it named).
    drops_scheduled: str = ""


class ResumeParams(ChangeParams):
    subscription: SubscriptionId
    # The resume date of the pause this ends (the job's key); early: the customer asked before it.
    resumes_at: int
    early: bool


class PauseResult(ChangeResult):
    subscription: str
    plan: str
    currency: str
    resumes_at: dt.datetime
    # What Stripe credited for the unused part of the period, and the first payment after the pause.
    credit: int
    next_amount: int
    dropped_plan: str = ""


class ResumeResult(ChangeResult):
    subscription: str
    plan: str
    currency: str
    early: bool
    invoice: str = ""
    charged: int = 0
    period_end: dt.datetime | None = None
    outcome: Literal["paid", "declined", "action_required", "already_resumed"]
    decline_code: str = ""


# --------------------------------------------------------------------------- messages


class PausedFacts(Facts):
    plan: str
    resumes_at: dt.datetime
    next_amount: int
    credit: int
    currency: str
    dropped_plan: str


class ResumedFacts(Facts):
    plan: str
    charged: int
    currency: str
    next_at: dt.datetime | None
    early: bool


class ResumePaymentFacts(Facts):
    plan: str
    amount: int
    currency: str
    decline_code: str
    needs_approval: bool
    change_id: str


class PauseEndingFacts(Facts):
    plan: str
    resumes_at: dt.datetime
    amount: int
    currency: str


SUBSCRIPTION_PAUSED = messages.declare(
    "subscription_paused", category=Category.CONFIRMATION, channels=BOTH, facts=PausedFacts
)
SUBSCRIPTION_RESUMED = messages.declare(
    "subscription_resumed", category=Category.CONFIRMATION, channels=BOTH, facts=ResumedFacts
)
RESUME_PAYMENT_TROUBLE = messages.declare(
    "resume_payment_trouble",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=ResumePaymentFacts,
    action="portal:change",
    action_args=("change_id",),
    action_label=_("Pay and resume"),
    prompted=True,
)
# A reminder, not payment-critical: the customer's opt-outs apply, and quiet hours.
PAUSE_ENDING_SOON = messages.declare(
    "pause_ending_soon",
    category=Category.REMINDER,
    channels=(Channel.EMAIL, Channel.SMS, Channel.IN_APP),
    facts=PauseEndingFacts,
    action="portal:pause",
    action_label=_("See your pause"),
)


# --------------------------------------------------------------------------- what the pause page shows


def _interval_months(interval: str) -> int:
    return MONTHS_PER_INTERVAL.get(Interval(interval), 1)


@dataclasses.dataclass(frozen=True)
class PauseOption:
    """One length of pause as the page offers it, and what billing does with it."""

    months: int
    resumes_at: dt.datetime
    # The first payment after the pause: the period's price less the credit for unused time.
    first_amount: int
    # When the period that payment starts ends (the next payment after it).
    next_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class PausePreview:
    """What pausing would do, from the mirror and the catalog (no Stripe call): the credit is
    Stripe's proration formula at this moment, the result of the pause says what Stripe credited."""

    subscription: Subscription
    currency: str
    amount: int
    credit: int
    options: tuple[PauseOption, ...]
    # A change scheduled for the renewal that the pause drops (its plan's name), or "".
    drops_scheduled: str


def pause_preview(*, subscription: Subscription, now: dt.datetime) -> PausePreview:
    sub = subscription
    amount = sub.unit_amount * sub.quantity
    credit = 0
    if sub.current_period_start and sub.current_period_end:
        credit = pauses.unused_credit(
            amount=amount, start=sub.current_period_start, end=sub.current_period_end, at=now
        )
    months = _interval_months(sub.price.interval) if sub.price is not None else 1
    options = []
    for length in policy.current().pause.lengths_months:
        back = pauses.resumes_at(start=now, months=length)
        options.append(
            PauseOption(
                months=length,
                resumes_at=back,
                first_amount=max(0, amount - credit),
                next_at=pauses.add_months(moment=back, months=months),
            )
        )
    return PausePreview(
        subscription=sub,
        currency=sub.currency,
        amount=amount,
        credit=credit,
        options=tuple(options),
        drops_scheduled=mirrored.plan_name(sub.scheduled_price) if sub.scheduled_price_id else "",
    )


@dataclasses.dataclass(frozen=True)
class ResumePreview:
    """What resuming now charges: the period's price less the pause's credit, and when the new
    period ends."""

    charge: int
    credit: int
    currency: str
    period_end: dt.datetime
    resumes_at: dt.datetime | None


def resume_preview(
    *, subscription: Subscription, pause: BillingChange | None, now: dt.datetime
) -> ResumePreview:
    sub = subscription
    result = changes.result_of(pause) if pause is not None else None
    credit = result.credit if isinstance(result, PauseResult) else 0
    months = _interval_months(sub.price.interval) if sub.price is not None else 1
    return ResumePreview(
        charge=max(0, sub.unit_amount * sub.quantity - credit),
        credit=credit,
        currency=sub.currency,
        period_end=pauses.add_months(moment=now, months=months),
        resumes_at=sub.pause_resumes_at,
    )


# --------------------------------------------------------------------------- applying


def _ts(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


@change_kind
class SubscriptionPause(ChangeKind[PauseParams, PauseResult]):
    name = "subscription_pause"
    label = _("Pause your subscription")
    template = "portal/changes/subscription_pause.html"
    Params = PauseParams
    Result = PauseResult
    messages = (SUBSCRIPTION_PAUSED,)
    # The form's one-time key: a later pause is a change of its own.
    dedupe = ()
    supersedes = False

    def apply(self, *, change: BillingChange, customer: BillingCustomer, params: PauseParams) -> PauseResult:
        sub = mirrored.subscription_of(customer=customer, stripe_id=params.subscription)
        assert customer.stripe_customer_id
        live = gateway.subscription_retrieve(subscription_id=sub.stripe_id)
        dropped = ""
        if live.status != Subscription.Status.PAUSED:  # else: a retry after Stripe paused it
            if live.schedule_id:
                if not params.drops_scheduled:
                    # Scheduled after the page was shown: the customer wasn't told it goes.
                    raise InvalidRequest(
                        "A plan change was scheduled after the pause page was shown.", code="preview_stale"
                    )
                # Stripe can't pause a subscription on a schedule; the page said the change goes.
                gateway.schedule_release(
                    schedule_id=live.schedule_id, idempotency_key=change.idempotency_key("release")
                )
                dropped = params.drops_scheduled
            gateway.subscription_pause(
                subscription_id=sub.stripe_id,
                resumes_at=params.resumes_at,
                idempotency_key=change.idempotency_key("pause"),
            )
        credit = gateway.pending_credit(
            customer_id=customer.stripe_customer_id, subscription_id=sub.stripe_id
        )
        mirrored.refreshed(customer=customer, subscription_id=sub.stripe_id)
        amount = sub.unit_amount * sub.quantity
        return PauseResult(
            subscription=sub.stripe_id,
            plan=mirrored.plan_name(sub.price),
            currency=sub.currency,
            resumes_at=_ts(params.resumes_at),
            credit=credit,
            next_amount=max(0, amount - credit),
            dropped_plan=dropped,
        )

    def confirmation(
        self, *, change: BillingChange, params: PauseParams, result: PauseResult
    ) -> Confirmation:
        return Confirmation(
            SUBSCRIPTION_PAUSED,
            PausedFacts(
                plan=result.plan,
                resumes_at=result.resumes_at,
                next_amount=result.next_amount,
                credit=result.credit,
                currency=result.currency,
                dropped_plan=result.dropped_plan,
            ),
        )


@change_kind
class SubscriptionResume(ChangeKind[ResumeParams, ResumeResult]):
    name = "subscription_resume"
    label = _("Resume your subscription")
    template = "portal/changes/subscription_resume.html"
    Params = ResumeParams
    Result = ResumeResult
    messages = (SUBSCRIPTION_RESUMED, RESUME_PAYMENT_TROUBLE)
    # The caller's key: the form's one-time token, or the job's "subscription and resume date".
    dedupe = ()
    supersedes = False

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: ResumeParams
    ) -> ResumeResult:
        sub = mirrored.subscription_of(customer=customer, stripe_id=params.subscription)
        common = {
            "subscription": sub.stripe_id,
            "plan": mirrored.plan_name(sub.price),
            "currency": sub.currency,
            "early": params.early,
        }
        live = gateway.subscription_retrieve(subscription_id=sub.stripe_id)
        try:
            # Called even when Stripe says it is not paused: if it was this change that resumed it
            # (a crash after Stripe answered), the idempotency key replays Stripe's answer.
            resumed = gateway.subscription_resume(
                subscription_id=sub.stripe_id, idempotency_key=change.idempotency_key("resume")
            )
        except InvalidRequest:
            if live.status == Subscription.Status.PAUSED:
                raise
            # Resumed already, by another change (the customer's early resume, or the job's).
            mirrored.refreshed(customer=customer, subscription_id=sub.stripe_id)
            return ResumeResult(**common, outcome="already_resumed")
        mirrored.refreshed(customer=customer, subscription_id=sub.stripe_id)
        invoice = gateway.invoice_retrieve(invoice_id=resumed.latest_invoice_id)
        sync.invoice_from_stripe(customer=customer, data=invoice.raw, state_at=timezone.now())
        outcome: Literal["paid", "declined", "action_required"] = "paid"
        decline_code = ""
        if invoice.status == "open":
            outcome, decline_code = gateway.invoice_payment_trouble(invoice_id=invoice.id)
        return ResumeResult(
            **common,
            invoice=invoice.id,
            charged=invoice.amount_paid if outcome == "paid" else invoice.amount_remaining,
            period_end=_ts(resumed.current_period_end) if resumed.current_period_end else None,
            outcome=outcome,
            decline_code=decline_code,
        )

    def confirmation(
        self, *, change: BillingChange, params: ResumeParams, result: ResumeResult
    ) -> Confirmation | None:
        if result.outcome == "already_resumed":
            return None  # the change that resumed it confirmed it
        if result.outcome == "paid":
            return _resumed(result)
        return Confirmation(
            RESUME_PAYMENT_TROUBLE,
            ResumePaymentFacts(
                plan=result.plan,
                amount=result.charged,
                currency=result.currency,
                decline_code=result.decline_code,
                needs_approval=result.outcome == "action_required",
                change_id=str(change.pk),
            ),
        )

    def awaiting_approval(self, *, result: ResumeResult) -> str:
        return result.invoice if result.outcome == "action_required" else ""

    def approved(
        self,
        *,
        change: BillingChange,
        customer: BillingCustomer,
        result: ResumeResult,
        invoice: gateway.Invoice,
    ) -> tuple[ResumeResult, Confirmation | None]:
        # Paid, Stripe resumes it: the mirror learns it now, not when its webhook arrives.
        mirrored.refreshed(customer=customer, subscription_id=result.subscription)
        paid = result.model_copy(update={"outcome": "paid", "charged": invoice.amount_paid})
        return paid, _resumed(paid)


def _resumed(result: ResumeResult) -> Confirmation:
    return Confirmation(
        SUBSCRIPTION_RESUMED,
        ResumedFacts(
            plan=result.plan,
            charged=result.charged,
            currency=result.currency,
            next_at=result.period_end,
            early=result.early,
        ),
    )


PAUSE = changes.KINDS[SubscriptionPause.name]
RESUME = changes.KINDS[SubscriptionResume.name]


# --------------------------------------------------------------------------- what the portal calls


def subscription_pause(
    *,
    customer: BillingCustomer,
    subscription: Subscription,
    months: int,
    requested_by: changes.Actor,
    key: str = "",
) -> BillingChange:
    """Pause for `months` from now, if the rules allow; the resume date is fixed here, as shown."""
    earlier = changes.submitted(customer=customer, kind=PAUSE, key=key)
    if earlier is not None:
        return earlier
    now = timezone.now()
    refusal = pauses.pause_refusal(
        policy=policy.current().pause,
        situation=selectors.pause_situation(customer=customer, subscription=subscription),
        months=months,
        now=now,
    )
    if refusal:
        raise Refused(refusal)
    shown = pause_preview(subscription=subscription, now=now)
    params = PauseParams(
        subscription=subscription.stripe_id,
        months=months,
        resumes_at=int(pauses.resumes_at(start=now, months=months).timestamp()),
        drops_scheduled=shown.drops_scheduled,
    )
    return changes.request(customer=customer, kind=PAUSE, params=params, requested_by=requested_by, key=key)


def subscription_resume(
    *, customer: BillingCustomer, subscription: Subscription, requested_by: changes.Actor, key: str = ""
) -> BillingChange:
    """The customer resumes now, before the date."""
    earlier = changes.submitted(customer=customer, kind=RESUME, key=key)
    if earlier is not None:
        return earlier
    refusal = pauses.resume_refusal(
        situation=selectors.pause_situation(customer=customer, subscription=subscription)
    )
    if refusal:
        raise Refused(refusal)
    resumes_at = subscription.pause_resumes_at
    params = ResumeParams(
        subscription=subscription.stripe_id,
        resumes_at=int(resumes_at.timestamp()) if resumes_at else 0,
        early=True,
    )
    return changes.request(customer=customer, kind=RESUME, params=params, requested_by=requested_by, key=key)


# --------------------------------------------------------------------------- the beat job


def _job_key(subscription: Subscription) -> str:
    assert subscription.pause_resumes_at is not None
    return f"pause-ends:{subscription.stripe_id}:{int(subscription.pause_resumes_at.timestamp())}"


def resume_due(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Resume every pause whose date has come (one change per pause, however often this runs), and
    remind those ending within the policy's days (once per pause).  Returns how many it resumed."""
    now = now or timezone.now()
    rules = policy.current().pause
    resumed = 0
    paused = (
        Subscription.objects.select_related("customer", "price__tier")
        .filter(status=Subscription.Status.PAUSED, pause_resumes_at__isnull=False)
        .order_by("pause_resumes_at")
    )
    horizon = now + dt.timedelta(days=rules.reminder_days_before)
    for sub in paused.filter(pause_resumes_at__lte=horizon)[:limit]:
        assert sub.pause_resumes_at is not None
        if sub.pause_resumes_at <= now:
            _resume_on_the_date(sub)
            resumed += 1
        elif pauses.reminder_due(policy=rules, resumes_at=sub.pause_resumes_at, now=now):
            _remind(sub)
    return resumed


def _resume_on_the_date(sub: Subscription) -> None:
    assert sub.pause_resumes_at is not None
    params = ResumeParams(
        subscription=sub.stripe_id, resumes_at=int(sub.pause_resumes_at.timestamp()), early=False
    )
    # A payment still failing keeps it paused (Stripe retries it); the change found again is a no-op.
    changes.request(customer=sub.customer, kind=RESUME, params=params, requested_by=None, key=_job_key(sub))


def _named_in(language: str, price: Price | None) -> str:
    with translation.override(language):
        return mirrored.plan_name(price)


def _remind(sub: Subscription) -> None:
    assert sub.pause_resumes_at is not None
    pause = selectors.latest_pause(customer=sub.customer)
    shown = resume_preview(subscription=sub, pause=pause, now=sub.pause_resumes_at)
    outbox.enqueue(
        customer=sub.customer,
        message=PAUSE_ENDING_SOON,
        about=f"subscription:{sub.stripe_id}",
        step=f"pause-ends:{int(sub.pause_resumes_at.timestamp())}",
        facts=PauseEndingFacts(
            # The job runs in no customer's language: the plan is named in this one's.
            plan=_named_in(sub.customer.language, sub.price),
            resumes_at=sub.pause_resumes_at,
            amount=shown.charge,
            currency=sub.currency,
        ),
    )
