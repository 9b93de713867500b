"""More time to pay (payment extensions): a customer picks the date they can pay, the policy
approves it at once or staff decide, and on that date the payment is tried again.

- After a failed payment: the case's reminders, its end and Stripe's automatic retries wait (the
  invoice stops auto-advancing), access stays full ("extended until"); on the date the invoice is
  charged, the default card and then the backup card (with the customer's consent); paid closes
  the case with the thank-you, declined resumes the recovery where it stood, shifted by the time
  it waited.
- Before a renewal: the renewal still starts its period on its date, but its invoice stays a draft
  (`pause_collection` with `keep_as_draft` until the agreed date) and is charged on the date, once.
  Nothing is given away: the period is the same, only its payment comes later.

The rules are billing/extensions.py; the limits are part of the recovery policy version (staff
version them in the admin).  Writes to Stripe are change kinds (`extension_grant`,
`extension_charge`), so an outage leaves them pending, never lost, never doubled.  The due-date
job is one indexed query a batch, paced under the Stripe write rate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import changes, extensions, gateway, messages, outbox, recovery, sync
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.errors import InvalidRequest, Refused
from billing.extensions import Kind, Refusal, Rules
from billing.messages import Facts
from billing.models import (
    BillingChange,
    BillingCustomer,
    Delivery,
    Extension,
    PaymentMethod,
    RecoveryCase,
    RecoveryPolicy,
    Subscription,
)
from billing.money import customer_zone, format_day
from billing.policy import Category, Channel
from billing.services import mirrored
from billing.services import recovery as recovery_service
from billing.state import subscription_state

logger = logging.getLogger(__name__)

Status = Extension.Status
BOTH = (Channel.EMAIL, Channel.IN_APP)


# --------------------------------------------------------------------------- messages


class ExtensionFacts(Facts):
    extension: int
    kind: str
    charge_at: dt.datetime
    amount: int
    currency: str


EXTENSION_GRANTED = messages.declare(
    "extension_granted",
    category=Category.CONFIRMATION,
    channels=BOTH,
    facts=ExtensionFacts,
)
EXTENSION_DENIED = messages.declare(
    "extension_denied",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=ExtensionFacts,
    # Staff decide when they can, not when the customer is at the page.
    prompted=False,
)


class ExtensionPaidFacts(Facts):
    extension: int
    invoice: str
    amount: int
    currency: str
    brand: str
    last4: str
    backup: bool


EXTENSION_PAID = messages.declare(
    "extension_paid",
    category=Category.CONFIRMATION,
    channels=BOTH,
    facts=ExtensionPaidFacts,
    # The customer is not at the page on the date: this is news, not an answer to a click.
    prompted=False,
)


def _facts(extension: Extension) -> ExtensionFacts:
    return ExtensionFacts(
        extension=extension.pk,
        kind=extension.kind,
        charge_at=extension.charge_at,
        amount=extension.amount,
        currency=extension.currency,
    )


# --------------------------------------------------------------------------- what may be asked


def rules_of(*, policy: RecoveryPolicy) -> Rules:
    return recovery.spec(data=recovery_service.policy_data(policy=policy)).extensions


@dataclasses.dataclass(frozen=True)
class Offer:
    """The payment a customer may ask more time for now, and within which dates."""

    kind: Kind
    subscription: str
    case: RecoveryCase | None
    invoice: str
    amount: int
    currency: str
    due: dt.datetime
    rules: Rules
    window: extensions.Window | None
    earlier: int
    # The request already made on it (waiting or running), if any.
    running: Extension | None

    @property
    def refusal(self) -> Refusal | None:
        """Why no date can be asked for at all (before the customer picks one)."""
        if self.running is not None:
            return Refusal.RUNNING
        if self.earlier >= self.rules.max_per_year:
            return Refusal.TOO_MANY
        if self.window is None:
            return Refusal.NO_DATES
        return None


def offer(*, customer: BillingCustomer, now: dt.datetime | None = None) -> Offer | None:
    """A failed payment's case first; else the next renewal, if it is close enough to ask."""
    now = now or timezone.now()
    zone = customer_zone(customer.time_zone)
    earlier = Extension.objects.filter(customer=customer, requested_at__gt=now - extensions.YEAR).count()
    case = (
        RecoveryCase.objects.filter(customer=customer, status=RecoveryCase.Status.OPEN)
        .exclude(subscription_stripe_id="")
        .select_related("policy")
        .order_by("opened_at")
        .first()
    )
    if case is not None:
        rules = rules_of(policy=case.policy)
        return Offer(
            kind=Kind.AFTER_FAILURE,
            subscription=case.subscription_stripe_id,
            case=case,
            invoice=case.invoice_stripe_id,
            amount=case.amount,
            currency=case.currency,
            due=case.opened_at,
            rules=rules,
            window=extensions.window(due=case.opened_at, now=now, zone=zone, rules=rules),
            earlier=earlier,
            running=_running(customer, case.subscription_stripe_id),
        )
    rules = rules_of(policy=recovery_service.active_policy())
    for sub in Subscription.objects.filter(customer=customer).select_related("scheduled_price"):
        state = subscription_state(subscription=sub, now=now)
        running = _running(customer, sub.stripe_id)
        if running is not None and running.kind == Kind.BEFORE_RENEWAL:
            due = running.due_at
        elif state.next_charge is not None and extensions.may_ask_before_renewal(
            renewal=state.next_charge.at, now=now, rules=rules
        ):
            due = state.next_charge.at
        else:
            continue
        amount = state.next_charge.amount if state.next_charge else running.amount if running else 0
        return Offer(
            kind=Kind.BEFORE_RENEWAL,
            subscription=sub.stripe_id,
            case=None,
            invoice="",
            amount=amount,
            currency=sub.currency,
            due=due,
            rules=rules,
            window=extensions.window(due=due, now=now, zone=zone, rules=rules),
            earlier=earlier,
            running=running,
        )
    return None


