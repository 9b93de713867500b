"""Reads for pages and services: from the local mirror only, never from Stripe, in a fixed number
of queries.  Nothing here writes.

Every lookup is scoped to the customer it is for: another customer's card, invoice or change is
simply not found (None), and the views answer 404.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from django.db.models import Count, F, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing import catalog, changes, declines, invoice_rules, policy, reads
from billing import pauses as policy_pauses
from billing import plans as policy_plans
from billing.changes import ChangeKind, ChangeResult
from billing.errors import OUTAGE_CODES
from billing.models import (
    BillingChange,
    BillingCustomer,
    Delivery,
    Interval,
    Invoice,
    PaymentMethod,
    Price,
    RecoveryCase,
    Subscription,
    Tier,
)
from billing.reads import CustomerRead
from billing.state import LIVE_STATUSES, Phase, SubscriptionState, subscription_state

# How many of the latest messages the dashboard lists.
RECENT_MESSAGES = 5
# Changes still in the customer's hands or Stripe's.
OPEN_CHANGE_STATUSES = (BillingChange.Status.PENDING, BillingChange.Status.ACTION_REQUIRED)


def customer_of_user(*, user_id: Any) -> BillingCustomer | None:
    """The login's billing customer, if it has one (staff logins, say, have none)."""
    if user_id is None:
        return None
    return BillingCustomer.objects.filter(user_id=user_id).first()


def card_for(*, customer: BillingCustomer, card_id: int) -> PaymentMethod | None:
    return PaymentMethod.objects.filter(customer=customer, pk=card_id).first()


def default_card(*, customer: BillingCustomer) -> PaymentMethod | None:
    if not customer.default_payment_method_id:
        return None
    return PaymentMethod.objects.filter(
        customer=customer, stripe_id=customer.default_payment_method_id
    ).first()


def change_for(*, customer: BillingCustomer, change_id: Any) -> BillingChange | None:
    return BillingChange.objects.filter(customer=customer, pk=change_id).first()


def pending_change(*, customer: BillingCustomer, kind: str) -> BillingChange | None:
    """The customer's newest change of a kind still waiting for Stripe, if any."""
    return (
        BillingChange.objects.filter(customer=customer, kind=kind, status=BillingChange.Status.PENDING)
        .order_by("-created_at")
        .first()
    )


# The reads every dashboard, cards page or add-card page makes, compiled to SQL once (billing/reads.py).
_OPEN_INVOICES = CustomerRead(
    Invoice,
    lambda customer_id: Invoice.objects.filter(customer_id=customer_id, status=Invoice.Status.OPEN).order_by(
        "created"
    ),
)
_CARDS = CustomerRead(
    PaymentMethod, lambda customer_id: PaymentMethod.objects.filter(customer_id=customer_id)
)
# The plan's name and interval come in the subscription's own row (see _with_plan).
_SUBSCRIPTIONS = CustomerRead(
    Subscription,
    lambda customer_id: (
        Subscription.objects.filter(customer_id=customer_id)
        .annotate(
            plan_tier_id=F("price__tier_id"),
            plan_tier_name=F("price__tier__name"),
            plan_interval=F("price__interval"),
            # What the dashboard says of a change scheduled for the renewal.
            scheduled_tier_id=F("scheduled_price__tier_id"),
            scheduled_tier_name=F("scheduled_price__tier__name"),
            scheduled_interval=F("scheduled_price__interval"),
            scheduled_unit_amount=F("scheduled_price__unit_amount"),
            # An upgrade waiting for its invoice to be paid.
            pending_tier_id=F("pending_price__tier_id"),
            pending_tier_name=F("pending_price__tier__name"),
        )
        .order_by("-created")[:10]
    ),
)
_OPEN_CHANGES = CustomerRead(
    BillingChange,
    lambda customer_id: BillingChange.objects.filter(
        customer_id=customer_id, status__in=OPEN_CHANGE_STATUSES
    ).order_by("-created_at")[:10],
)
_RECENT_MESSAGES = CustomerRead(
    Delivery,
    lambda customer_id: Delivery.objects.filter(
        customer_id=customer_id, channel=Delivery.Channel.IN_APP
    ).order_by("-created_at")[:RECENT_MESSAGES],
)


