"""Starting a subscription from the Plan page: a new sign-up, or a customer whose subscription
ended, picks a tier and an interval, pays the first invoice with a card (saved with the Payment
Element, 3-D Secure included, or the default card they have), and lands on the dashboard.

The rules are billing/plans.py (`start_refusal`).  The first payment is made off-session with the
card just saved: a bank that still wants its check leaves the subscription incomplete and the
change waiting for the customer's approval (billing.services.approvals); a decline leaves it
incomplete with its invoice open, which the next card the customer adds pays.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from pydantic import StringConstraints

from billing import changes, gateway, messages, plans, selectors, sync
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.errors import InvalidRequest, Refused
from billing.messages import Facts
from billing.models import BillingChange, BillingCustomer, PaymentMethod, Price
from billing.policy import Category, Channel
from billing.services import cards, mirrored
from billing.services.customers import ensure_stripe_customer
from billing.state import subscription_state

LookupKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,200}$")]
SetupIntentId = Annotated[str, StringConstraints(pattern=r"^seti_[A-Za-z0-9_]{1,200}$")]

BOTH = (Channel.EMAIL, Channel.IN_APP)


class SubscriptionStartParams(ChangeParams):
    price: LookupKey
    # The card the customer saved on the start page; none: their default card pays.
    setup_intent: SetupIntentId | None = None


class SubscriptionStartResult(ChangeResult):
    subscription: str
    plan: str
    currency: str
    brand: str
    last4: str
    invoice: str
    amount: int
    outcome: Literal["paid", "declined", "action_required"]
    decline_code: str = ""


class SubscriptionStartedFacts(Facts):
    plan: str
    charged: int
    currency: str
    next_amount: int
    next_at: dt.datetime | None


class FirstPaymentFacts(Facts):
    plan: str
    amount: int
    currency: str
    decline_code: str
    change_id: str


SUBSCRIPTION_STARTED = messages.declare(
    "subscription_started", category=Category.CONFIRMATION, channels=BOTH, facts=SubscriptionStartedFacts
)
FIRST_PAYMENT_DECLINED = messages.declare(
    "first_payment_declined",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=FirstPaymentFacts,
    action="portal:card_add",
    action_label=_("Pay with another card"),
    prompted=True,
)
FIRST_PAYMENT_NEEDS_APPROVAL = messages.declare(
    "first_payment_needs_approval",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=FirstPaymentFacts,
    action="portal:change",
    action_args=("change_id",),
    action_label=_("Approve payment"),
    prompted=True,
)


def _refusal(*, customer: BillingCustomer, price: Price) -> str | None:
    subscription = selectors.plan_subscription(customer=customer)
    phase = subscription_state(subscription=subscription, now=timezone.now()).phase if subscription else None
    currency = subscription.currency if subscription else customer.currency
    return plans.start_refusal(phase=phase, currency=currency, target=selectors.plan_of(price))


def startable(*, customer: BillingCustomer, lookup_key: str) -> Price:
    """The catalog price a subscription can be started to, now, by this customer; Refused if
    none (the Plan page, where they go back to, says each option's reason)."""
    not_here = Refused(gettext("This plan can't be started here. Please choose one below."))
    try:
        price = mirrored.offered_price(lookup_key=lookup_key)
    except InvalidRequest:
        raise not_here from None
    if _refusal(customer=customer, price=price):
        raise not_here
    return price


def _started(customer: BillingCustomer, result: SubscriptionStartResult) -> Confirmation:
    sub = customer.subscriptions.filter(stripe_id=result.subscription).first()
    return Confirmation(
        SUBSCRIPTION_STARTED,
        SubscriptionStartedFacts(
            plan=result.plan,
            charged=result.amount,
            currency=result.currency,
            next_amount=sub.unit_amount * sub.quantity if sub else result.amount,
            next_at=sub.current_period_end if sub else None,
        ),
    )


@change_kind
class SubscriptionStart(ChangeKind[SubscriptionStartParams, SubscriptionStartResult]):
    name = "subscription_start"
    label = _("Start your subscription")
    template = "portal/changes/subscription_start.html"
    Params = SubscriptionStartParams
    Result = SubscriptionStartResult
    messages = (SUBSCRIPTION_STARTED, FIRST_PAYMENT_DECLINED, FIRST_PAYMENT_NEEDS_APPROVAL)
    # The caller's key: the SetupIntent's id, or the start page's one-time token.
    dedupe = ()
    supersedes = False

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: SubscriptionStartParams
    ) -> SubscriptionStartResult:
        price = mirrored.offered_price(lookup_key=params.price)
        assert price.stripe_price_id
        # Again, as things are now: another tab may have started one meanwhile.
        refusal = _refusal(customer=customer, price=price)
        if refusal:
            raise InvalidRequest(refusal, code="start_refused")
        customer_id = ensure_stripe_customer(customer=customer)
        if params.setup_intent:
            card = cards.card_from_setup(customer=customer, setup_intent_id=params.setup_intent)
            cards.make_default(change=change, customer=customer, payment_method=card.id)
            card_id, brand, last4 = card.id, card.brand, card.last4
        else:
            saved = PaymentMethod.objects.filter(
                customer=customer, stripe_id=customer.default_payment_method_id or ""
            ).first()
            if saved is None:
                raise InvalidRequest("The customer has no default card.", code="card_gone")
            card_id, brand, last4 = saved.stripe_id, saved.brand, saved.last4
        sub = gateway.subscription_create(
            customer_id=customer_id,
            price_id=price.stripe_price_id,
            payment_method_id=card_id,
            idempotency_key=change.idempotency_key("create"),
        )
        sync.subscription_from_stripe(customer=customer, data=sub.raw, state_at=timezone.now())
        invoice = gateway.invoice_retrieve(invoice_id=sub.latest_invoice_id)
        sync.invoice_from_stripe(customer=customer, data=invoice.raw, state_at=timezone.now())
        outcome: Literal["paid", "declined", "action_required"] = "paid"
        decline_code = ""
        if invoice.status != "paid":
            outcome, decline_code = gateway.invoice_payment_trouble(invoice_id=invoice.id)
        return SubscriptionStartResult(
            subscription=sub.id,
            plan=mirrored.plan_name(price),
            currency=price.currency,
            brand=brand,
            last4=last4,
            invoice=invoice.id,
            amount=invoice.amount_paid if outcome == "paid" else invoice.amount_remaining,
            outcome=outcome,
            decline_code=decline_code,
        )

    def confirmation(
        self, *, change: BillingChange, params: SubscriptionStartParams, result: SubscriptionStartResult
    ) -> Confirmation:
        if result.outcome == "paid":
            return _started(change.customer, result)
        message = FIRST_PAYMENT_DECLINED if result.outcome == "declined" else FIRST_PAYMENT_NEEDS_APPROVAL
        return Confirmation(
            message,
            FirstPaymentFacts(
                plan=result.plan,
                amount=result.amount,
                currency=result.currency,
                decline_code=result.decline_code,
                change_id=str(change.pk),
            ),
        )

    def awaiting_approval(self, *, result: SubscriptionStartResult) -> str:
        return result.invoice if result.outcome == "action_required" else ""

    def approved(
        self,
        *,
        change: BillingChange,
        customer: BillingCustomer,
        result: SubscriptionStartResult,
        invoice: gateway.Invoice,
    ) -> tuple[SubscriptionStartResult, Confirmation | None]:
        # Paid, the subscription is active: the mirror learns it now, not when its webhook comes.
        mirrored.refreshed(customer=customer, subscription_id=result.subscription)
        paid = result.model_copy(update={"outcome": "paid", "amount": invoice.amount_paid})
        return paid, _started(customer, paid)