def _running(customer: BillingCustomer, subscription: str) -> Extension | None:
    return (
        Extension.objects.filter(
            customer=customer, subscription_stripe_id=subscription, status__in=Extension.RUNNING
        )
        .order_by("-requested_at")
        .first()
    )


def refusal_text(*, refusal: Refusal, found: Offer) -> str:
    """Why, in the customer's words (active language and zone)."""
    if refusal == Refusal.RUNNING and found.running is not None:
        day = format_day(value=found.running.charge_at)
        if found.running.status == Status.REQUESTED:
            return _("Your request for more time, until %(date)s, is with our billing team.") % {"date": day}
        return _("You already have until %(date)s to pay.") % {"date": day}
    if refusal == Refusal.TOO_MANY:
        return _(
            "You have asked for more time %(count)d times in the last 12 months, which is as often as we can offer it."
        ) % {"count": found.earlier}
    if refusal == Refusal.OUT_OF_RANGE and found.window is not None:
        return _("Please pick a date from %(first)s to %(last)s.") % {
            "first": format_day(value=found.window.first),
            "last": format_day(value=found.window.last),
        }
    return _("There are no more days we can offer for this payment.")


# --------------------------------------------------------------------------- asking and deciding


def request(
    *, customer: BillingCustomer, until: dt.date, reason: str, requested_by: AbstractBaseUser | None
) -> Extension:
    """Record the customer's request; approve it at once if the policy allows, else it waits for
    staff.  Refused (with the reason in the customer's words) if the rules don't allow it."""
    now = timezone.now()
    zone = customer_zone(customer.time_zone)
    with transaction.atomic():
        BillingCustomer.objects.select_for_update().filter(pk=customer.pk).first()
        found = offer(customer=customer, now=now)
        if found is None:
            raise Refused(_("There is no payment to move at the moment."))
        facts = extensions.Facts(
            due=found.due,
            until=until,
            amount=found.amount,
            currency=found.currency,
            earlier=found.earlier,
            running=found.running is not None,
        )
        refusal = extensions.refusal(facts=facts, allowed=found.window, rules=found.rules)
        if refusal is not None:
            raise Refused(refusal_text(refusal=refusal, found=found))
        review = extensions.reviews(facts=facts, zone=zone, rules=found.rules)
        try:
            with transaction.atomic():
                extension = Extension.objects.create(
                    customer=customer,
                    kind=found.kind,
                    subscription_stripe_id=found.subscription,
                    case=found.case,
                    invoice_stripe_id=found.invoice,
                    amount=found.amount,
                    currency=found.currency,
                    due_at=found.due,
                    until=until,
                    charge_at=extensions.charge_at(until=until, zone=zone, rules=found.rules),
                    reason=reason.strip()[:500],
                    review=[str(r) for r in review],
                    requested_at=now,
                    requested_by_id=requested_by.pk if requested_by is not None else None,
                )
        except IntegrityError as exc:
            raise Refused(_("You have already asked for more time for this payment.")) from exc
        if not review:
            _approve(extension, decided_by=None, reason="", now=now)
    logger.info(
        "extension %s requested until %s (%s)", extension.pk, until, ",".join(extension.review) or "auto"
    )
    if extension.status == Status.APPROVED:
        _grant(extension, requested_by=requested_by)
    return extension


