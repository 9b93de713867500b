"""Payment recovery: a case per failed invoice, its reminders on the policy's days, retries stopped
after a hard decline and resumed by a new card, and a thank-you when it is paid.

Who calls what:
- the webhook handler (customer row locked): `invoice_event` for every invoice event; a failed
  renewal opens or updates its case, a paid one closes it, a voided one writes it off;
- the card and invoice changes: `card_refusal` before trying a card, `settled` when their payment
  paid a case's invoice, `new_card` when a card arrives;
- the beat job `recovery_due`: `send_due_steps` and `end_due` (set-based, in batches).

The rules (the policy, when a step goes, the caps, access) are billing/recovery.py; the decline
playbook is billing/declines.py.  Every message is a Delivery keyed by case, step and channel, so
duplicate webhooks, task retries and a worker killed mid-send never send one twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing import backup, changes, declines, gateway, messages, outbox, recovery, sync
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.links import Purpose
from billing.messages import Facts
from billing.models import (
    BillingChange,
    BillingCustomer,
    Delivery,
    Extension,
    Invoice,
    LinkEvent,
    PaymentAttempt,
    PaymentMethod,
    RecoveryCase,
    RecoveryPolicy,
)
from billing.policy import Category, Channel

logger = logging.getLogger(__name__)

Status = RecoveryCase.Status
Outcome = RecoveryCase.Outcome

# The invoices Stripe retries by itself and a customer may not be watching: renewals.  A first
# payment or a plan change is made on the page, where its own message tells the customer.
RECOVERED_REASONS = frozenset({"subscription_cycle", "subscription_threshold"})
FAILURE_EVENTS = frozenset({"invoice.payment_failed", "invoice.payment_action_required", "invoice.updated"})
# The events whose handler reads the invoice with its attempts (one read instead of two).
ATTEMPT_EVENTS = frozenset({"invoice.payment_failed", "invoice.payment_action_required"})
ALL_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.IN_APP)


# --------------------------------------------------------------------------- messages


class RecoveryFacts(Facts):
    case_id: int
    invoice: str
    number: str
    amount: int
    currency: str
    # billing.declines: the family of the latest decline (its texts), the code, and the action.
    family: str
    decline_code: str
    hard: bool
    action: Purpose
    # When access ends, and what happens then (billing.recovery.EndAction).
    grace_ends_at: dt.datetime
    end_action: str
    next_retry_at: dt.datetime | None = None


class RecoveredFacts(Facts):
    case_id: int
    invoice: str
    number: str
    amount: int
    currency: str


def _reminder(tone: recovery.Tone, category: Category) -> messages.Message:
    return messages.declare(
        f"payment_failed_{tone}",
        category=category,
        channels=ALL_CHANNELS,
        facts=RecoveryFacts,
        action="portal:fix",
        action_args=("case_id",),
        action_label=_("Fix the payment"),
        link=True,
    )


# The day-3 reminder may be switched off; the others are news of the customer's money.
REMINDERS: dict[recovery.Tone, messages.Message] = {
    recovery.Tone.FRIENDLY: _reminder(recovery.Tone.FRIENDLY, Category.PAYMENT_CRITICAL),
    recovery.Tone.REMINDER: _reminder(recovery.Tone.REMINDER, Category.REMINDER),
    recovery.Tone.DIRECT: _reminder(recovery.Tone.DIRECT, Category.PAYMENT_CRITICAL),
    recovery.Tone.FINAL: _reminder(recovery.Tone.FINAL, Category.PAYMENT_CRITICAL),
}
PAYMENT_RECOVERED = messages.declare(
    "payment_recovered",
    category=Category.CONFIRMATION,
    channels=ALL_CHANNELS,
    facts=RecoveredFacts,
    # Closing the loop is news the moment it happens, whatever the hour: they just paid.
    prompted=True,
)


class BackupPaidFacts(RecoveredFacts):
    # The backup card that paid, and the default card that had failed (to be replaced).
    brand: str
    last4: str
    failed_brand: str = ""
    failed_last4: str = ""
    action: Purpose = Purpose.UPDATE_CARD


# Instead of the thank-you when the backup card paid: which card paid, and a link to fix the
# default one, which the next renewal would charge again.  Not prompted: the customer did nothing,
# so it waits out quiet hours (the money is taken either way).
BACKUP_CARD_PAID = messages.declare(
    "backup_card_paid",
    category=Category.CONFIRMATION,
    channels=ALL_CHANNELS,
    facts=BackupPaidFacts,
    action="portal:card_add",
    prompted=False,
    link=True,
)


# --------------------------------------------------------------------------- the policy


def active_policy() -> RecoveryPolicy:
    """The newest policy version; the first use writes version 1 from the defaults."""
    latest = RecoveryPolicy.objects.order_by("-version").first()
    if latest is not None:
        return latest
    try:
        with transaction.atomic():
            return RecoveryPolicy.objects.create(
                version=1, reason="the defaults", **recovery.DEFAULT.model_dump(mode="json")
            )
    except IntegrityError:
        return RecoveryPolicy.objects.get(version=1)


def policy_data(*, policy: RecoveryPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in recovery.Policy.model_fields}


def policy_of(*, case: RecoveryCase) -> recovery.Policy:
    return recovery.spec(data=policy_data(policy=case.policy))


# --------------------------------------------------------------------------- opening and updating


def invoice_event(
    *,
    customer: BillingCustomer,
    invoice: gateway.Invoice,
    event_type: str,
    attempts: gateway.InvoiceAttempts | None = None,
) -> None:
    """What an invoice event means for recovery; the customer's row is locked by the caller, who
    mirrored the invoice (and read its `attempts` for a failure event, see ATTEMPT_EVENTS)."""
    if invoice.status == "paid":
        settled(customer=customer, invoice_id=invoice.id, outcome=None)
    elif invoice.status in ("void", "uncollectible"):
        _written_off(customer=customer, invoice_id=invoice.id)
    elif invoice.status == "open" and event_type in FAILURE_EVENTS:
        if event_type == "invoice.updated" and not _worth_a_look(customer, invoice):
            return
        payment_failed(customer=customer, invoice_id=invoice.id, found=attempts)


def _worth_a_look(customer: BillingCustomer, invoice: gateway.Invoice) -> bool:
    """`invoice.updated` opens a case only if the failure events were lost or came first in another
    order: an attempted renewal with money owed and no case yet."""
    raw = invoice.raw
    return (
        bool(raw.get("attempted"))
        and int(raw.get("attempt_count") or 0) > 0
        and raw.get("billing_reason") in RECOVERED_REASONS
        and not RecoveryCase.objects.filter(invoice_stripe_id=invoice.id).exists()
    )


def payment_failed(
    *, customer: BillingCustomer, invoice_id: str, found: gateway.InvoiceAttempts | None = None
) -> RecoveryCase | None:
    """Open the invoice's case (once), or bring it up to date after another failed attempt: its
    attempts, the latest decline, and whether Stripe may go on retrying the card.  `found` is what
    the caller read from Stripe and mirrored already; otherwise it is read (and mirrored) here."""
    mirrored = found is not None
    if found is None:
        found = gateway.invoice_attempts(invoice_id=invoice_id)
    raw = found.invoice.raw
    if (
        found.invoice.status != "open"
        or raw.get("billing_reason") not in RECOVERED_REASONS
        or found.invoice.amount_remaining <= 0
        or not (found.charges or found.waiting_for_approval)
    ):
        return None
    if not mirrored:
        sync.invoice_from_stripe(customer=customer, data=raw, state_at=timezone.now())
    failed = [charge for charge in found.charges if not charge.succeeded]
    # The episode starts when Stripe's first attempt failed (its clock: a test clock runs ahead),
    # and its days are counted from then.
    now = (
        max(timezone.now(), dt.datetime.fromtimestamp(failed[0].created, tz=dt.UTC))
        if failed
        else timezone.now()
    )
    code = found.decline_code or ("authentication_required" if found.waiting_for_approval else "")
    decline = declines.decline_for(code=code, advice_code=found.advice_code)
    case = RecoveryCase.objects.select_for_update().filter(invoice_stripe_id=invoice_id).first()
    opened = case is None
    if case is None:
        policy = active_policy()
        grace_days = recovery.spec(data=policy_data(policy=policy)).grace_days
        subscription = gateway.ref_id(
            ((raw.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        )
        case = RecoveryCase.objects.create(
            customer=customer,
            invoice_stripe_id=invoice_id,
            subscription_stripe_id=subscription,
            amount=found.invoice.amount_remaining,
            currency=found.invoice.currency or customer.currency,
            family=decline.family,
            hard=decline.hard,
            action=decline.action,
            payment_method_id=found.payment_method_id,
            decline_codes=[code] if code else [],
            policy=policy,
            opened_at=now,
            grace_ends_at=now + dt.timedelta(days=grace_days),
            next_step=0,
            next_step_at=now,
        )
    _record_attempts(customer=customer, case=case, found=found)
    # Our charge of the backup card failed: the case goes on about the default card (its decline,
    # its retries); the backup's attempt is recorded and counts against that card alone.
    on_backup = (
        not opened
        and case.backup_tried_at is not None
        and bool(found.payment_method_id)
        and found.payment_method_id == case.backup_payment_method_id
    )
    if on_backup:
        return case
    if not opened:
        codes = list(case.decline_codes)
        if code and (not codes or codes[-1] != code):
            codes.append(code)
        case.decline_codes = codes[-20:]
        case.family, case.hard, case.action = decline.family, decline.hard, decline.action
        case.payment_method_id = found.payment_method_id or case.payment_method_id
        case.amount = found.invoice.amount_remaining
        case.save(update_fields=["decline_codes", "family", "hard", "action", "payment_method_id", "amount"])
    refusal = _guardrail(case=case, decline=decline)
    if refusal and case.retries_stopped_at is None and raw.get("auto_advance"):
        _stop_retries(case=case, reason=refusal)
    _plan_backup(case=case, customer=customer, found=found, failed=failed)
    if opened:
        logger.info("recovery case %s opened for %s (%s)", case.pk, invoice_id, code or "no code")
        _advance(case=case, now=now)
    return case


def _plan_backup(
    *,
    case: RecoveryCase,
    customer: BillingCustomer,
    found: gateway.InvoiceAttempts,
    failed: list[gateway.ChargeAttempt],
) -> None:
    """The next attempt goes to the customer's backup card, if they agreed to it (billing.backup):
    just before Stripe's next retry of the default card, or soon if none is coming."""
    if case.backup_due_at is not None or case.backup_tried_at is not None:
        return
    if not customer.backup_payment_method_id or customer.backup_consent_at is None:
        return  # the common case, without a query (the rule below says the same)
    refusal = backup_refusal(case=case, customer=customer, failed_cards={c.payment_method_id for c in failed})
    if refusal is not None:
        return
    latest = failed[-1].created if failed else 0
    failed_at = max(timezone.now(), dt.datetime.fromtimestamp(latest, tz=dt.UTC))
    next_retry = found.invoice.raw.get("next_payment_attempt")
    case.backup_payment_method_id = customer.backup_payment_method_id
    case.backup_due_at = backup.backup_due(
        failed_at=failed_at,
        next_retry_at=(
            dt.datetime.fromtimestamp(int(next_retry), tz=dt.UTC)
            if next_retry and case.retries_stopped_at is None
            else None
        ),
    )
    case.save(update_fields=["backup_payment_method_id", "backup_due_at"])
    logger.info("recovery case %s: the backup card is charged at %s", case.pk, case.backup_due_at)


