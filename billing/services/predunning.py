"""The nightly pre-dunning scan: reminders before a charge (billing/predunning.py has the rules).

The scan walks the subscriptions in slices of primary keys (`policy.predunning.batch` each, one
transaction each), and asks PostgreSQL (or SQLite) for the due ones of a slice only: the charge
date compared with the card's expiry month in SQL, NOT EXISTS for another card valid at the
charge, so that only the few due subscriptions come back to Python.  Each slice's reminders and
the job's position (`JobCursor`) commit together: a run stopped halfway goes on from the last
slice done when it runs again that night, and the outbox's dedupe keys (subscription and charge
date) make a reminder go once whatever runs twice.  Memory does not grow with the table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterator

from django.conf import settings
from django.db import transaction
from django.db.models import (
    BooleanField,
    Case,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, ExtractMonth, ExtractYear, NullIf
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from pydantic import ValidationError

from billing import messages, outbox, policy, predunning
from billing.links import Purpose
from billing.messages import Facts
from billing.models import BillingCustomer, Delivery, JobCursor, PaymentMethod, Price, Subscription
from billing.policy import Category, Channel, PredunningPolicy
from billing.predunning import Kind
from billing.services import mirrored

logger = logging.getLogger(__name__)

JOB = "predunning"
# The cap counts the reminders of one night: a run at the same hour the next night is free again.
NIGHT = dt.timedelta(hours=20)


# --------------------------------------------------------------------------- messages


class CardExpiringFacts(Facts):
    subscription: str
    plan: str
    card: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    charge_at: dt.datetime
    amount: int
    currency: str
    action: Purpose = Purpose.UPDATE_CARD


class RenewalFacts(Facts):
    subscription: str
    plan: str
    # The plan the renewal moves to (a change scheduled for it), or empty.
    next_plan: str
    charge_at: dt.datetime
    amount: int
    currency: str
    cancel_url: str


def card_facts(*, context: dict[str, object]) -> CardExpiringFacts | None:
    """A card reminder's facts as its delivery keeps them, or None for another message's."""
    try:
        return CardExpiringFacts.model_validate(context)
    except ValidationError:
        return None


def _live_until(*, subscription_id: str, charge_at: dt.datetime) -> Subscription | str:
    """The subscription a reminder written earlier is about, or why it has nothing to remind of
    any more: the charge is past, or the subscription was paused or set to end meanwhile."""
    if charge_at <= timezone.now():
        return "charge_passed"
    sub = Subscription.objects.select_related("customer").filter(stripe_id=subscription_id).first()
    if sub is None or not predunning.live(
        status=sub.status, paused=bool(sub.pause_behavior), cancel_at_period_end=sub.cancel_at_period_end
    ):
        return "subscription_changed"
    return sub


def _renewal_still_due(delivery: Delivery) -> str | None:
    facts = RenewalFacts.model_validate(delivery.context)
    found = _live_until(subscription_id=facts.subscription, charge_at=facts.charge_at)
    return found if isinstance(found, str) else None


def _card_still_due(delivery: Delivery) -> str | None:
    """A card reminder not sent yet is dropped if the card was replaced or refreshed meanwhile."""
    facts = CardExpiringFacts.model_validate(delivery.context)
    sub = _live_until(subscription_id=facts.subscription, charge_at=facts.charge_at)
    if isinstance(sub, str):
        return sub
    cards = [_card(pm) for pm in PaymentMethod.objects.filter(customer_id=sub.customer_id)]
    on_file = _card_id(sub)
    return predunning.card_reminder_stale(
        card=next((card for card in cards if card.stripe_id == on_file), None),
        reminded_card_id=facts.card,
        written_at=delivery.created_at,
        charge=facts.charge_at,
        others=cards,
    )


# A reminder: the customer may switch it off (Details page), and quiet hours hold it.
CARD_EXPIRING = messages.declare(
    "card_expiring",
    category=Category.REMINDER,
    channels=(Channel.EMAIL, Channel.SMS, Channel.IN_APP),
    facts=CardExpiringFacts,
    action="portal:card_add",
    link=True,
    still_due=_card_still_due,
)
RENEWAL_UPCOMING = messages.declare(
    "renewal_upcoming",
    category=Category.REMINDER,
    channels=(Channel.EMAIL, Channel.IN_APP),
    facts=RenewalFacts,
    action="portal:plan",
    action_label=_("See your plan"),
    still_due=_renewal_still_due,
)
REMINDERS = (CARD_EXPIRING.name, RENEWAL_UPCOMING.name)


# --------------------------------------------------------------------------- the selection in SQL


@dataclasses.dataclass(frozen=True)
class Candidate:
    subscription_id: int
    kind: Kind


def _due(
    *, now: dt.datetime, rules: PredunningPolicy, bounds: Q
) -> QuerySet[Subscription, tuple[int, bool, bool]]:
    """Every subscription with a reminder due at `now`, as one query (the rules of
    billing/predunning.py, in SQL)."""
    charge = Case(
        When(status="trialing", trial_end__isnull=False, then=F("trial_end")),
        default=F("current_period_end"),
        output_field=DateTimeField(),
    )
    card_id = Coalesce(
        NullIf(F("default_payment_method_id"), Value("")), F("customer__default_payment_method_id")
    )
    month = ExpressionWrapper(F("exp_year") * 12 + F("exp_month"), output_field=IntegerField())
    card = PaymentMethod.objects.filter(
        stripe_id=OuterRef("card_id"), customer_id=OuterRef("customer_id")
    ).order_by()
    valid_other = (
        PaymentMethod.objects.filter(customer_id=OuterRef("customer_id"))
        .order_by()
        .exclude(stripe_id=OuterRef("card_id"))
        .annotate(month=month)
        .filter(month__gte=OuterRef("charge_month"))
    )

    def window(days: int) -> Q:
        return Q(charge__gt=now, charge__lte=now + dt.timedelta(days=days))

    card_due = (
        window(rules.card_days)
        & Q(card_month__lt=F("charge_month"))
        & Q(card_refreshed=False)
        & Q(other_card=False)
    )
    renewal_due = Q(price__interval="quarter") & window(rules.renewal_days.quarterly) | Q(
        price__interval="year"
    ) & window(rules.renewal_days.yearly)
    return (
        Subscription.objects.filter(bounds)
        .filter(status__in=predunning.LIVE_STATUSES, pause_behavior="", cancel_at_period_end=False)
        .annotate(charge=charge)
        .filter(window(predunning.horizon_days(policy=rules)))
        .exclude(cancel_at__lte=F("charge"))
        .annotate(
            charge_month=ExpressionWrapper(
                ExtractYear("charge", tzinfo=dt.UTC) * 12 + ExtractMonth("charge", tzinfo=dt.UTC),
                output_field=IntegerField(),
            ),
            card_id=card_id,
        )
        .annotate(
            card_month=Subquery(card.annotate(month=month).values("month")[:1]),
            card_refreshed=Exists(card.filter(updated_automatically_at__isnull=False)),
            other_card=Exists(valid_other),
        )
        .annotate(
            card_due=ExpressionWrapper(card_due, output_field=BooleanField()),
            renewal_due=ExpressionWrapper(renewal_due, output_field=BooleanField()),
        )
        .filter(card_due | renewal_due)
        .order_by("pk")
        .values_list("pk", "card_due", "renewal_due")
    )


def due_in_slice(
    *, after: int, upto: int | None, now: dt.datetime, rules: PredunningPolicy
) -> list[Candidate]:
    """The reminders due in the slice of primary keys (after, upto]; `upto` None: to the end."""
    bounds = Q(pk__gt=after) & (Q(pk__lte=upto) if upto is not None else Q())
    found: list[Candidate] = []
    for pk, card_due, renewal_due in _due(now=now, rules=rules, bounds=bounds):
        if card_due:
            found.append(Candidate(pk, Kind.CARD_EXPIRING))
        if renewal_due:
            found.append(Candidate(pk, Kind.RENEWAL))
    return found


def slice_end(*, after: int, size: int) -> int | None:
    """The last primary key of the next slice of `size` subscriptions, or None for the last one."""
    return (
        Subscription.objects.filter(pk__gt=after)
        .order_by("pk")
        .values_list("pk", flat=True)[size - 1 : size]
        .first()
    )


def slices(*, after: int = 0, size: int) -> Iterator[tuple[int, int | None]]:
    """The slices of primary keys from `after` on: (after, upto], the last one open-ended."""
    while True:
        upto = slice_end(after=after, size=size)
        yield after, upto
        if upto is None:
            return
        after = upto


# --------------------------------------------------------------------------- the job


@dataclasses.dataclass
class Summary:
    slices: int = 0
    card_reminders: int = 0
    renewal_reminders: int = 0
    capped: int = 0
    resumed_from: int = 0


def run(*, now: dt.datetime | None = None, stop_after: int | None = None, restart: bool = False) -> Summary:
    """The nightly job: every slice from where tonight's run got to (`restart`: from the start).
    `stop_after` slices at most (for operators; the rest is done by the next run)."""
    now = now or timezone.now()
    rules = policy.current().predunning
    night = now.astimezone(dt.UTC).date()
    summary = Summary()
    with transaction.atomic():
        cursor, _created = JobCursor.objects.select_for_update().get_or_create(
            name=JOB, defaults={"run_date": night}
        )
        if cursor.run_date != night or restart:
            cursor.run_date, cursor.position, cursor.finished_at = night, 0, None
            cursor.save()
        summary.resumed_from = cursor.position
    if cursor.finished_at is not None:
        return summary
    while stop_after is None or summary.slices < stop_after:
        if not run_slice(now=now, night=night, rules=rules, summary=summary):
            break
    return summary


def run_slice(*, now: dt.datetime, night: dt.date, rules: PredunningPolicy, summary: Summary) -> bool:
    """The next slice of tonight's run, its reminders and the new position in one transaction;
    False when there was none left."""
    with transaction.atomic():
        cursor = JobCursor.objects.select_for_update().get(name=JOB)
        if cursor.run_date != night or cursor.finished_at is not None:
            return False
        after = cursor.position
        upto = slice_end(after=after, size=rules.batch)
        _remind(candidates=due_in_slice(after=after, upto=upto, now=now, rules=rules), now=now, rules=rules,
                summary=summary)  # fmt: skip
        summary.slices += 1
        if upto is None:
            cursor.finished_at = timezone.now()
        else:
            cursor.position = upto
        cursor.save(update_fields=["position", "finished_at", "updated_at"])
    return upto is not None


def _remind(
    *, candidates: list[Candidate], now: dt.datetime, rules: PredunningPolicy, summary: Summary
) -> None:
    if not candidates:
        return
    subs = Subscription.objects.select_related("customer", "price__tier", "scheduled_price__tier").in_bulk(
        {c.subscription_id for c in candidates}
    )
    customer_ids = {sub.customer_id for sub in subs.values()}
    cards: dict[int, list[PaymentMethod]] = defaultdict(list)
    for pm in PaymentMethod.objects.filter(customer_id__in=customer_ids):
        cards[pm.customer_id].append(pm)
    sent_tonight: dict[int, int] = defaultdict(int)
    for customer_id in Delivery.objects.filter(
        customer_id__in=customer_ids,
        message__in=REMINDERS,
        channel=Channel.IN_APP,
        created_at__gt=now - NIGHT,
        created_at__lte=now,
    ).values_list("customer_id", flat=True):
        sent_tonight[customer_id] += 1
    # The card first: it needs the customer to act, a renewal only to know.
    for candidate in sorted(candidates, key=lambda c: (c.kind != Kind.CARD_EXPIRING, c.subscription_id)):
        sub = subs.get(candidate.subscription_id)
        if sub is None:
            continue
        if sent_tonight[sub.customer_id] >= rules.daily_cap:
            summary.capped += 1
            continue
        if candidate.kind == Kind.CARD_EXPIRING:
            written = _card_reminder(sub=sub, cards=cards[sub.customer_id], now=now, rules=rules)
            summary.card_reminders += written
        else:
            written = _renewal_reminder(sub=sub, now=now, rules=rules)
            summary.renewal_reminders += written
        sent_tonight[sub.customer_id] += written


def _card_id(sub: Subscription) -> str:
    return sub.default_payment_method_id or sub.customer.default_payment_method_id


def _card(pm: PaymentMethod) -> predunning.Card:
    return predunning.Card(
        stripe_id=pm.stripe_id,
        exp_year=pm.exp_year,
        exp_month=pm.exp_month,
        refreshed_at=pm.updated_automatically_at,
    )


def _charge(sub: Subscription) -> dt.datetime:
    charge = predunning.charge_at(
        status=sub.status, current_period_end=sub.current_period_end, trial_end=sub.trial_end
    )
    assert charge is not None  # the query selected it by its charge
    return charge


def _named_in(language: str, price: Price | None) -> str:
    # The job runs in no customer's language: the plan is named in this one's.
    with translation.override(language):
        return mirrored.plan_name(price)


def _amount(sub: Subscription) -> int:
    scheduled = sub.scheduled_price
    return predunning.renewal_amount(
        unit_amount=sub.unit_amount,
        quantity=sub.quantity,
        scheduled_unit_amount=scheduled.unit_amount if scheduled is not None else None,
    )


def _card_reminder(
    *, sub: Subscription, cards: list[PaymentMethod], now: dt.datetime, rules: PredunningPolicy
) -> int:
    charge = _charge(sub)
    on_file = next((pm for pm in cards if pm.stripe_id == _card_id(sub)), None)
    due = predunning.card_reminder_due(
        policy=rules,
        charge=charge,
        card=_card(on_file) if on_file is not None else None,
        others=[_card(pm) for pm in cards],
        now=now,
    )
    if not due or on_file is None:
        logger.warning("predunning: %s selected for a card reminder the rules do not give it", sub.stripe_id)
        return 0
    customer: BillingCustomer = sub.customer
    written = outbox.enqueue(
        customer=customer,
        message=CARD_EXPIRING,
        about=f"subscription:{sub.stripe_id}",
        step=predunning.step(kind=Kind.CARD_EXPIRING, charge=charge),
        facts=CardExpiringFacts(
            subscription=sub.stripe_id,
            plan=_named_in(customer.language, sub.price),
            card=on_file.stripe_id,
            brand=on_file.brand,
            last4=on_file.last4,
            exp_month=on_file.exp_month,
            exp_year=on_file.exp_year,
            charge_at=charge,
            amount=_amount(sub),
            currency=sub.currency,
        ),
    )
    return 1 if written else 0


def _portal(name: str) -> str:
    return str(settings.PORTAL_BASE_URL).rstrip("/") + reverse(name)


def _renewal_reminder(*, sub: Subscription, now: dt.datetime, rules: PredunningPolicy) -> int:
    charge = _charge(sub)
    interval = sub.price.interval if sub.price is not None else ""
    if not predunning.renewal_reminder_due(policy=rules, interval=interval, charge=charge, now=now):
        logger.warning(
            "predunning: %s selected for a renewal reminder the rules do not give it", sub.stripe_id
        )
        return 0
    customer: BillingCustomer = sub.customer
    written = outbox.enqueue(
        customer=customer,
        message=RENEWAL_UPCOMING,
        about=f"subscription:{sub.stripe_id}",
        step=predunning.step(kind=Kind.RENEWAL, charge=charge),
        facts=RenewalFacts(
            subscription=sub.stripe_id,
            plan=_named_in(customer.language, sub.price),
            next_plan=_named_in(customer.language, sub.scheduled_price) if sub.scheduled_price else "",
            charge_at=charge,
            amount=_amount(sub),
            currency=sub.currency,
            cancel_url=_portal("portal:cancel"),
        ),
    )
    return 1 if written else 0
