"""Cancelling at the end of the paid period, and keeping a subscription set to end.  The rules are
billing/cancellation.py; the survey's answer and the alternative offered are kept
(CancellationFeedback) whether the customer cancels or takes the alternative.

A cancel drops a change scheduled for the renewal (Stripe refuses to set a scheduled
subscription's cancel otherwise, and there is no renewal to change to), and does what the policy
says to an unpaid invoice: voided, or still owed but never retried.  Either way nobody is charged
after they believed they had cancelled.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Literal

from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from pydantic import StringConstraints

from billing import cancellation, changes, gateway, messages, policy, selectors, sync
from billing import pauses as pause_rules
from billing.cancellation import Offer, Reason, Unpaid
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.errors import BillingError, Refused
from billing.messages import Facts
from billing.models import BillingChange, BillingCustomer, CancellationFeedback, Invoice, Price, Subscription
from billing.plans import When
from billing.policy import Category, Channel
from billing.services import mirrored, pauses, plans
from billing.state import subscription_state

SubscriptionId = Annotated[str, StringConstraints(pattern=r"^sub_[A-Za-z0-9_]{1,200}$")]
Comment = Annotated[str, StringConstraints(max_length=1000)]

BOTH = (Channel.EMAIL, Channel.IN_APP)


# --------------------------------------------------------------------------- what the cancel page shows


@dataclasses.dataclass(frozen=True)
class UnpaidInvoice:
    invoice: Invoice
    outcome: Unpaid


@dataclasses.dataclass(frozen=True)
class CancelPage:
    subscription: Subscription
    ends_at: dt.datetime | None
    # What cancelling does to what is unpaid, and the change it drops.
    unpaid: list[UnpaidInvoice]
    drops_scheduled: Price | None


def cancel_page(*, customer: BillingCustomer) -> CancelPage | None:
    """What cancelling now would mean, from the mirror (no Stripe call); None if there is no
    subscription; Refused if the rules say no."""
    sub = selectors.plan_subscription(customer=customer)
    if sub is None:
        return None
    refusal = cancellation.cancel_refusal(
        phase=subscription_state(subscription=sub, now=timezone.now()).phase
    )
    if refusal:
        raise Refused(refusal)
    outcome = Unpaid(policy.current().cancel.unpaid_invoice)
    unpaid = [
        UnpaidInvoice(invoice=i, outcome=outcome)
        for i in selectors.open_invoices(customer=customer)
        if i.subscription_stripe_id == sub.stripe_id
    ]
    return CancelPage(
        subscription=sub, ends_at=sub.current_period_end, unpaid=unpaid, drops_scheduled=sub.scheduled_price
    )


def _cheaper_plan(*, subscription: Subscription) -> Price | None:
    """The plan offered to a customer who finds theirs too expensive, if the rules allow
    moving to it at the renewal."""
    current = subscription.price
    if current is None:
        return None
    prices = list(
        Price.objects.select_related("tier").filter(
            active=True, currency=subscription.currency, stripe_price_id__isnull=False
        )
    )
    by_plan = {selectors.plan_of(p): p for p in prices}
    chosen = cancellation.cheaper_plan(current=selectors.plan_of(current), offered=list(by_plan))
    return by_plan[chosen] if chosen is not None else None


@dataclasses.dataclass(frozen=True)
class Alternative:
    """The one alternative the survey's reason gets, with what the page shows of it; `offer` is
    NONE when the rules allow none or Stripe can't price it now."""

    offer: Offer
    # A cheaper plan: its price and Stripe's preview of its renewal.
    target: Price | None = None
    preview: plans.Preview | None = None
    # A pause: its lengths, dates and first payments.
    pause: pauses.PausePreview | None = None