def open_invoices(*, customer: BillingCustomer) -> list[Invoice]:
    """Invoices waiting for money, oldest first (the order they are retried in)."""
    return _OPEN_INVOICES(customer_id=customer.pk)


def live_subscriptions(*, customer: BillingCustomer) -> list[Subscription]:
    return list(customer.subscriptions.filter(status__in=LIVE_STATUSES))


def other_cards(*, customer: BillingCustomer, card: PaymentMethod) -> int:
    return customer.payment_methods.exclude(pk=card.pk).count()


def current_subscription(*, customer: BillingCustomer) -> Subscription | None:
    """The subscription the dashboard is about: a live one first, else the most recent.  Its
    `price.tier.name` and `price.get_interval_display()` cost no further query."""
    return _current(_SUBSCRIPTIONS(customer_id=customer.pk))


def _current(subs: list[Subscription]) -> Subscription | None:
    current = next((sub for sub in subs if sub.status in LIVE_STATUSES), subs[0] if subs else None)
    if current is not None:
        _with_plan(current)
    return current


def _with_plan(sub: Subscription) -> None:
    """Make `sub.price` and its `tier` from the columns the subscription's read joined in.

    Read with the subscription rather than kept per process: a price's amount never changes (a
    new amount is a new row), but sync_catalog renames tiers in place, and pages show what the
    database says.  The instances hold what pages show of them, the tier's name and the price's
    interval; any other field is deferred, and reading it costs a query, as after .only().
    """
    # The annotations, which CustomerRead set as attributes, are taken off again.
    plan = vars(sub)
    tier_id, tier_name, interval = (
        plan.pop("plan_tier_id"),
        plan.pop("plan_tier_name"),
        plan.pop("plan_interval"),
    )
    scheduled = [
        plan.pop(f"scheduled_{name}") for name in ("tier_id", "tier_name", "interval", "unit_amount")
    ]
    pending_tier = [plan.pop("pending_tier_id"), plan.pop("pending_tier_name")]
    if sub.price_id is not None:
        price = Price.from_db(sub._state.db, ["id", "tier_id", "interval"], [sub.price_id, tier_id, interval])
        price.tier = Tier.from_db(sub._state.db, ["id", "name"], [tier_id, tier_name])
        sub.price = price
    if sub.scheduled_price_id is not None:
        # What the dashboard says of a change scheduled for the renewal, and what that renewal charges.
        s_tier_id, s_tier_name, s_interval, s_amount = scheduled
        after = Price.from_db(
            sub._state.db,
            ["id", "tier_id", "interval", "unit_amount"],
            [sub.scheduled_price_id, s_tier_id, s_interval, s_amount],
        )
        after.tier = Tier.from_db(sub._state.db, ["id", "name"], [s_tier_id, s_tier_name])
        sub.scheduled_price = after
    if sub.pending_price_id is not None:
        pending = Price.from_db(sub._state.db, ["id"], [sub.pending_price_id])
        pending.tier = Tier.from_db(sub._state.db, ["id", "name"], pending_tier)
        sub.pending_price = pending


@dataclasses.dataclass(frozen=True)
class ChangeView:
    """A change as a page shows it: its kind's title and result template, its typed result."""

    change: BillingChange
    kind: ChangeKind[Any, Any]
    result: ChangeResult | None

    @property
    def waiting_for_stripe(self) -> bool:
        return self.change.status == BillingChange.Status.PENDING and self.change.error_code in OUTAGE_CODES

    @property
    def awaiting_approval(self) -> bool:
        """A payment the change made waits for the customer's bank (the page loads Stripe.js)."""
        return self.result is not None and bool(self.kind.awaiting_approval(result=self.result))


def change_view(*, change: BillingChange) -> ChangeView:
    return ChangeView(change=change, kind=changes.kind_of(change), result=changes.result_of(change))


@dataclasses.dataclass(frozen=True)
class Banner:
    """Something that needs the customer's action, and the one button that fixes it."""

    kind: str
    invoice: Invoice | None = None
    card: PaymentMethod | None = None


