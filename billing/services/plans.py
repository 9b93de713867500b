"""Plan changes: upgrade, downgrade, another interval, now or at the renewal, and dropping a change
scheduled for the renewal.  The rules are billing/plans.py; this module previews and applies.

The preview is the contract.  A preview asks Stripe what exactly the change would invoice, with
the `proration_date` it fixes; the change the customer confirms carries that same date and what
the preview was made from (the price and the period), so Stripe charges what was shown, to the
minor unit, or the change is refused as stale (a renewal, another tab) and a fresh preview shown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Literal

from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from pydantic import StringConstraints

from billing import changes, gateway, messages, outbox, plans, selectors, sync
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.errors import InvalidRequest, Refused, StripeUnavailable
from billing.messages import Facts
from billing.models import BillingChange, BillingCustomer, Price, Subscription
from billing.plans import When
from billing.policy import Category, Channel
from billing.services import mirrored

SubscriptionId = Annotated[str, StringConstraints(pattern=r"^sub_[A-Za-z0-9_]{1,200}$")]
LookupKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,200}$")]

BOTH = (Channel.EMAIL, Channel.IN_APP)
# How long a preview may be confirmed: its proration date is the moment it was made, and Stripe
# prorates to the second, so an older one would charge a little less than a new one would.
PREVIEW_SECONDS = 10 * 60
# How long one is kept for the next click: half of that, so one shown from the cache still has
# at least five minutes to be confirmed.
PREVIEW_CACHE_SECONDS = PREVIEW_SECONDS // 2


# --------------------------------------------------------------------------- previews


@dataclasses.dataclass(frozen=True)
class Preview:
    """What a change would charge now, what comes next and when, as Stripe computed it."""

    subscription: str
    target: str  # the target price's lookup key
    when: When
    currency: str
    # Charged at once (0 for a change at the renewal), with the credit for unused time apart.
    charge_now: int
    credit: int
    # The next regular payment after the change, and when the change takes effect.
    next_amount: int
    next_at: dt.datetime
    effective_at: dt.datetime
    # What the preview was made from; the change is refused if either has moved since.
    proration_date: int
    from_price: str
    period_end: int
    # Worked out from the catalog because Stripe could not answer: only for a change at the
    # renewal, which charges nothing now and then the price the catalog holds.
    from_catalog: bool = False


def _ts(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


def _cache_key(*, subscription: Subscription, target: Price, when: When) -> str:
    # The mirror's state moment is in the key: any news of the subscription makes a new preview.
    stamp = int(subscription.stripe_state_at.timestamp() * 1000)
    return f"billing:plan-preview:{subscription.stripe_id}:{stamp}:{target.lookup_key}:{when}"


def _allowed(*, customer: BillingCustomer, subscription: Subscription, target: Price, when: When) -> Price:
    """The subscription's current price, if the rules allow moving from it to `target` `when`;
    Refused (in the customer's words) if not."""
    current = subscription.price
    if current is None:
        raise Refused(gettext("Your subscription's plan is not in our catalog. Please contact us."))
    refusal = plans.refusal(
        situation=selectors.situation_of(customer=customer, subscription=subscription),
        current=selectors.plan_of(current),
        target=selectors.plan_of(target),
        when=when,
    )
    if refusal:
        raise Refused(refusal)
    return current


def preview(*, customer: BillingCustomer, subscription: Subscription, target: Price, when: When) -> Preview:
    """The preview of one change, from Stripe within the customer's budget, kept briefly (the
    Plan page asks again as the customer clicks between targets).  Raises Refused when the rules
    say no, StripeUnavailable when Stripe can't answer."""
    current = _allowed(customer=customer, subscription=subscription, target=target, when=when)
    key = _cache_key(subscription=subscription, target=target, when=when)
    found: Preview | None = cache.get(key)
    if found is not None:
        return found
    try:
        made = _ask_stripe(
            customer=customer, subscription=subscription, current=current, target=target, when=when
        )
    except StripeUnavailable:
        if when != When.RENEWAL or subscription.current_period_end is None:
            raise
        # Nothing is charged now, and the renewal charges the target's price: the change can be
        # confirmed and applied once Stripe is back.  Not kept: Stripe's own answer comes next time.
        return _at_renewal(
            subscription=subscription,
            current=current,
            target=target,
            currency=target.currency,
            next_amount=target.unit_amount,
            end=int(subscription.current_period_end.timestamp()),
            from_catalog=True,
        )
    cache.set(key, made, timeout=PREVIEW_CACHE_SECONDS)
    return made


def _ask_stripe(
    *, customer: BillingCustomer, subscription: Subscription, current: Price, target: Price, when: When
) -> Preview:
    assert customer.stripe_customer_id and current.stripe_price_id and target.stripe_price_id
    assert subscription.current_period_start and subscription.current_period_end
    now = int(timezone.now().timestamp())
    start = int(subscription.current_period_start.timestamp())
    end = int(subscription.current_period_end.timestamp())
    with gateway.interactive():
        live = gateway.subscription_retrieve(subscription_id=subscription.stripe_id)
        if when == When.NOW:
            found = gateway.invoice_preview_price_change(
                customer_id=customer.stripe_customer_id,
                subscription_id=subscription.stripe_id,
                item_id=live.item_id,
                price_id=target.stripe_price_id,
                proration_date=now,
            )
        else:
            found = gateway.invoice_preview_at_renewal(
                customer_id=customer.stripe_customer_id,
                schedule_id=live.schedule_id,
                current_price_id=current.stripe_price_id,
                start=start,
                end=end,
                next_price_id=target.stripe_price_id,
            )
    if when == When.NOW:
        whole = [
            line for line in found.lines if not line.proration and line.price_id == target.stripe_price_id
        ]
        # A new interval starts a new period today; the same interval keeps the period's end.
        next_at = max((line.period_end for line in whole), default=end)
        return Preview(
            subscription=subscription.stripe_id,
            target=target.lookup_key,
            when=when,
            currency=found.currency,
            charge_now=found.amount_due,
            credit=-sum(line.amount for line in found.lines if line.amount < 0),
            next_amount=target.unit_amount,
            next_at=_ts(next_at if whole else end),
            effective_at=_ts(now),
            proration_date=now,
            from_price=current.lookup_key,
            period_end=end,
        )
    return _at_renewal(
        subscription=subscription,
        current=current,
        target=target,
        currency=found.currency,
        next_amount=found.amount_due,
        end=end,
        from_catalog=False,
    )


def _at_renewal(
    *,
    subscription: Subscription,
    current: Price,
    target: Price,
    currency: str,
    next_amount: int,
    end: int,
    from_catalog: bool,
) -> Preview:
    """A change at the renewal: nothing now, then `next_amount` from the period's end."""
    return Preview(
        subscription=subscription.stripe_id,
        target=target.lookup_key,
        when=When.RENEWAL,
        currency=currency,
        charge_now=0,
        credit=0,
        next_amount=next_amount,
        next_at=_ts(end),
        effective_at=_ts(end),
        proration_date=end,
        from_price=current.lookup_key,
        period_end=end,
        from_catalog=from_catalog,
    )


# --------------------------------------------------------------------------- parameters and results


class PlanChangeParams(ChangeParams):
    subscription: SubscriptionId
    price: LookupKey
    when: Literal["now", "renewal"]
    # From the preview the customer confirmed (see the module's docstring).
    proration_date: int
    from_price: LookupKey
    period_end: int
    shown_charge: int


class PlanScheduleCancelParams(ChangeParams):
    subscription: SubscriptionId


class PlanChangeResult(ChangeResult):
    subscription: str
    from_plan: str
    to_plan: str
    when: Literal["now", "renewal"]
    effective_at: dt.datetime
    currency: str
    # The invoice a change now made, and how paying it went.
    invoice: str = ""
    charged: int = 0
    outcome: Literal["paid", "declined", "action_required", "scheduled", "nothing_due"]
    decline_code: str = ""
    replaced_scheduled: str = ""


class ScheduleCancelResult(ChangeResult):
    subscription: str
    dropped_plan: str
    dropped_at: dt.datetime | None


# --------------------------------------------------------------------------- messages


class PlanChangedFacts(Facts):
    from_plan: str
    to_plan: str
    charged: int
    currency: str
    next_amount: int
    next_at: dt.datetime


class PlanScheduledFacts(Facts):
    from_plan: str
    to_plan: str
    effective_at: dt.datetime
    next_amount: int
    currency: str


class PlanPaymentFacts(Facts):
    to_plan: str
    amount: int
    currency: str
    decline_code: str
    change_id: str


class ScheduleCanceledFacts(Facts):
    dropped_plan: str
    kept_plan: str


PLAN_CHANGED = messages.declare(
    "plan_changed", category=Category.CONFIRMATION, channels=BOTH, facts=PlanChangedFacts
)
PLAN_SCHEDULED = messages.declare(
    "plan_scheduled", category=Category.CONFIRMATION, channels=BOTH, facts=PlanScheduledFacts
)
PLAN_PAYMENT_DECLINED = messages.declare(
    "plan_payment_declined",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=PlanPaymentFacts,
    action="portal:card_add",
    action_label=_("Pay with another card"),
    prompted=True,
)
PLAN_PAYMENT_NEEDS_APPROVAL = messages.declare(
    "plan_payment_needs_approval",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=PlanPaymentFacts,
    action="portal:change",
    action_args=("change_id",),
    action_label=_("Approve payment"),
    prompted=True,
)
PLAN_CHANGE_MADE = messages.declare(
    "plan_change_made", category=Category.CONFIRMATION, channels=BOTH, facts=PlanChangedFacts
)
PLAN_SCHEDULE_CANCELED = messages.declare(
    "plan_schedule_canceled", category=Category.CONFIRMATION, channels=BOTH, facts=ScheduleCanceledFacts
)


# --------------------------------------------------------------------------- applying


@change_kind
class PlanChange(ChangeKind[PlanChangeParams, PlanChangeResult]):
    name = "plan_change"
    label = _("Change your plan")
    template = "portal/changes/plan_change.html"
    Params = PlanChangeParams
    Result = PlanChangeResult
    messages = (PLAN_CHANGED, PLAN_SCHEDULED, PLAN_PAYMENT_DECLINED, PLAN_PAYMENT_NEEDS_APPROVAL)
    dedupe = ()
    # Only the newest choice of plan counts.
    supersedes = True

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: PlanChangeParams
    ) -> PlanChangeResult:
        sub = mirrored.subscription_of(customer=customer, stripe_id=params.subscription)
        target = mirrored.offered_price(lookup_key=params.price)
        source = mirrored.offered_price(lookup_key=params.from_price)
        live = gateway.subscription_retrieve(subscription_id=sub.stripe_id)
        assert target.stripe_price_id and source.stripe_price_id
        replay = live.price_id == target.stripe_price_id or live.pending_update
        if not replay and (
            live.price_id != source.stripe_price_id or live.current_period_end != params.period_end
        ):
            # The subscription moved since the preview (a renewal, another tab): what was shown is
            # no longer what Stripe would charge.
            raise InvalidRequest(
                "The subscription changed after the preview was shown.", code="preview_stale"
            )
        common = {
            "subscription": sub.stripe_id,
            "from_plan": mirrored.plan_name(source),
            "to_plan": mirrored.plan_name(target),
            "when": params.when,
            "currency": sub.currency,
        }
        replaced = ""
        if sub.scheduled_price_id is not None and sub.scheduled_price is not None:
            replaced = mirrored.plan_name(sub.scheduled_price)
        if params.when == When.RENEWAL.value:
            gateway.schedule_price_at_renewal(
                subscription_id=sub.stripe_id,
                schedule_id=live.schedule_id,
                current_price_id=source.stripe_price_id,
                start=live.current_period_start,
                end=live.current_period_end,
                next_price_id=target.stripe_price_id,
                idempotency_key=change.idempotency_key("schedule"),
            )
            mirrored.refreshed(customer=customer, subscription_id=sub.stripe_id)
            return PlanChangeResult(
                **common,
                effective_at=_ts(live.current_period_end),
                outcome="scheduled",
                replaced_scheduled=replaced,
            )
        if live.schedule_id:
            # A change now replaces one scheduled for the renewal.
            gateway.schedule_release(
                schedule_id=live.schedule_id, idempotency_key=change.idempotency_key("release")
            )
        updated = gateway.subscription_change_price(
            subscription_id=sub.stripe_id,
            item_id=live.item_id,
            price_id=target.stripe_price_id,
            proration_date=params.proration_date,
            idempotency_key=change.idempotency_key("price"),
        )
        mirrored.refreshed(customer=customer, subscription_id=sub.stripe_id)
        result = PlanChangeResult(
            **common, effective_at=timezone.now(), outcome="nothing_due", replaced_scheduled=replaced
        )
        if not updated.latest_invoice_id or updated.latest_invoice_id == sub.latest_invoice_id:
            return result
        invoice = gateway.invoice_retrieve(invoice_id=updated.latest_invoice_id)
        sync.invoice_from_stripe(customer=customer, data=invoice.raw, state_at=timezone.now())
        outcome: Literal["paid", "declined", "action_required", "nothing_due"] = "paid"
        decline_code = ""
        if invoice.status == "open":
            outcome, decline_code = gateway.invoice_payment_trouble(invoice_id=invoice.id)
        return result.model_copy(
            update={
                "invoice": invoice.id,
                "charged": invoice.amount_paid if outcome == "paid" else invoice.amount_remaining,
                "outcome": outcome,
                "decline_code": decline_code,
            }
        )

    def confirmation(
        self, *, change: BillingChange, params: PlanChangeParams, result: PlanChangeResult
    ) -> Confirmation:
        target = mirrored.offered_price(lookup_key=params.price)
        if result.outcome == "scheduled":
            return Confirmation(
                PLAN_SCHEDULED,
                PlanScheduledFacts(
                    from_plan=result.from_plan,
                    to_plan=result.to_plan,
                    effective_at=result.effective_at,
                    next_amount=target.unit_amount,
                    currency=result.currency,
                ),
            )
        if result.outcome in ("declined", "action_required"):
            message = PLAN_PAYMENT_DECLINED if result.outcome == "declined" else PLAN_PAYMENT_NEEDS_APPROVAL
            return Confirmation(
                message,
                PlanPaymentFacts(
                    to_plan=result.to_plan,
                    amount=result.charged,
                    currency=result.currency,
                    decline_code=result.decline_code,
                    change_id=str(change.pk),
                ),
            )
        return _changed(change.customer, result)

    def awaiting_approval(self, *, result: PlanChangeResult) -> str:
        return result.invoice if result.outcome == "action_required" else ""

    def approved(
        self,
        *,
        change: BillingChange,
        customer: BillingCustomer,
        result: PlanChangeResult,
        invoice: gateway.Invoice,
    ) -> tuple[PlanChangeResult, Confirmation | None]:
        # Paid, Stripe applies the pending update: the mirror learns the new plan now, not when
        # the subscription's own webhook arrives.
        mirrored.refreshed(customer=customer, subscription_id=result.subscription)
        paid = result.model_copy(
            update={"outcome": "paid", "charged": invoice.amount_paid, "effective_at": timezone.now()}
        )
        return paid, _changed(customer, paid)