def backup_refusal(
    *, case: RecoveryCase, customer: BillingCustomer, failed_cards: set[str] | None = None
) -> backup.Refusal | None:
    """Why the customer's backup card may not pay the case's invoice now (billing.backup's rule,
    with the facts read here): no consent, the card gone, the card that failed, or a card the
    networks forbid charging again."""
    card_id = customer.backup_payment_method_id
    failed = set(failed_cards or ())
    failed.update(
        PaymentAttempt.objects.filter(case=case, succeeded=False).values_list("payment_method_id", flat=True)
    )
    failed.add(case.payment_method_id)
    return backup.backup_refusal(
        backup_card_id=card_id,
        consent_at=customer.backup_consent_at,
        card_on_file=bool(card_id)
        and PaymentMethod.objects.filter(customer=customer, stripe_id=card_id).exists(),
        failed_card_ids=frozenset(c for c in failed if c),
        networks_refuse=bool(card_id) and card_refusal(payment_method_id=card_id),
        tried_at=case.backup_tried_at,
        case_open=case.status == Status.OPEN,
    )


def _record_attempts(
    *, customer: BillingCustomer, case: RecoveryCase, found: gateway.InvoiceAttempts
) -> None:
    rows = [
        PaymentAttempt(
            case=case,
            customer=customer,
            stripe_id=charge.id,
            invoice_stripe_id=case.invoice_stripe_id,
            payment_method_id=charge.payment_method_id,
            at=dt.datetime.fromtimestamp(charge.created, tz=dt.UTC),
            succeeded=charge.succeeded,
            decline_code=charge.decline_code,
            advice_code=charge.advice_code,
        )
        for charge in found.charges
    ]
    if found.waiting_for_approval and not any(
        c.decline_code == "authentication_required" for c in found.charges
    ):
        # A payment waiting for 3-D Secure may have made no charge, but it was an attempt on the card.
        count = int(found.invoice.raw.get("attempt_count") or 0)
        rows.append(
            PaymentAttempt(
                case=case,
                customer=customer,
                stripe_id=f"{found.payment_intent_id}:auth:{count}",
                invoice_stripe_id=case.invoice_stripe_id,
                payment_method_id=found.payment_method_id,
                at=timezone.now(),
                decline_code="authentication_required",
            )
        )
    PaymentAttempt.objects.bulk_create(rows, ignore_conflicts=True)


