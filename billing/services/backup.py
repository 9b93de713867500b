"""The backup card's use: when a renewal failed on the default card and the customer chose a
backup card with their consent, the next attempt charges the backup card, once per invoice.

Planned when the failure is recorded (billing.services.recovery `payment_failed`: the case's
`backup_due_at`, by billing/backup.py), charged by the beat job `recovery_due` (`backup_due`) as
the change kind `backup_charge`, so a charge Stripe could not take waits and is made once when it
is back.  Paid: the case closes as recovered by the backup card, and its one message says which
card paid and asks for the default card to be fixed.  Declined: the attempt is recorded, and the
case goes on as before (Stripe's retries of the default card, the reminders).

Never without the recorded consent, never twice for an invoice: the case records when its backup
was tried (under the customer's and the case's row locks), the change dedupes on the invoice, and
Stripe's idempotency key is the invoice's.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Literal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from pydantic import StringConstraints

from billing import backup, changes, gateway, sync
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.errors import InvalidRequest
from billing.models import BillingChange, BillingCustomer, PaymentMethod, RecoveryCase
from billing.services import mirrored, recovery

logger = logging.getLogger(__name__)

InvoiceId = Annotated[str, StringConstraints(pattern=r"^in_[A-Za-z0-9_]{1,200}$")]
PaymentMethodId = Annotated[str, StringConstraints(pattern=r"^pm_[A-Za-z0-9_]{1,200}$")]


class BackupChargeParams(ChangeParams):
    case: int
    invoice: InvoiceId
    payment_method: PaymentMethodId


class BackupChargeResult(ChangeResult):
    invoice: str
    amount: int
    currency: str
    brand: str
    last4: str
    # "already_paid": paid before this charge reached Stripe (nothing charged by it).
    outcome: Literal["paid", "declined", "already_paid"]
    decline_code: str = ""


@change_kind
class BackupCharge(ChangeKind[BackupChargeParams, BackupChargeResult]):
    """Pay a failed renewal's invoice with the customer's backup card (with their consent)."""

    name = "backup_charge"
    label = _("Pay with your backup card")
    template = "portal/changes/backup_charge.html"
    Params = BackupChargeParams
    Result = BackupChargeResult
    # The case's one message says it (on the invoice's key, whoever hears of the payment first:
    # this change or the `invoice.paid` webhook); a declined backup has none of its own, the
    # case's next reminder covers it.
    messages = (recovery.BACKUP_CARD_PAID,)
    # Once per invoice, however often the job runs.
    dedupe = ("invoice",)
    supersedes = False

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: BackupChargeParams
    ) -> BackupChargeResult:
        # The consent again, as things are now: the change may have waited out an outage while the
        # customer withdrew it or removed the card.
        if customer.backup_consent_at is None or customer.backup_payment_method_id != params.payment_method:
            raise InvalidRequest(
                "The backup card or the consent to charge it was withdrawn.", code="backup_withdrawn"
            )
        card = PaymentMethod.objects.filter(customer=customer, stripe_id=params.payment_method).first()
        if card is None:
            raise InvalidRequest("The card is no longer on the customer's account.", code="card_gone")
        payment = mirrored.pay_invoice(
            invoice_id=params.invoice,
            payment_method_id=card.stripe_id,
            idempotency_key=f"backup-{params.invoice}",
        )
        invoice, decline_code = payment.invoice, payment.decline_code
        # Off-session, nobody is there to approve a payment the bank wants: as good as declined.
        outcome = "declined" if payment.outcome == "action_required" else payment.outcome
        sync.invoice_from_stripe(customer=customer, data=invoice.raw, state_at=timezone.now())
        if outcome != "already_paid":
            recovery.record_payment(
                customer=customer,
                invoice_id=params.invoice,
                payment_method_id=card.stripe_id,
                change=change,
                outcome=outcome,
                decline_code=decline_code,
            )
        if invoice.status == "paid":
            recovery.settled(
                customer=customer,
                invoice_id=params.invoice,
                outcome=RecoveryCase.Outcome.BACKUP_CARD if outcome == "paid" else None,
                change=change if outcome == "paid" else None,
            )
            subscription_id = gateway.ref_id(
                ((invoice.raw.get("parent") or {}).get("subscription_details") or {}).get("subscription")
            )
            if subscription_id:
                mirrored.refreshed(customer=customer, subscription_id=subscription_id)
        return BackupChargeResult(
            invoice=params.invoice,
            amount=invoice.amount_paid if outcome != "declined" else invoice.amount_remaining,
            currency=invoice.currency or customer.currency,
            brand=card.brand,
            last4=card.last4,
            outcome=outcome,
            decline_code=decline_code,
        )

    def confirmation(
        self, *, change: BillingChange, params: BackupChargeParams, result: BackupChargeResult
    ) -> Confirmation | None:
        return None


CHARGE = changes.KINDS[BackupCharge.name]


def charge_backup(*, case: RecoveryCase, now: dt.datetime) -> BillingChange | None:
    """Charge the customer's backup card for the case's invoice now, if they agreed to it and it
    was not tried for this invoice yet; None when it may not be (no consent, no card, the card
    that failed, the networks' rules, already tried, the case closed).  Locks the customer's row,
    then the case's (the order webhooks use); the change is applied at once if Stripe answers, or
    waits for it."""
    with transaction.atomic():
        customer = BillingCustomer.objects.select_for_update().get(pk=case.customer_id)
        locked = RecoveryCase.objects.select_for_update(of=("self",)).filter(pk=case.pk).first()
        if locked is None:
            return None
        refusal = recovery.backup_refusal(case=locked, customer=customer)
        if refusal is not None:
            if refusal != backup.Refusal.ALREADY_TRIED and locked.backup_due_at is not None:
                locked.backup_due_at = None
                locked.save(update_fields=["backup_due_at"])
            logger.info("recovery case %s: the backup card is not charged (%s)", locked.pk, refusal)
            return None
        locked.backup_payment_method_id = customer.backup_payment_method_id
        locked.backup_tried_at = now
        locked.backup_due_at = None
        locked.save(update_fields=["backup_payment_method_id", "backup_tried_at", "backup_due_at"])
        params = BackupChargeParams(
            case=locked.pk, invoice=locked.invoice_stripe_id, payment_method=customer.backup_payment_method_id
        )
        change = changes.request(customer=customer, kind=CHARGE, params=params, requested_by=None)
    logger.info("recovery case %s: backup card charged (change %s, %s)", case.pk, change.pk, change.status)
    return change


def backup_due(*, now: dt.datetime, limit: int) -> int:
    """The backup charges whose time has come, each on its own: one failing never holds up the
    rest.  Returns how many cases were looked at."""
    ids = list(
        RecoveryCase.objects.filter(
            status=RecoveryCase.Status.OPEN,
            backup_due_at__lte=now,
            backup_tried_at__isnull=True,
            # While the customer has more time to pay, the agreed date tries the backup card.
            held_since__isnull=True,
        )
        .order_by("backup_due_at")
        .values_list("pk", flat=True)[:limit]
    )
    for case in RecoveryCase.objects.filter(pk__in=ids).order_by("backup_due_at"):
        try:
            # A bulk job: its Stripe writes share the write rate with every worker.
            with gateway.paced():
                charge_backup(case=case, now=now)
        except Exception:
            logger.exception("recovery case %s: its backup charge failed", case.pk)
    return len(ids)


def planned(*, case: RecoveryCase) -> PaymentMethod | None:
    """The backup card a case will charge (for its fix page), if one is planned."""
    if case.status != RecoveryCase.Status.OPEN or case.backup_due_at is None or case.backup_tried_at:
        return None
    return PaymentMethod.objects.filter(
        customer_id=case.customer_id, stripe_id=case.backup_payment_method_id
    ).first()