START = changes.KINDS[SubscriptionStart.name]


def start_key(*, setup_intent_id: str | None, key: str) -> str:
    """The start's dedupe key: the same card confirmation posted twice (the page's script and
    its button, a reload) is one start, whichever page posted it."""
    return f"setup:{setup_intent_id}" if setup_intent_id else key


def submitted_start(
    *, customer: BillingCustomer, setup_intent_id: str | None, key: str
) -> BillingChange | None:
    return changes.submitted(
        customer=customer, kind=START, key=start_key(setup_intent_id=setup_intent_id, key=key)
    )


def subscription_start(
    *,
    customer: BillingCustomer,
    lookup_key: str,
    setup_intent_id: str | None,
    requested_by: changes.Actor,
    key: str = "",
) -> BillingChange:
    """Start a subscription to the catalog's `lookup_key`, paid with the card just saved (or the
    default card)."""
    key = start_key(setup_intent_id=setup_intent_id, key=key)
    earlier = changes.submitted(customer=customer, kind=START, key=key)
    if earlier is not None:
        return earlier
    price = startable(customer=customer, lookup_key=lookup_key)
    if setup_intent_id is None and not customer.default_payment_method_id:
        raise Refused(gettext("Please add a card to pay with."))
    params = SubscriptionStartParams(price=price.lookup_key, setup_intent=setup_intent_id)
    return changes.request(customer=customer, kind=START, params=params, requested_by=requested_by, key=key)