def _guardrail(*, case: RecoveryCase, decline: declines.Decline) -> str | None:
    """Why Stripe must not retry the case's card again: a hard decline, or the networks' rules
    (counted over every attempt we know of on the card, ours and Stripe's)."""
    if decline.hard:
        return "hard_decline"
    return card_guardrail(payment_method_id=case.payment_method_id)


def card_guardrail(*, payment_method_id: str) -> str | None:
    if not payment_method_id:
        return None
    since = timezone.now() - declines.ATTEMPT_WINDOW
    attempts = list(
        PaymentAttempt.objects.filter(payment_method_id=payment_method_id, at__gte=since).values_list(
            "decline_code", "advice_code"
        )
    )
    return declines.retry_refusal(
        decline_codes_on_card=[code for code, _advice in attempts if code],
        attempts_in_window=len(attempts),
        advice_codes=[advice for _code, advice in attempts if advice],
    )


def _stop_retries(*, case: RecoveryCase, reason: str) -> None:
    gateway.invoice_stop_collecting(
        invoice_id=case.invoice_stripe_id,
        idempotency_key=f"recovery-{case.pk}-stop-{len(case.decline_codes)}",
    )
    case.retries_stopped_at = timezone.now()
    case.retries_stopped_reason = reason
    case.save(update_fields=["retries_stopped_at", "retries_stopped_reason"])
    Invoice.objects.filter(stripe_id=case.invoice_stripe_id).update(next_payment_attempt=None)
    logger.info("recovery case %s: automatic retries stopped (%s)", case.pk, reason)