def _changed(customer: BillingCustomer, result: PlanChangeResult) -> Confirmation:
    sub = mirrored.subscription_of(customer=customer, stripe_id=result.subscription)
    return Confirmation(
        PLAN_CHANGED,
        PlanChangedFacts(
            from_plan=result.from_plan,
            to_plan=result.to_plan,
            charged=result.charged,
            currency=result.currency,
            next_amount=sub.unit_amount * sub.quantity,
            next_at=sub.current_period_end or result.effective_at,
        ),
    )


@change_kind
class PlanScheduleCancel(ChangeKind[PlanScheduleCancelParams, ScheduleCancelResult]):
    name = "plan_schedule_cancel"
    label = _("Cancel a scheduled plan change")
    template = "portal/changes/plan_schedule_cancel.html"
    Params = PlanScheduleCancelParams
    Result = ScheduleCancelResult
    messages = (PLAN_SCHEDULE_CANCELED,)
    # The form's one-time key: a later cancel of a later scheduled change is a change of its own.
    dedupe = ()
    supersedes = False

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: PlanScheduleCancelParams
    ) -> ScheduleCancelResult:
        sub = mirrored.subscription_of(customer=customer, stripe_id=params.subscription)
        dropped = mirrored.plan_name(sub.scheduled_price)
        live = gateway.subscription_retrieve(subscription_id=sub.stripe_id)
        if live.schedule_id:
            gateway.schedule_release(
                schedule_id=live.schedule_id, idempotency_key=change.idempotency_key("release")
            )
        mirrored.refreshed(customer=customer, subscription_id=sub.stripe_id)
        return ScheduleCancelResult(
            subscription=sub.stripe_id, dropped_plan=dropped, dropped_at=sub.scheduled_at
        )

    def confirmation(
        self, *, change: BillingChange, params: PlanScheduleCancelParams, result: ScheduleCancelResult
    ) -> Confirmation:
        sub = mirrored.subscription_of(customer=change.customer, stripe_id=result.subscription)
        kept = mirrored.plan_name(sub.price)
        return Confirmation(
            PLAN_SCHEDULE_CANCELED, ScheduleCanceledFacts(dropped_plan=result.dropped_plan, kept_plan=kept)
        )