def decide(*, extension_id: int, approve: bool, reason: str, decided_by: AbstractBaseUser) -> Extension:
    """Staff's decision on a request in the queue, with the reason kept with it; the customer is
    told either way, in their language."""
    if not reason.strip():
        raise Refused(_("Say why: the reason is kept with the decision."))
    now = timezone.now()
    with transaction.atomic():
        extension = (
            Extension.objects.select_for_update().select_related("customer").filter(pk=extension_id).first()
        )
        if extension is None or extension.status != Status.REQUESTED:
            raise Refused(_("This request has been decided already."))
        if approve:
            _renewal_failed_meanwhile(extension)
            _approve(extension, decided_by=decided_by, reason=reason.strip(), now=now)
        else:
            extension.status = Status.DENIED
            extension.decided_at, extension.decision_reason = now, reason.strip()
            extension.decided_by_id = decided_by.pk
            extension.closed_at = now
            extension.save(
                update_fields=["status", "decided_at", "decided_by_id", "decision_reason", "closed_at"]
            )
            outbox.enqueue(
                customer=extension.customer,
                message=EXTENSION_DENIED,
                about=f"extension:{extension.pk}",
                step="denied",
                facts=_facts(extension),
            )
    logger.info("extension %s %s by staff %s", extension.pk, extension.status, decided_by.pk)
    if extension.status == Status.APPROVED:
        _grant(extension, requested_by=decided_by)
    return extension


def _renewal_failed_meanwhile(extension: Extension) -> None:
    """A request to move a renewal's charge that waited for staff past the renewal, whose payment
    then failed: what is held now is that failed invoice (its case waits, Stripe stops retrying),
    until the same agreed date."""
    if extension.kind != Kind.BEFORE_RENEWAL:
        return
    case = (
        RecoveryCase.objects.filter(
            customer_id=extension.customer_id,
            subscription_stripe_id=extension.subscription_stripe_id,
            status=RecoveryCase.Status.OPEN,
            opened_at__gte=extension.due_at - extensions.DAY,
        )
        .order_by("opened_at")
        .first()
    )
    if case is None:
        return
    extension.kind, extension.case, extension.invoice_stripe_id = (
        Kind.AFTER_FAILURE,
        case,
        case.invoice_stripe_id,
    )
    extension.amount, extension.currency = case.amount, case.currency
    extension.save(update_fields=["kind", "case", "invoice_stripe_id", "amount", "currency"])


def _approve(
    extension: Extension, *, decided_by: AbstractBaseUser | None, reason: str, now: dt.datetime
) -> None:
    extension.status = Status.APPROVED
    extension.decided_at, extension.decision_reason = now, reason
    extension.decided_by_id = decided_by.pk if decided_by is not None else None
    extension.save(update_fields=["status", "decided_at", "decided_by_id", "decision_reason"])
    if extension.case_id is None:
        return
    case = RecoveryCase.objects.select_for_update(of=("self",)).get(pk=extension.case_id)
    case.extended_until = extension.charge_at
    case.held_since = case.held_since or now
    case.save(update_fields=["extended_until", "held_since"])
    # A reminder written but held back (quiet hours) would contradict the agreed date.
    Delivery.objects.filter(case=case, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.SUPPRESSED, suppressed_reason="extended"
    )


def _grant(extension: Extension, *, requested_by: AbstractBaseUser | None) -> None:
    change = changes.request(
        customer=extension.customer,
        kind=GRANT,
        params=ExtensionParams(extension=extension.pk),
        requested_by=requested_by,
    )
    Extension.objects.filter(pk=extension.pk, grant__isnull=True).update(grant=change)


# --------------------------------------------------------------------------- the changes


class ExtensionParams(ChangeParams):
    extension: int