def alternative(*, customer: BillingCustomer, subscription: Subscription, reason: Reason) -> Alternative:
    offer = cancellation.offer_for(reason=reason)
    if offer == Offer.CHEAPER_PLAN:
        target = _cheaper_plan(subscription=subscription)
        if target is not None:
            try:
                shown = plans.preview(
                    customer=customer, subscription=subscription, target=target, when=When.RENEWAL
                )
            except BillingError:  # refused by the plan rules, or Stripe can't say what it costs
                return Alternative(offer=Offer.NONE)
            return Alternative(offer=offer, target=target, preview=shown)
    elif offer == Offer.PAUSE:
        paused = _pause(customer=customer, subscription=subscription)
        if paused is not None:
            return Alternative(offer=offer, pause=paused)
    return Alternative(offer=Offer.NONE)


# --------------------------------------------------------------------------- parameters and results


class CancelParams(ChangeParams):
    subscription: SubscriptionId
    reason: Reason
    comment: Comment = ""


class KeepParams(ChangeParams):
    subscription: SubscriptionId


class UnpaidResult(ChangeResult):
    invoice: str
    amount: int
    currency: str
    outcome: Literal["void", "keep_owed"]


class CancelResult(ChangeResult):
    subscription: str
    plan: str
    ends_at: dt.datetime | None
    dropped_scheduled: str = ""
    unpaid: tuple[UnpaidResult, ...] = ()


class KeepResult(ChangeResult):
    subscription: str
    plan: str
    next_amount: int
    currency: str
    next_at: dt.datetime | None


# --------------------------------------------------------------------------- messages


class CanceledFacts(Facts):
    plan: str
    ends_at: dt.datetime | None
    voided: int
    kept_owed: int
    currency: str


class KeptFacts(Facts):
    plan: str
    next_amount: int
    currency: str
    next_at: dt.datetime | None


SUBSCRIPTION_CANCELED = messages.declare(
    "subscription_canceled", category=Category.CONFIRMATION, channels=BOTH, facts=CanceledFacts
)
SUBSCRIPTION_KEPT = messages.declare(
    "subscription_kept", category=Category.CONFIRMATION, channels=BOTH, facts=KeptFacts
)


# --------------------------------------------------------------------------- applying


def _settle_unpaid(
    change: BillingChange, customer: BillingCustomer, sub: Subscription
) -> tuple[UnpaidResult, ...]:
    """Stop every automatic charge of the subscription's unpaid invoices, as the policy says."""
    outcome = Unpaid(policy.current().cancel.unpaid_invoice)
    done = []
    for invoice in Invoice.objects.filter(
        customer=customer, subscription_stripe_id=sub.stripe_id, status=Invoice.Status.OPEN
    ).order_by("created"):
        key = change.idempotency_key(f"{outcome}-{invoice.stripe_id}")
        if outcome == Unpaid.VOID:
            answer = gateway.invoice_void(invoice_id=invoice.stripe_id, idempotency_key=key)
        else:
            answer = gateway.invoice_stop_collecting(invoice_id=invoice.stripe_id, idempotency_key=key)
        sync.invoice_from_stripe(customer=customer, data=answer.raw, state_at=timezone.now())
        done.append(
            UnpaidResult(
                invoice=invoice.stripe_id,
                amount=invoice.amount_remaining,
                currency=invoice.currency,
                outcome=outcome.value,
            )
        )
    return tuple(done)