# --------------------------------------------------------------------------- the steps


def _facts(case: RecoveryCase, invoice: Invoice | None) -> RecoveryFacts:
    family = declines.Family(case.family)
    return RecoveryFacts(
        case_id=case.pk,
        invoice=case.invoice_stripe_id,
        number=invoice.number if invoice else "",
        amount=case.amount,
        currency=case.currency,
        family=family,
        decline_code=case.decline_codes[-1] if case.decline_codes else "",
        hard=case.hard,
        action=Purpose(case.action),
        grace_ends_at=case.grace_ends_at,
        end_action=case.policy.end_action,
        next_retry_at=_next_retry(invoice, case),
    )


def _next_retry(invoice: Invoice | None, case: RecoveryCase) -> dt.datetime | None:
    """Stripe's next automatic retry, if one is still to come (a message says when)."""
    at = invoice.next_payment_attempt if invoice is not None and case.retries_stopped_at is None else None
    return at if at is not None and at > timezone.now() else None


def _recent_sends(*, customer_id: int, now: dt.datetime) -> list[dt.datetime]:
    """When the customer's recovery messages of the last 24 hours were written (one time per
    message, whatever its channels)."""
    return sorted(
        set(
            Delivery.objects.filter(
                customer_id=customer_id, case__isnull=False, created_at__gt=now - recovery.CAP_WINDOW
            )
            .exclude(message__in=(PAYMENT_RECOVERED.name, BACKUP_CARD_PAID.name))
            .values_list("created_at", flat=True)
        )
    )