class GrantResult(ChangeResult):
    extension: int
    kind: str
    # False when there was nothing to hold any more (decided otherwise, or paid meanwhile).
    held: bool
    charge_at: dt.datetime
    amount: int
    currency: str


def _extension(customer: BillingCustomer, params: ExtensionParams) -> Extension:
    found = Extension.objects.filter(customer=customer, pk=params.extension).first()
    if found is None:
        raise InvalidRequest("no such extension", code="extension_missing")
    return found


@change_kind
class ExtensionGrant(ChangeKind[ExtensionParams, GrantResult]):
    """Stripe holds the payment until the agreed date: the failed invoice stops being retried, or
    the renewal's invoice is kept as a draft."""

    name = "extension_grant"
    label = gettext_lazy("More time to pay")
    template = "portal/changes/extension_grant.html"
    Params = ExtensionParams
    Result = GrantResult
    messages = (EXTENSION_GRANTED,)
    dedupe = ("extension",)
    supersedes = False

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: ExtensionParams
    ) -> GrantResult:
        extension = _extension(customer, params)
        held = extension.status == Status.APPROVED
        if held and extension.kind == Kind.AFTER_FAILURE:
            answer = gateway.invoice_stop_collecting(
                invoice_id=extension.invoice_stripe_id, idempotency_key=change.idempotency_key("hold")
            )
            sync.invoice_from_stripe(customer=customer, data=answer.raw, state_at=timezone.now())
            held = answer.status == "open"
        elif held:
            sub = gateway.subscription_defer_collection(
                subscription_id=extension.subscription_stripe_id,
                until=int(extension.charge_at.timestamp()),
                idempotency_key=change.idempotency_key("hold"),
            )
            sync.subscription_from_stripe(customer=customer, data=sub.raw, state_at=timezone.now())
        return GrantResult(
            extension=extension.pk,
            kind=extension.kind,
            held=held,
            charge_at=extension.charge_at,
            amount=extension.amount,
            currency=extension.currency,
        )

    def confirmation(
        self, *, change: BillingChange, params: ExtensionParams, result: GrantResult
    ) -> Confirmation | None:
        if not result.held:
            return None
        return Confirmation(
            EXTENSION_GRANTED,
            ExtensionFacts(
                extension=result.extension,
                kind=result.kind,
                charge_at=result.charge_at,
                amount=result.amount,
                currency=result.currency,
            ),
        )


GRANT = changes.KINDS[ExtensionGrant.name]


class ChargeResult(ChangeResult):
    extension: int
    invoice: str
    # paid, declined, action_required, already_paid, or closed (nothing to charge any more).
    outcome: str
    decline_code: str = ""
    # The card that paid, or the last one tried.
    brand: str = ""
    last4: str = ""
    backup: bool = False
    amount: int = 0
    currency: str = ""
    # The invoice was a recovery case's (whose thank-you, or next reminder, says the outcome).
    case: bool = False


def _cards(
    customer: BillingCustomer, extension: Extension, case: RecoveryCase | None
) -> list[tuple[str, bool]]:
    """The cards to try on the date, in order: the default, then the backup card, only with the
    customer's recorded consent and never twice for one invoice (billing.backup's rule)."""
    sub_card = (
        Subscription.objects.filter(stripe_id=extension.subscription_stripe_id)
        .values_list("default_payment_method_id", flat=True)
        .first()
    )
    default = sub_card or customer.default_payment_method_id
    found = [(default, False)] if default else []
    backup = customer.backup_payment_method_id
    if case is not None:
        allowed = (
            recovery_service.backup_refusal(case=case, customer=customer, failed_cards={default}) is None
        )
    else:
        allowed = bool(backup) and customer.backup_consent_at is not None and backup != default
    if backup and allowed:
        found.append((backup, True))
    return found


def _renewal_invoice(change: BillingChange, extension: Extension) -> gateway.Invoice | None:
    """The renewal the extension held: the subscription's latest invoice, finalized now if Stripe
    kept it as a draft."""
    sub = gateway.subscription_retrieve(subscription_id=extension.subscription_stripe_id)
    if not sub.latest_invoice_id:
        return None
    invoice = gateway.invoice_retrieve(invoice_id=sub.latest_invoice_id)
    created = int(invoice.raw.get("created") or 0)
    if (
        invoice.raw.get("billing_reason") != "subscription_cycle"
        or created < int(extension.due_at.timestamp()) - 3600
    ):
        return None  # the renewal has not been invoiced: nothing was held
    if invoice.status == "draft":
        invoice = gateway.invoice_finalize(
            invoice_id=invoice.id, idempotency_key=change.idempotency_key("finalize")
        )
    return invoice