@dataclasses.dataclass(frozen=True)
class _Activity:
    open_invoices: list[Invoice]
    open_changes: list[ChangeView]
    messages: list[Delivery]


class Dashboard:
    """The customer's subscription, cards, open invoices, open changes and latest messages, as the
    dashboard and the cards page show them.

    Each part is read from the mirror the first time a page uses it, in one query whatever the
    amount of data, so a page pays only for what it shows: the cards page reads the subscription
    and the cards, not the invoices, changes and messages the dashboard needs as well.  Those
    three are read together, when a page first uses one of them.  The dashboard, which shows
    everything, calls `read_all()` to have all five in one round trip to the database.
    """

    def __init__(self, *, customer: BillingCustomer) -> None:
        self.customer = customer

    def read_all(self) -> Dashboard:
        """Read every part now, in one round trip (the dashboard shows them all)."""
        subs, cards, *activity = reads.together(
            self.customer.pk, _SUBSCRIPTIONS, _CARDS, _OPEN_INVOICES, _OPEN_CHANGES, _RECENT_MESSAGES
        )
        self.__dict__.update(subscription=_current(subs), cards=cards, _activity=self._activity_of(*activity))
        return self

    @functools.cached_property
    def subscription(self) -> Subscription | None:
        return current_subscription(customer=self.customer)

    @functools.cached_property
    def state(self) -> SubscriptionState | None:
        if self.subscription is None:
            return None
        return subscription_state(subscription=self.subscription, now=timezone.now())

    @functools.cached_property
    def cards(self) -> list[PaymentMethod]:
        return _CARDS(customer_id=self.customer.pk)

    @functools.cached_property
    def _default_card_id(self) -> str:
        if self.subscription is not None and self.subscription.default_payment_method_id:
            return self.subscription.default_payment_method_id
        return self.customer.default_payment_method_id

    @functools.cached_property
    def default_card(self) -> PaymentMethod | None:
        return self._card(self._default_card_id)

    @functools.cached_property
    def backup_card(self) -> PaymentMethod | None:
        backup_id = self.customer.backup_payment_method_id
        # A card never backs itself up, whatever a stale mirror says.
        return None if backup_id == self._default_card_id else self._card(backup_id)

    def _card(self, stripe_id: str) -> PaymentMethod | None:
        return next((card for card in self.cards if card.stripe_id == stripe_id), None)

    @functools.cached_property
    def _activity(self) -> _Activity:
        return self._activity_of(
            *reads.together(self.customer.pk, _OPEN_INVOICES, _OPEN_CHANGES, _RECENT_MESSAGES)
        )

    def _activity_of(
        self, invoices: list[Invoice], changes: list[BillingChange], messages: list[Delivery]
    ) -> _Activity:
        return _Activity(
            open_invoices=invoices,
            open_changes=[change_view(change=change) for change in changes],
            messages=_as_read_by(self.customer, messages),
        )

    @property
    def open_invoices(self) -> list[Invoice]:
        return self._activity.open_invoices

    @property
    def open_changes(self) -> list[ChangeView]:
        return self._activity.open_changes

    @property
    def messages(self) -> list[Delivery]:
        return self._activity.messages

    @functools.cached_property
    def banners(self) -> list[Banner]:
        return _banners(self)


def dashboard(*, customer: BillingCustomer) -> Dashboard:
    return Dashboard(customer=customer)


def _as_read_by(customer: BillingCustomer, deliveries: list[Delivery]) -> list[Delivery]:
    for delivery in deliveries:
        delivery.customer = customer  # rendering the line needs no query for it
    return deliveries


def _banners(view: Dashboard) -> list[Banner]:
    banners = [Banner(kind="invoice_open", invoice=invoice) for invoice in view.open_invoices]
    state, card, backup = view.state, view.default_card, view.backup_card
    live = state is not None and state.live
    if live and card is None:
        banners.append(Banner(kind="no_card"))
    next_charge = view.subscription.current_period_end if view.subscription is not None else None
    if live and card is not None and next_charge is not None:
        expiring = policy.card_expires_before(
            exp_year=card.exp_year, exp_month=card.exp_month, moment=next_charge
        )
        backup_ok = backup is not None and not policy.card_expires_before(
            exp_year=backup.exp_year, exp_month=backup.exp_month, moment=next_charge
        )
        if expiring and not backup_ok:
            banners.append(Banner(kind="card_expiring", card=card))
    return banners