def _advance(*, case: RecoveryCase, now: dt.datetime) -> None:
    """Send the case's next step if its time has come (holding it for a retry or the cap if need
    be), and plan the one after."""
    if case.status != Status.OPEN or case.next_step_at is None:
        return
    policy = policy_of(case=case)
    if case.next_step >= len(policy.steps) or now >= case.grace_ends_at:
        # Nothing left to say, or too late to say it: a reminder about access that has already
        # ended (a sweep that fell behind) would only confuse.
        case.next_step_at = None
        case.save(update_fields=["next_step_at"])
        return
    step = policy.steps[case.next_step]
    invoice = Invoice.objects.filter(stripe_id=case.invoice_stripe_id).first()
    at = recovery.send_time(
        due=case.next_step_at,
        first=case.next_step == 0,
        hard=case.hard or case.retries_stopped_at is not None,
        next_retry_at=invoice.next_payment_attempt if invoice else None,
        hold_hours=policy.retry_hold_hours,
        recent_sends=_recent_sends(customer_id=case.customer_id, now=now),
        daily_cap=policy.daily_cap,
    )
    if at > now:
        case.next_step_at = at
        case.save(update_fields=["next_step_at"])
        return
    skip = step.condition == recovery.Condition.UNOPENED and case.link_events.exists()
    if not skip:
        outbox.enqueue(
            customer=case.customer,
            message=REMINDERS[step.tone],
            about=f"invoice:{case.invoice_stripe_id}",
            step=f"recovery:{case.next_step}:{step.name}",
            facts=_facts(case, invoice),
            via=step.channels,
            case=case,
        )
    case.next_step += 1
    following = policy.steps[case.next_step] if case.next_step < len(policy.steps) else None
    # Time the case waited for an extension's date moves every step still to come.
    start = case.opened_at + case.held_for
    case.next_step_at = recovery.step_due(opened_at=start, step=following) if following else None
    case.save(update_fields=["next_step", "next_step_at"])


def _each_case(*, due: Q, order: str, limit: int, act: Callable[[RecoveryCase], None], what: str) -> int:
    """Run `act` on each case `due` picks (up to `limit`), each in its own transaction under its
    row lock, skipping one another job holds: one failing case never holds up the rest."""
    ids = list(RecoveryCase.objects.filter(due).order_by(order).values_list("pk", flat=True)[:limit])
    for pk in ids:
        try:
            with transaction.atomic():
                case = (
                    RecoveryCase.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("customer", "policy")
                    .filter(due, pk=pk)
                    .first()
                )
                if case is not None:
                    act(case)
        except Exception:
            logger.exception("recovery case %s: %s failed", pk, what)
    return len(ids)


def send_due_steps(*, now: dt.datetime, limit: int) -> int:
    """The steps whose time has come."""
    due = Q(status=Status.OPEN, next_step_at__lte=now, held_since__isnull=True)
    return _each_case(
        due=due,
        order="next_step_at",
        limit=limit,
        act=lambda case: _advance(case=case, now=now),
        what="its step",
    )