@change_kind
class ExtensionCharge(ChangeKind[ExtensionParams, ChargeResult]):
    """The agreed date: the payment is tried on the default card, then on the backup card."""

    name = "extension_charge"
    label = gettext_lazy("Payment on the agreed date")
    template = "portal/changes/extension_charge.html"
    Params = ExtensionParams
    Result = ChargeResult
    messages = (EXTENSION_PAID,)
    dedupe = ("extension",)
    supersedes = False

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: ExtensionParams
    ) -> ChargeResult:
        extension = _extension(customer, params)
        if extension.status != Status.APPROVED:
            return ChargeResult(extension=extension.pk, invoice=extension.invoice_stripe_id, outcome="closed")
        if extension.kind == Kind.AFTER_FAILURE:
            invoice: gateway.Invoice | None = gateway.invoice_retrieve(invoice_id=extension.invoice_stripe_id)
        else:
            invoice = _renewal_invoice(change, extension)
        if invoice is None or invoice.status in ("void", "uncollectible"):
            _finish(extension, status=Status.CLOSED)
            return ChargeResult(
                extension=extension.pk, invoice=invoice.id if invoice else "", outcome="closed"
            )
        case = RecoveryCase.objects.filter(customer=customer, invoice_stripe_id=invoice.id).first()
        result = self._pay(change, customer, extension, invoice, case)
        self._after(change, customer, extension, result, case)
        return result

    def _pay(
        self,
        change: BillingChange,
        customer: BillingCustomer,
        extension: Extension,
        invoice: gateway.Invoice,
        case: RecoveryCase | None,
    ) -> ChargeResult:
        common: dict[str, Any] = {
            "extension": extension.pk,
            "invoice": invoice.id,
            "amount": extension.amount,
            "currency": extension.currency,
            "case": case is not None,
        }
        if invoice.status == "paid":
            sync.invoice_from_stripe(customer=customer, data=invoice.raw, state_at=timezone.now())
            return ChargeResult(**common, outcome="already_paid")
        outcome, decline_code, brand, last4, backup = "declined", "", "", "", False
        for slot, (card_id, is_backup) in enumerate(_cards(customer, extension, case)):
            if recovery_service.card_refusal(payment_method_id=card_id):
                continue
            if is_backup and case is not None:
                # Tried once for this invoice, whatever comes of it (the backup job won't again).
                RecoveryCase.objects.filter(pk=case.pk).update(
                    backup_payment_method_id=card_id, backup_tried_at=timezone.now(), backup_due_at=None
                )
            card = PaymentMethod.objects.filter(customer=customer, stripe_id=card_id).first()
            brand, last4, backup = (card.brand, card.last4, is_backup) if card else ("", "", is_backup)
            payment = mirrored.pay_invoice(
                invoice_id=invoice.id,
                payment_method_id=card_id,
                idempotency_key=change.idempotency_key(f"pay-{slot}"),
            )
            outcome, decline_code, invoice = payment.outcome, payment.decline_code, payment.invoice
            recovery_service.record_payment(
                customer=customer,
                invoice_id=invoice.id,
                payment_method_id=card_id,
                change=change,
                outcome=outcome,
                decline_code=decline_code,
                slot=slot,
            )
            if outcome != "declined":
                break
        # The invoice as the last payment left it (pay_invoice read it again after a decline).
        sync.invoice_from_stripe(customer=customer, data=invoice.raw, state_at=timezone.now())
        return ChargeResult(
            **common, outcome=outcome, decline_code=decline_code, brand=brand, last4=last4, backup=backup
        )

    def _after(
        self,
        change: BillingChange,
        customer: BillingCustomer,
        extension: Extension,
        result: ChargeResult,
        case: RecoveryCase | None,
    ) -> None:
        paid = result.outcome in ("paid", "already_paid")
        if paid:
            _finish(extension, status=Status.PAID)
            if case is not None:
                # Paid by the backup card: its message names the card and asks for a new default.
                outcome = (
                    RecoveryCase.Outcome.BACKUP_CARD if result.backup else RecoveryCase.Outcome.EXTENSION
                )
                recovery_service.settled(
                    customer=customer, invoice_id=result.invoice, outcome=outcome, change=change
                )
            return
        _finish(extension, status=Status.FAILED)
        if case is not None:
            resume(case=case, key=f"extension-{extension.pk}")
        else:
            # A renewal held as a draft and declined on the date: Stripe collects it as any
            # failed renewal now (its retries; the recovery case opens with its event).
            answer = gateway.invoice_resume_collecting(
                invoice_id=result.invoice, idempotency_key=f"extension-{extension.pk}-collect"
            )
            sync.invoice_from_stripe(customer=customer, data=answer.raw, state_at=timezone.now())

    def confirmation(
        self, *, change: BillingChange, params: ExtensionParams, result: ChargeResult
    ) -> Confirmation | None:
        # After a failure the case's thank-you says it (billing.services.recovery.settled), and a
        # decline is said by the recovery's next reminder, sent at once: one message each time.
        if result.outcome != "paid" or result.case:
            return None
        return Confirmation(
            EXTENSION_PAID,
            ExtensionPaidFacts(
                extension=result.extension,
                invoice=result.invoice,
                amount=result.amount,
                currency=result.currency,
                brand=result.brand,
                last4=result.last4,
                backup=result.backup,
            ),
        )