# --------------------------------------------------------------------------- the Plan page


# --------------------------------------------------------------------------- the catalog as plans (billing/plans.py's facts)


def plan_of(price: Price) -> policy_plans.Plan:
    spec = catalog.spec(price.tier.key)
    return policy_plans.Plan(
        tier=price.tier.key,
        tier_name=price.tier.name,
        rank=price.tier.rank,
        interval=price.interval,
        currency=price.currency,
        amount=price.unit_amount,
        self_serve=spec.self_serve if spec is not None else False,
    )


def situation_of(*, customer: BillingCustomer, subscription: Subscription) -> policy_plans.Situation:
    state = subscription_state(subscription=subscription, now=timezone.now())
    waiting = BillingChange.objects.filter(
        customer=customer, status=BillingChange.Status.ACTION_REQUIRED
    ).exists()
    return policy_plans.Situation(
        phase=state.phase,
        currency=subscription.currency,
        awaiting_approval=waiting,
        upgrade_pending=subscription.pending_price_id is not None,
    )


@dataclasses.dataclass(frozen=True)
class PlanOption:
    """One tier on one interval as the Plan page offers it."""

    price: Price
    includes: tuple[Any, ...]
    saving: policy_plans.Saving | None
    current: bool
    scheduled: bool
    # When it may take effect (the default first), or why it can't be chosen.
    timings: tuple[policy_plans.When, ...]
    refusal: str | None
    # With no live subscription: whether a subscription to it can be started (else `refusal`).
    startable: bool = False


@dataclasses.dataclass(frozen=True)
class PlanPage:
    subscription: Subscription | None
    state: SubscriptionState | None
    currency: str
    # Tier by tier, the intervals in order (monthly, quarterly, yearly).
    tiers: list[tuple[Tier, list[PlanOption]]]


_INTERVAL_ORDER = {"month": 0, "quarter": 1, "year": 2}


def plan_subscription(*, customer: BillingCustomer) -> Subscription | None:
    """The subscription plan changes are about: the live one, else the latest (one query)."""
    subs = list(
        Subscription.objects.select_related("price__tier", "scheduled_price__tier", "pending_price__tier")
        .filter(customer=customer)
        .order_by("-created")[:10]
    )
    return next((s for s in subs if s.status in LIVE_STATUSES), subs[0] if subs else None)


def plan_page(*, customer: BillingCustomer) -> PlanPage:
    """The catalog in the customer's currency, with the current plan marked: the same few queries
    whatever the catalog's size; Stripe is not asked (the preview of a choice comes after the
    page)."""
    sub = plan_subscription(customer=customer)
    state = subscription_state(subscription=sub, now=timezone.now()) if sub is not None else None
    currency = sub.currency if sub is not None else customer.currency
    prices = list(
        Price.objects.select_related("tier")
        .filter(active=True, currency=currency, stripe_price_id__isnull=False)
        .order_by("tier__rank")
    )
    # A subscription whose first payment is still open has no plan yet to change from.
    current = (
        sub.price
        if sub is not None and state is not None and state.live and state.phase != Phase.INCOMPLETE
        else None
    )
    situation = situation_of(customer=customer, subscription=sub) if current is not None and sub else None
    monthly = {p.tier_id: p.unit_amount for p in prices if p.interval == "month"}
    tiers: dict[int, tuple[Tier, list[PlanOption]]] = {}
    for price in sorted(prices, key=lambda p: (p.tier.rank, _INTERVAL_ORDER.get(p.interval, 9))):
        spec = catalog.spec(price.tier.key)
        option_timings: tuple[policy_plans.When, ...] = ()
        refusal = None
        if current is None:
            refusal = policy_plans.start_refusal(
                phase=state.phase if state is not None else None, currency=currency, target=plan_of(price)
            )
        elif situation is not None:
            target = plan_of(price)
            move = policy_plans.move_of(current=plan_of(current), target=target)
            if move is not None:
                option_timings = policy_plans.timings(move=move)
            refusal = policy_plans.refusal(
                situation=situation,
                current=plan_of(current),
                target=target,
                when=option_timings[0] if option_timings else policy_plans.When.NOW,
            )
        option = PlanOption(
            price=price,
            includes=spec.includes if spec is not None else (),
            saving=policy_plans.saving(
                monthly_amount=monthly.get(price.tier_id, 0),
                amount=price.unit_amount,
                months=catalog.MONTHS_PER_INTERVAL.get(Interval(price.interval), 1),
            ),
            current=current is not None and price.pk == current.pk,
            scheduled=sub is not None and sub.scheduled_price_id == price.pk,
            timings=option_timings,
            refusal=refusal,
            startable=current is None and refusal is None,
        )
        tiers.setdefault(price.tier_id, (price.tier, []))[1].append(option)
    return PlanPage(subscription=sub, state=state, currency=currency, tiers=list(tiers.values()))