CHANGE = changes.KINDS[PlanChange.name]
SCHEDULE_CANCEL = changes.KINDS[PlanScheduleCancel.name]


# --------------------------------------------------------------------------- what the portal calls


def plan_change(
    *, customer: BillingCustomer, shown: Preview, requested_by: changes.Actor, key: str = ""
) -> BillingChange:
    """Confirm the change a preview showed.  The rules are checked again (things may have moved
    since the preview), then the change is recorded and tried at once."""
    earlier = changes.submitted(customer=customer, kind=CHANGE, key=key)
    if earlier is not None:
        # The same form posted again: the plan may have changed already, by this very change.
        return earlier
    if shown.when == When.NOW and timezone.now().timestamp() - shown.proration_date > PREVIEW_SECONDS:
        # Its proration moment has passed long enough ago to charge noticeably less than a new one.
        raise Refused(gettext("This preview is out of date. Please choose your plan again."))
    sub = mirrored.subscription_of(customer=customer, stripe_id=shown.subscription)
    target = mirrored.offered_price(lookup_key=shown.target)
    _allowed(customer=customer, subscription=sub, target=target, when=shown.when)
    params = PlanChangeParams(
        subscription=sub.stripe_id,
        price=target.lookup_key,
        when=shown.when.value,
        proration_date=shown.proration_date,
        from_price=shown.from_price,
        period_end=shown.period_end,
        shown_charge=shown.charge_now,
    )
    return changes.request(customer=customer, kind=CHANGE, params=params, requested_by=requested_by, key=key)