@change_kind
class SubscriptionCancel(ChangeKind[CancelParams, CancelResult]):
    name = "subscription_cancel"
    label = _("Cancel your subscription")
    template = "portal/changes/subscription_cancel.html"
    Params = CancelParams
    Result = CancelResult
    messages = (SUBSCRIPTION_CANCELED,)
    dedupe = ()
    supersedes = False

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: CancelParams
    ) -> CancelResult:
        sub = mirrored.subscription_of(customer=customer, stripe_id=params.subscription)
        dropped = ""
        live = gateway.subscription_retrieve(subscription_id=sub.stripe_id)
        if live.schedule_id:
            # Stripe won't set the cancel of a subscription a schedule manages; and a subscription
            # that ends has no renewal for the scheduled change to happen at.
            gateway.schedule_release(
                schedule_id=live.schedule_id, idempotency_key=change.idempotency_key("release")
            )
            dropped = mirrored.plan_name(sub.scheduled_price)
        gateway.subscription_cancel_at_period_end(
            subscription_id=sub.stripe_id,
            feedback=cancellation.STRIPE_FEEDBACK[params.reason],
            comment=params.comment,
            idempotency_key=change.idempotency_key("cancel"),
        )
        unpaid = _settle_unpaid(change, customer, sub)
        mirrored.refreshed(customer=customer, subscription_id=sub.stripe_id)
        sub = mirrored.subscription_of(customer=customer, stripe_id=sub.stripe_id)
        ends_at = sub.cancel_at or sub.current_period_end
        return CancelResult(
            subscription=sub.stripe_id,
            plan=mirrored.plan_name(sub.price),
            ends_at=ends_at,
            dropped_scheduled=dropped,
            unpaid=unpaid,
        )

    def confirmation(
        self, *, change: BillingChange, params: CancelParams, result: CancelResult
    ) -> Confirmation:
        def total(outcome: str) -> int:
            return sum(u.amount for u in result.unpaid if u.outcome == outcome)

        sub = mirrored.subscription_of(customer=change.customer, stripe_id=result.subscription)
        return Confirmation(
            SUBSCRIPTION_CANCELED,
            CanceledFacts(
                plan=result.plan,
                ends_at=result.ends_at,
                voided=total("void"),
                kept_owed=total("keep_owed"),
                currency=sub.currency,
            ),
        )


@change_kind
class SubscriptionKeep(ChangeKind[KeepParams, KeepResult]):
    name = "subscription_keep"
    label = _("Keep your subscription")
    template = "portal/changes/subscription_keep.html"
    Params = KeepParams
    Result = KeepResult
    messages = (SUBSCRIPTION_KEPT,)
    dedupe = ()
    supersedes = False

    def apply(self, *, change: BillingChange, customer: BillingCustomer, params: KeepParams) -> KeepResult:
        sub = mirrored.subscription_of(customer=customer, stripe_id=params.subscription)
        gateway.subscription_keep(
            subscription_id=sub.stripe_id, idempotency_key=change.idempotency_key("keep")
        )
        mirrored.refreshed(customer=customer, subscription_id=sub.stripe_id)
        sub = mirrored.subscription_of(customer=customer, stripe_id=sub.stripe_id)
        state = subscription_state(subscription=sub, now=timezone.now())
        charge = state.next_charge
        return KeepResult(
            subscription=sub.stripe_id,
            plan=mirrored.plan_name(sub.price),
            next_amount=charge.amount if charge else sub.unit_amount * sub.quantity,
            currency=sub.currency,
            next_at=charge.at if charge else sub.current_period_end,
        )

    def confirmation(self, *, change: BillingChange, params: KeepParams, result: KeepResult) -> Confirmation:
        return Confirmation(
            SUBSCRIPTION_KEPT,
            KeptFacts(
                plan=result.plan,
                next_amount=result.next_amount,
                currency=result.currency,
                next_at=result.next_at,
            ),
        )


CANCEL = changes.KINDS[SubscriptionCancel.name]
KEEP = changes.KINDS[SubscriptionKeep.name]


# --------------------------------------------------------------------------- what the portal calls


def record_feedback(
    *,
    customer: BillingCustomer,
    subscription: Subscription,
    reason: Reason,
    comment: str,
    offer: Offer,
    offer_taken: bool,
    change: BillingChange | None,
) -> None:
    CancellationFeedback.objects.create(
        customer=customer,
        subscription=subscription.stripe_id,
        reason=reason.value,
        comment=comment,
        offer=offer.value,
        offer_taken=offer_taken,
        change=change,
    )