# --------------------------------------------------------------------------- the Invoices page


INVOICE_PAY_KIND = "invoice_pay"  # billing.services.invoices.InvoicePay.name (that module imports this one)


@dataclasses.dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice
    status_words: str
    # Why it can't be paid now (None: it can); only open invoices say why.
    refusal: str | None

    @property
    def payable(self) -> bool:
        return self.invoice.status == Invoice.Status.OPEN and self.refusal is None


@dataclasses.dataclass(frozen=True)
class InvoicePage:
    rows: list[InvoiceRow]
    paging: invoice_rules.Paging
    has_next: bool
    # The card the "Pay now" buttons pay with, if it can (else only another card is offered).
    default_card: PaymentMethod | None
    card_refusal: str | None


def _paused_subscription(view: Dashboard) -> str:
    """The paused subscription's Stripe id, or "" (nothing is collected from it meanwhile)."""
    if view.subscription is None or view.state is None or not view.state.paused:
        return ""
    return view.subscription.stripe_id


def _being_paid(*, customer: BillingCustomer) -> set[str]:
    """Invoices a payment of which is on its way to Stripe (a change not yet applied)."""
    params = BillingChange.objects.filter(
        customer=customer, kind=INVOICE_PAY_KIND, status=BillingChange.Status.PENDING
    ).values_list("params", flat=True)
    return {str(p.get("invoice", "")) for p in params if isinstance(p, dict)}


def payable(*, invoice: Invoice, paused_subscription: str, being_paid: set[str]) -> invoice_rules.Payable:
    """The facts the rules decide paying `invoice` by (billing/invoice_rules.py)."""
    return invoice_rules.Payable(
        status=invoice.status,
        amount_remaining=invoice.amount_remaining,
        paused=bool(paused_subscription) and invoice.subscription_stripe_id == paused_subscription,
        being_paid=invoice.stripe_id in being_paid,
    )


def invoice_pay_refusal(*, customer: BillingCustomer, invoice: Invoice) -> str | None:
    """Why the customer can't pay this invoice now, as the Invoices page would say it."""
    view = dashboard(customer=customer)
    facts = payable(
        invoice=invoice,
        paused_subscription=_paused_subscription(view),
        being_paid=_being_paid(customer=customer),
    )
    return invoice_rules.pay_refusal(invoice=facts)


def invoice_for(*, customer: BillingCustomer, stripe_id: str) -> Invoice | None:
    """One of the customer's invoices (drafts are not shown, so not found either)."""
    return (
        Invoice.objects.filter(customer=customer, stripe_id=stripe_id)
        .exclude(status=Invoice.Status.DRAFT)
        .first()
    )