# --------------------------------------------------------------------------- closing


def _paying_change(case: RecoveryCase) -> Outcome | None:
    """Which of the customer's own payments paid the invoice, if one did (one approved with their
    bank after the fact is heard of by webhook)."""
    found = BillingChange.objects.filter(
        customer_id=case.customer_id,
        created_at__gte=case.opened_at,
        status=BillingChange.Status.APPLIED,
        kind__in=("card_add", "invoice_pay"),
    ).order_by("-created_at")
    for change in found[:20]:
        result = change.result or {}
        paid_here = result.get("invoice") == case.invoice_stripe_id and result.get("outcome") == "paid"
        if change.kind == "invoice_pay" and paid_here:
            return Outcome.CARD_UPDATE if result.get("new_card") else Outcome.PAY_NOW
        if change.kind == "card_add":
            paid = [p for p in [result.get("payment"), *(result.get("more_payments") or [])] if p]
            if any(p.get("invoice") == case.invoice_stripe_id and p.get("outcome") == "paid" for p in paid):
                return Outcome.CARD_UPDATE
    return None


def settled(
    *,
    customer: BillingCustomer,
    invoice_id: str,
    outcome: Outcome | None,
    change: BillingChange | None = None,
) -> RecoveryCase | None:
    """The case's invoice is paid: the case closes (once), reminders not yet sent never go, and
    the customer gets one thank-you.  `outcome` is the customer's payment that paid it, or None
    to find out (Stripe's retry unless one of their payments did, or the backup card); `change`
    the change that paid it, if the message is to name it."""
    case = (
        RecoveryCase.objects.select_for_update(of=("self",))
        .select_related("policy")
        .filter(customer=customer, invoice_stripe_id=invoice_id)
        .first()
    )
    if case is None or case.status == Status.RECOVERED:
        return case
    case.status = Status.RECOVERED
    case.outcome = outcome or _paying_change(case) or _paid_by_backup(case) or Outcome.RETRY
    case.closed_at = timezone.now()
    _closed(case)
    invoice = Invoice.objects.filter(stripe_id=invoice_id).first()
    recovered = RecoveredFacts(
        case_id=case.pk,
        invoice=invoice_id,
        number=invoice.number if invoice else "",
        amount=case.amount,
        currency=case.currency,
    )
    # One message either way, under one key: the thank-you, or which card paid when it was the
    # backup (and that the default card wants replacing).
    message, facts = (
        (BACKUP_CARD_PAID, _backup_paid_facts(case, recovered))
        if case.outcome == Outcome.BACKUP_CARD
        else (PAYMENT_RECOVERED, recovered)
    )
    outbox.enqueue(
        customer=customer,
        message=message,
        about=f"invoice:{invoice_id}",
        step="recovered",
        facts=facts,
        via=(last_used_channel(case=case), Channel.IN_APP),
        case=case,
        change=change,
    )
    logger.info("recovery case %s recovered (%s)", case.pk, case.outcome)
    return case


def _closed(case: RecoveryCase) -> None:
    """A closed case sends nothing more, and an extension that was running on it is over."""
    case.next_step_at = None
    case.backup_due_at = None
    case.extended_until = None
    case.held_since = None
    case.save(
        update_fields=[
            "status",
            "outcome",
            "closed_at",
            "next_step_at",
            "backup_due_at",
            "extended_until",
            "held_since",
        ]
    )
    _drop_unsent(case)
    Extension.objects.filter(case=case, status__in=Extension.RUNNING).update(
        status=Extension.Status.PAID if case.outcome == Outcome.EXTENSION else Extension.Status.CLOSED,
        closed_at=case.closed_at,
    )


def _paid_by_backup(case: RecoveryCase) -> Outcome | None:
    """Whether the charge that paid the invoice was on the backup card we tried (asked of Stripe
    only for a case whose backup was charged: its answer may not have reached us, in an outage)."""
    if case.backup_tried_at is None or not case.backup_payment_method_id:
        return None
    found = gateway.invoice_attempts(invoice_id=case.invoice_stripe_id)
    paid = [c for c in found.charges if c.succeeded]
    return (
        Outcome.BACKUP_CARD if paid and paid[-1].payment_method_id == case.backup_payment_method_id else None
    )