def plan_schedule_cancel(
    *, customer: BillingCustomer, subscription: Subscription, requested_by: changes.Actor, key: str = ""
) -> BillingChange:
    earlier = changes.submitted(customer=customer, kind=SCHEDULE_CANCEL, key=key)
    if earlier is not None:
        return earlier
    if subscription.scheduled_price_id is None:
        raise Refused(gettext("There is no plan change scheduled."))
    params = PlanScheduleCancelParams(subscription=subscription.stripe_id)
    return changes.request(
        customer=customer, kind=SCHEDULE_CANCEL, params=params, requested_by=requested_by, key=key
    )


# --------------------------------------------------------------------------- the renewal makes a scheduled change


@dataclasses.dataclass(frozen=True)
class Scheduled:
    """What the mirror knew of a subscription before Stripe's news of it was written."""

    price_id: int | None
    scheduled_price_id: int | None
    scheduled_at: dt.datetime | None


def scheduled_before(*, subscription_id: str) -> Scheduled | None:
    row = (
        Subscription.objects.filter(stripe_id=subscription_id)
        .values_list("price_id", "scheduled_price_id", "scheduled_at")
        .first()
    )
    return Scheduled(*row) if row else None


def confirm_scheduled_change(
    *, customer: BillingCustomer, subscription_id: str, before: Scheduled | None
) -> None:
    """If Stripe's news is that a change scheduled for the renewal has now been made, confirm it
    to the customer (once: the subscription and the moment it was scheduled for are its key)."""
    if before is None or before.scheduled_price_id is None or before.scheduled_at is None:
        return
    if before.price_id == before.scheduled_price_id:
        return
    sub = (
        Subscription.objects.select_related("price__tier")
        .filter(customer=customer, stripe_id=subscription_id)
        .first()
    )
    if sub is None or sub.price is None or sub.price_id != before.scheduled_price_id:
        return
    old = (
        Price.objects.select_related("tier").filter(pk=before.price_id).first()
        if before.price_id is not None
        else None
    )
    outbox.enqueue(
        customer=customer,
        message=PLAN_CHANGE_MADE,
        about=f"subscription:{sub.stripe_id}",
        step=f"scheduled-change:{int(before.scheduled_at.timestamp())}",
        facts=PlanChangedFacts(
            from_plan=mirrored.plan_name(old),
            to_plan=mirrored.plan_name(sub.price),
            charged=0,
            currency=sub.currency,
            next_amount=sub.unit_amount * sub.quantity,
            next_at=sub.current_period_end or timezone.now(),
        ),
    )