def invoice_page(*, customer: BillingCustomer, page: str | None) -> InvoicePage:
    """One page of the customer's invoices, newest first, each with what may be done with it.

    The same queries whatever the number of invoices: the page's rows (one more than a page, so
    no count is needed to know of a next one), the subscription and the cards (for the default
    card and a pause), and the payments on their way.  Paged by offset: a customer has at most a
    few hundred invoices, which an index on the customer skips through at no cost worth a cursor."""
    paging = invoice_rules.paging(requested=page)
    rows = list(
        Invoice.objects.filter(customer=customer)
        .exclude(status=Invoice.Status.DRAFT)
        .order_by("-created", "-pk")[paging.offset : paging.offset + paging.limit]
    )
    has_next = len(rows) > invoice_rules.PER_PAGE
    rows = rows[: invoice_rules.PER_PAGE]
    view = dashboard(customer=customer)
    paused, being_paid = _paused_subscription(view), _being_paid(customer=customer)
    card = view.default_card
    card_refusal = (
        invoice_rules.card_refusal(
            exp_year=card.exp_year, exp_month=card.exp_month, today=timezone.now().date()
        )
        if card is not None
        else None
    )
    return InvoicePage(
        rows=[
            InvoiceRow(
                invoice=invoice,
                status_words=invoice_rules.status_words(status=invoice.status),
                refusal=(
                    invoice_rules.pay_refusal(
                        invoice=payable(invoice=invoice, paused_subscription=paused, being_paid=being_paid)
                    )
                    if invoice.status == Invoice.Status.OPEN
                    else None
                ),
            )
            for invoice in rows
        ],
        paging=paging,
        has_next=has_next,
        default_card=card,
        card_refusal=card_refusal,
    )


# --------------------------------------------------------------------------- pausing (billing/pauses.py's facts)

PAUSE_KIND = "subscription_pause"


def pause_times(*, customer: BillingCustomer, since: Any) -> tuple[Any, ...]:
    """When the customer's pauses (applied pause changes) were made since `since`."""
    return tuple(
        BillingChange.objects.filter(
            customer=customer, kind=PAUSE_KIND, status=BillingChange.Status.APPLIED, applied_at__gte=since
        ).values_list("applied_at", flat=True)
    )


def latest_pause(*, customer: BillingCustomer) -> BillingChange | None:
    """The customer's latest applied pause: its result holds what Stripe credited."""
    return (
        BillingChange.objects.filter(customer=customer, kind=PAUSE_KIND, status=BillingChange.Status.APPLIED)
        .order_by("-applied_at")
        .first()
    )


def pause_situation(*, customer: BillingCustomer, subscription: Subscription) -> policy_pauses.PauseSituation:
    """The facts the pause rules take, in three queries."""
    now = timezone.now()
    state = subscription_state(subscription=subscription, now=now)
    open_invoice = Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN).exists()
    waiting = BillingChange.objects.filter(
        customer=customer, status=BillingChange.Status.ACTION_REQUIRED
    ).exists()
    return policy_pauses.PauseSituation(
        phase=state.phase,
        payment_failing=state.past_due or open_invoice,
        awaiting_approval=waiting,
        upgrade_pending=subscription.pending_price_id is not None,
        pauses=pause_times(customer=customer, since=now - policy_pauses.YEAR),
    )


@dataclasses.dataclass(frozen=True)
class PausePage:
    subscription: Subscription | None
    state: SubscriptionState | None
    situation: policy_pauses.PauseSituation | None
    # The latest applied pause (while paused: the one in force).
    pause: BillingChange | None


def pause_page(*, customer: BillingCustomer) -> PausePage:
    """The pause page's reads, from the mirror only, in a fixed number of queries."""
    sub = plan_subscription(customer=customer)
    if sub is None:
        return PausePage(subscription=None, state=None, situation=None, pause=None)
    return PausePage(
        subscription=sub,
        state=subscription_state(subscription=sub, now=timezone.now()),
        situation=pause_situation(customer=customer, subscription=sub),
        pause=latest_pause(customer=customer),
    )


# --------------------------------------------------------------------------- recovery


@dataclasses.dataclass(frozen=True)
class FixPage:
    """A recovery case as its fix page shows it: what happened, what to do, and with what."""

    case: RecoveryCase
    playbook: declines.Playbook
    invoice: Invoice | None
    card: PaymentMethod | None
    # The card on file may be charged again (the networks' rules allow it).
    card_chargeable: bool
    # The backup card: the one a charge is planned on (at the case's `backup_due_at`), or the
    # one that paid (outcome backup_card).
    backup_card: PaymentMethod | None = None

    @property
    def backup_planned(self) -> bool:
        return self.backup_card is not None and self.case.status == RecoveryCase.Status.OPEN

    @property
    def paid_by_backup(self) -> bool:
        return self.case.outcome == RecoveryCase.Outcome.BACKUP_CARD

    # What the messages say of the end (billing/messages/_recovery_end.txt), said the same here.
    @property
    def grace_ends_at(self) -> Any:
        return self.case.grace_ends_at

    @property
    def end_action(self) -> str:
        return self.case.policy.end_action