def _backup_paid_facts(case: RecoveryCase, recovered: RecoveredFacts) -> BackupPaidFacts:
    cards = {
        c.stripe_id: c
        for c in PaymentMethod.objects.filter(
            customer_id=case.customer_id,
            stripe_id__in=[case.backup_payment_method_id, case.payment_method_id],
        )
    }
    paid, failed = cards.get(case.backup_payment_method_id), cards.get(case.payment_method_id)
    return BackupPaidFacts(
        **recovered.model_dump(),
        brand=paid.brand if paid else "",
        last4=paid.last4 if paid else "",
        failed_brand=failed.brand if failed else "",
        failed_last4=failed.last4 if failed else "",
    )


def last_used_channel(*, case: RecoveryCase) -> Channel:
    """The channel the customer last answered through: the message whose link they clicked last,
    else email."""
    clicked = LinkEvent.objects.filter(case=case).select_related("delivery").order_by("-at").first()
    if clicked is not None and clicked.delivery.channel in (Channel.EMAIL, Channel.SMS):
        return Channel(clicked.delivery.channel)
    return Channel.EMAIL


def _drop_unsent(case: RecoveryCase) -> None:
    """Reminders written but not sent yet (quiet hours, a retry's backoff) never go once the case
    is closed; a send in progress holds its row, and this waits for it."""
    Delivery.objects.filter(case=case, status=Delivery.Status.PENDING).exclude(
        message__in=(PAYMENT_RECOVERED.name, BACKUP_CARD_PAID.name)
    ).update(status=Delivery.Status.SUPPRESSED, suppressed_reason="case_closed")


def _written_off(*, customer: BillingCustomer, invoice_id: str) -> None:
    case = (
        RecoveryCase.objects.select_for_update(of=("self",))
        .filter(customer=customer, invoice_stripe_id=invoice_id, status=Status.OPEN)
        .first()
    )
    if case is None:
        return
    _lost(case, Outcome.WRITTEN_OFF)


def _lost(case: RecoveryCase, outcome: Outcome) -> None:
    case.status = Status.LOST
    case.outcome = outcome
    case.closed_at = timezone.now()
    _closed(case)
    logger.info("recovery case %s lost (%s)", case.pk, outcome)


def subscription_ended(*, customer: BillingCustomer, subscription_id: str) -> None:
    """A subscription that ended takes its open cases with it (Stripe canceled it after its last
    retry, or staff did): nothing is owed for service no longer given."""
    for case in (
        RecoveryCase.objects.select_for_update(of=("self",))
        .select_related("policy")
        .filter(customer=customer, subscription_stripe_id=subscription_id, status=Status.OPEN)
    ):
        ended_by_policy = case.ended_at is not None and case.policy.end_action == recovery.EndAction.CANCEL
        _lost(case, Outcome.CANCELED if ended_by_policy else Outcome.WRITTEN_OFF)


# --------------------------------------------------------------------------- cards and payments


def card_refusal(*, payment_method_id: str) -> bool:
    """Whether the networks' rules forbid charging this card again now."""
    return card_guardrail(payment_method_id=payment_method_id) is not None


def record_payment(
    *,
    customer: BillingCustomer,
    invoice_id: str,
    payment_method_id: str,
    change: BillingChange,
    outcome: str,
    decline_code: str = "",
    slot: int = 0,
) -> None:
    """One of our own payments on a case's invoice, for the case and the card's count (Stripe's
    attempts come with its events; this one is known before they are).  `slot` numbers the cards
    one change tries in turn."""
    case = RecoveryCase.objects.filter(customer=customer, invoice_stripe_id=invoice_id).first()
    PaymentAttempt.objects.get_or_create(
        stripe_id=f"change:{change.pk}:{invoice_id}" + (f":{slot}" if slot else ""),
        defaults={
            "case": case,
            "customer": customer,
            "invoice_stripe_id": invoice_id,
            "payment_method_id": payment_method_id,
            "at": timezone.now(),
            "succeeded": outcome == "paid",
            "decline_code": decline_code,
        },
    )