def cancel(
    *,
    customer: BillingCustomer,
    reason: Reason,
    comment: str,
    offer: Offer,
    requested_by: changes.Actor,
    key: str = "",
) -> BillingChange:
    """Cancel at the end of the paid period, having seen `offer` and declined it."""
    earlier = changes.submitted(customer=customer, kind=CANCEL, key=key)
    if earlier is not None:
        return earlier
    page = cancel_page(customer=customer)
    if page is None:
        raise Refused(gettext("You have no active subscription to cancel."))
    params = CancelParams(subscription=page.subscription.stripe_id, reason=reason, comment=comment)
    change = changes.request(
        customer=customer, kind=CANCEL, params=params, requested_by=requested_by, key=key
    )
    record_feedback(
        customer=customer,
        subscription=page.subscription,
        reason=reason,
        comment=comment,
        offer=offer,
        offer_taken=False,
        change=change,
    )
    return change


def keep(*, customer: BillingCustomer, requested_by: changes.Actor, key: str = "") -> BillingChange:
    """Undo the cancel: the subscription renews as before."""
    earlier = changes.submitted(customer=customer, kind=KEEP, key=key)
    if earlier is not None:
        return earlier
    sub = selectors.plan_subscription(customer=customer)
    if sub is None:
        raise Refused(gettext("You have no active subscription to cancel."))
    refusal = cancellation.keep_refusal(phase=subscription_state(subscription=sub, now=timezone.now()).phase)
    if refusal:
        raise Refused(refusal)
    params = KeepParams(subscription=sub.stripe_id)
    return changes.request(customer=customer, kind=KEEP, params=params, requested_by=requested_by, key=key)


def take_cheaper_plan(
    *,
    customer: BillingCustomer,
    shown: plans.Preview,
    reason: Reason,
    comment: str,
    requested_by: changes.Actor,
    key: str = "",
) -> BillingChange:
    """The cheaper plan offered instead of cancelling: the change its preview showed, made as on
    the Plan page, with the survey's answer kept and the offer marked as taken."""
    earlier = changes.submitted(customer=customer, kind=plans.CHANGE, key=key)
    if earlier is not None:
        return earlier
    change = plans.plan_change(customer=customer, shown=shown, requested_by=requested_by, key=key)
    record_feedback(
        customer=customer,
        subscription=mirrored.subscription_of(customer=customer, stripe_id=shown.subscription),
        reason=reason,
        comment=comment,
        offer=Offer.CHEAPER_PLAN,
        offer_taken=True,
        change=change,
    )
    return change


def _pause(*, customer: BillingCustomer, subscription: Subscription) -> pauses.PausePreview | None:
    """The pause offered to a customer not using it for now, if the pause rules allow one."""
    now = timezone.now()
    pause_policy = policy.current().pause
    refusal = pause_rules.pause_refusal(
        policy=pause_policy,
        situation=selectors.pause_situation(customer=customer, subscription=subscription),
        months=pause_policy.lengths_months[0],
        now=now,
    )
    return None if refusal else pauses.pause_preview(subscription=subscription, now=now)


def take_pause(
    *,
    customer: BillingCustomer,
    months: int,
    reason: Reason,
    comment: str,
    requested_by: changes.Actor,
    key: str = "",
) -> BillingChange:
    """A pause instead of cancelling, made as on the pause page, with the survey's answer kept and
    the offer marked as taken."""
    earlier = changes.submitted(customer=customer, kind=pauses.PAUSE, key=key)
    if earlier is not None:
        return earlier
    sub = selectors.plan_subscription(customer=customer)
    if sub is None:
        raise Refused(gettext("You have no active subscription to cancel."))
    change = pauses.subscription_pause(
        customer=customer, subscription=sub, months=months, requested_by=requested_by, key=key
    )
    record_feedback(
        customer=customer,
        subscription=sub,
        reason=reason,
        comment=comment,
        offer=Offer.PAUSE,
        offer_taken=True,
        change=change,
    )
    return change