def fix_page(*, customer: BillingCustomer, case_id: int) -> FixPage | None:
    case = RecoveryCase.objects.filter(customer=customer, pk=case_id).select_related("policy").first()
    if case is None:
        return None
    decline = declines.decline_for(code=case.decline_codes[-1] if case.decline_codes else "")
    playbook = declines.playbook_for_decline(decline=decline)
    card = default_card(customer=customer)
    chargeable = card is not None and not (card.stripe_id == case.payment_method_id and case.hard)
    planned = case.status == RecoveryCase.Status.OPEN and case.backup_due_at and not case.backup_tried_at
    shown = planned or case.outcome == RecoveryCase.Outcome.BACKUP_CARD
    return FixPage(
        case=case,
        playbook=playbook,
        invoice=Invoice.objects.filter(customer=customer, stripe_id=case.invoice_stripe_id).first(),
        card=card,
        card_chargeable=chargeable,
        backup_card=PaymentMethod.objects.filter(
            customer=customer, stripe_id=case.backup_payment_method_id
        ).first()
        if shown and case.backup_payment_method_id
        else None,
    )


@dataclasses.dataclass(frozen=True)
class Notices:
    """What every page's header shows a logged-in customer: the open recovery case (its banner),
    and how many in-app messages are unread."""

    case_id: int | None
    invoice: str
    amount: int
    currency: str
    grace_ends_at: Any
    unread: int
    # The date the customer was given to pay (an extension runs): the banner says it instead.
    extended_until: Any = None

    @property
    def grace_over(self) -> bool:
        return self.grace_ends_at is not None and self.grace_ends_at <= timezone.now()


def notices(*, customer_id: int) -> Notices:
    """One query, whatever the number of cases and messages."""
    open_case = RecoveryCase.objects.filter(
        customer_id=customer_id, status=RecoveryCase.Status.OPEN
    ).order_by("opened_at")
    unread = (
        Delivery.objects.filter(
            customer_id=customer_id,
            channel=Delivery.Channel.IN_APP,
            status=Delivery.Status.SENT,
            read_at=None,
        )
        .order_by()
        .values("customer_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    row = (
        BillingCustomer.objects.filter(pk=customer_id)
        .annotate(
            case_id=Subquery(open_case.values("pk")[:1]),
            case_invoice=Subquery(open_case.values("invoice_stripe_id")[:1]),
            case_amount=Subquery(open_case.values("amount")[:1]),
            case_currency=Subquery(open_case.values("currency")[:1]),
            case_grace=Subquery(open_case.values("grace_ends_at")[:1]),
            case_extended=Subquery(open_case.values("extended_until")[:1]),
            unread=Coalesce(Subquery(unread), 0),
        )
        .values(
            "case_id", "case_invoice", "case_amount", "case_currency", "case_grace", "case_extended", "unread"
        )
        .first()
    )
    if row is None:
        return Notices(case_id=None, invoice="", amount=0, currency="", grace_ends_at=None, unread=0)
    return Notices(
        case_id=row["case_id"],
        invoice=row["case_invoice"] or "",
        amount=row["case_amount"] or 0,
        currency=row["case_currency"] or "",
        grace_ends_at=row["case_grace"],
        unread=row["unread"],
        extended_until=row["case_extended"],
    )


MESSAGES_PAGE = 50


def in_app_messages(*, customer: BillingCustomer) -> list[Delivery]:
    """The customer's in-app messages, newest first (the latest MESSAGES_PAGE)."""
    return _as_read_by(
        customer,
        list(
            Delivery.objects.filter(
                customer=customer, channel=Delivery.Channel.IN_APP, status=Delivery.Status.SENT
            ).order_by("-created_at", "-pk")[:MESSAGES_PAGE]
        ),
    )