CHARGE = changes.KINDS[ExtensionCharge.name]


def _finish(extension: Extension, *, status: str) -> None:
    Extension.objects.filter(pk=extension.pk, status=Status.APPROVED).update(
        status=status, closed_at=timezone.now()
    )
    extension.status = status


def resume(*, case: RecoveryCase, key: str) -> None:
    """The agreed date passed unpaid: the recovery goes on where it stood.  The time it waited
    moves its next reminder (sent now if it was due meanwhile), its later steps and its end; and
    Stripe's retries come back unless the card had been stopped for good before."""
    now = timezone.now()
    case = RecoveryCase.objects.select_for_update(of=("self",)).get(pk=case.pk)
    if case.status != RecoveryCase.Status.OPEN or case.held_since is None:
        return
    waited = max(dt.timedelta(0), now - case.held_since)
    case.held_for += waited
    case.grace_ends_at += waited
    case.next_step_at = now if case.next_step_at is not None else None
    case.held_since = None
    case.extended_until = None
    case.save(update_fields=["held_for", "grace_ends_at", "next_step_at", "held_since", "extended_until"])
    if case.retries_stopped_at is None:
        answer = gateway.invoice_resume_collecting(
            invoice_id=case.invoice_stripe_id, idempotency_key=f"{key}-collect"
        )
        sync.invoice_from_stripe(customer=case.customer, data=answer.raw, state_at=now)


# --------------------------------------------------------------------------- the due-date job


def charge_due(*, now: dt.datetime, limit: int) -> int:
    """Extensions whose date has come: each charged once (the change dedupes on the extension),
    oldest first, under the Stripe write rate; a grant a crash left unmade is made.  One indexed
    query a batch; a full batch means the caller runs it again."""
    due = list(
        Extension.objects.filter(status=Status.APPROVED, charge_at__lte=now)
        .order_by("charge_at")
        .values_list("pk", flat=True)[:limit]
    )
    ungranted = list(
        Extension.objects.filter(
            status=Status.APPROVED, grant__isnull=True, decided_at__lte=now - dt.timedelta(minutes=5)
        ).values_list("pk", flat=True)[:limit]
    )
    for pk in ungranted:
        _each(pk, charge=False)
    for pk in due:
        _each(pk, charge=True)
    return len(due)


def _each(pk: int, *, charge: bool) -> None:
    try:
        extension = Extension.objects.select_related("customer").get(pk=pk)
        # A bulk job: its Stripe writes share the write rate with every worker (billing.ratelimit).
        with gateway.paced():
            if not charge:
                _grant(extension, requested_by=None)
                return
            change = changes.request(
                customer=extension.customer,
                kind=CHARGE,
                params=ExtensionParams(extension=pk),
                requested_by=None,
            )
        Extension.objects.filter(pk=pk, charge__isnull=True).update(charge=change)
    except Exception:
        logger.exception("extension %s: its %s failed", pk, "charge" if charge else "grant")