def resume_collecting(*, customer: BillingCustomer, change: BillingChange, decline_code: str) -> None:
    """A new card arrived: invoices whose retries a hard decline had stopped are collected again
    by Stripe (on the new default card), unless the new card was itself declined for good."""
    if decline_code and declines.decline_for(code=decline_code).hard:
        return
    for case in RecoveryCase.objects.select_for_update(of=("self",)).filter(
        customer=customer, status=Status.OPEN, retries_stopped_at__isnull=False
    ):
        answer = gateway.invoice_resume_collecting(
            invoice_id=case.invoice_stripe_id, idempotency_key=change.idempotency_key(f"resume-{case.pk}")
        )
        sync.invoice_from_stripe(customer=customer, data=answer.raw, state_at=timezone.now())
        case.retries_stopped_at = None
        case.retries_stopped_reason = ""
        case.save(update_fields=["retries_stopped_at", "retries_stopped_reason"])


# --------------------------------------------------------------------------- the end of grace


class EndParams(ChangeParams):
    case: int
    subscription: str
    amount: int
    currency: str


class EndResult(ChangeResult):
    subscription: str
    status: str
    amount: int
    currency: str


class EndedFacts(Facts):
    amount: int
    currency: str


SUBSCRIPTION_ENDED_UNPAID = messages.declare(
    "subscription_ended_unpaid",
    category=Category.PAYMENT_CRITICAL,
    channels=(Channel.EMAIL, Channel.IN_APP),
    facts=EndedFacts,
    action="portal:plan",
    action_label=_("Start again"),
)


@change_kind
class RecoveryEnd(ChangeKind[EndParams, EndResult]):
    """The policy's end for an unpaid case: the subscription is canceled (end action "cancel")."""

    name = "recovery_end"
    label = _("End an unpaid subscription")
    template = "portal/changes/recovery_end.html"
    Params = EndParams
    Result = EndResult
    messages = (SUBSCRIPTION_ENDED_UNPAID,)
    dedupe = ("case",)
    supersedes = False

    def apply(self, *, change: BillingChange, customer: BillingCustomer, params: EndParams) -> EndResult:
        answer = gateway.subscription_cancel_now(
            subscription_id=params.subscription, idempotency_key=change.idempotency_key("cancel")
        )
        sync.subscription_from_stripe(customer=customer, data=answer.raw, state_at=timezone.now())
        return EndResult(
            subscription=params.subscription,
            status=answer.status,
            amount=params.amount,
            currency=params.currency,
        )

    def confirmation(self, *, change: BillingChange, params: EndParams, result: EndResult) -> Confirmation:
        return Confirmation(
            SUBSCRIPTION_ENDED_UNPAID, EndedFacts(amount=result.amount, currency=result.currency)
        )


END = changes.KINDS[RecoveryEnd.name]


def end_due(*, now: dt.datetime, limit: int) -> int:
    """Cases whose grace is over: the policy's end action, once each.  Restricting needs nothing
    but the date (access is computed from it); canceling is a change."""
    due = Q(status=Status.OPEN, ended_at__isnull=True, grace_ends_at__lte=now, held_since__isnull=True)
    return _each_case(
        due=due, order="grace_ends_at", limit=limit, act=lambda case: _end(case=case, now=now), what="its end"
    )


def _end(*, case: RecoveryCase, now: dt.datetime) -> None:
    case.ended_at = now
    case.save(update_fields=["ended_at"])
    if case.policy.end_action == recovery.EndAction.CANCEL and case.subscription_stripe_id:
        params = EndParams(
            case=case.pk, subscription=case.subscription_stripe_id, amount=case.amount, currency=case.currency
        )
        changes.request(customer=case.customer, kind=END, params=params, requested_by=None)
