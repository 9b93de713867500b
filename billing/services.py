"""Every write: check policy → record a BillingChange → apply it through the gateway.

A change is committed before Stripe hears of it.  It is applied inline right after the
commit when Stripe answers; when Stripe can't be reached it stays pending and a worker
tries again (billing.tasks), always with idempotency keys derived from the change's id,
so it is applied once however many times it is tried.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from billing import gateway, notify, policy, selectors, sync
from billing.errors import ActionRequired, BillingError, CardDeclined, InvalidRequest, StripeUnavailable
from billing.models import BillingChange, BillingCustomer, PaymentMethod

logger = logging.getLogger(__name__)

Kind = BillingChange.Kind
Status = BillingChange.Status


# Who asked for a change: the customer's user, staff, or nobody (a job).
Actor = AbstractBaseUser | AnonymousUser | None


class Refused(Exception):
    """A change that policy does not allow; the message is for the customer."""


# --------------------------------------------------------------------------- customers


def customer_for_user(*, user: AbstractBaseUser, email: str = "", language: str = "") -> BillingCustomer:
    customer, _created = BillingCustomer.objects.get_or_create(
        user_id=user.pk, defaults={"email": email, "language": language or "en"}
    )
    return customer


def customer_set_language(*, customer: BillingCustomer, language: str) -> None:
    customer.language = language
    customer.save(update_fields=["language"])


def ensure_stripe_customer(*, customer: BillingCustomer) -> str:
    """The customer's Stripe id, creating the Stripe customer the first time (idempotently)."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    created = gateway.customer_create(
        email=customer.email,
        name=customer.name,
        language=customer.language,
        metadata={"portal_customer": str(customer.pk)},
        idempotency_key=f"customer-{customer.pk}-create",
    )
    BillingCustomer.objects.filter(pk=customer.pk, stripe_customer_id__isnull=True).update(
        stripe_customer_id=created["id"]
    )
    customer.refresh_from_db(fields=["stripe_customer_id"])
    assert customer.stripe_customer_id
    return customer.stripe_customer_id


# --------------------------------------------------------------------------- cards


def card_setup_start(*, customer: BillingCustomer, attempt: str) -> str:
    """A SetupIntent for the Payment Element; returns its client secret.  `attempt` (one per
    page view) makes a double submit reuse the same SetupIntent."""
    stripe_id = ensure_stripe_customer(customer=customer)
    intent = gateway.setup_intent_create(
        customer_id=stripe_id, idempotency_key=f"setup-{customer.pk}-{attempt}"
    )
    return str(intent["client_secret"])


def card_add(*, customer: BillingCustomer, setup_intent_id: str, requested_by: Actor) -> BillingChange:
    if not setup_intent_id.startswith("seti_"):
        raise Refused("invalid setup intent")
    return _request(
        customer=customer,
        kind=Kind.CARD_ADD,
        params={"setup_intent": setup_intent_id},
        requested_by=requested_by,
        dedupe={"setup_intent": setup_intent_id},
    )


def card_set_default(*, customer: BillingCustomer, card: PaymentMethod, requested_by: Actor) -> BillingChange:
    refusal = policy.default_refusal(customer=customer, card=card, today=timezone.now().date())
    if refusal:
        raise Refused(refusal)
    return _request(
        customer=customer,
        kind=Kind.CARD_SET_DEFAULT,
        params={"payment_method": card.stripe_id},
        requested_by=requested_by,
    )


def card_set_backup(
    *, customer: BillingCustomer, card: PaymentMethod, consent: bool, requested_by: Actor
) -> BillingChange:
    refusal = policy.backup_refusal(customer=customer, card=card, consent=consent)
    if refusal:
        raise Refused(refusal)
    return _request(
        customer=customer,
        kind=Kind.CARD_SET_BACKUP,
        params={"payment_method": card.stripe_id, "consent_at": timezone.now().isoformat()},
        requested_by=requested_by,
    )


def card_remove(*, customer: BillingCustomer, card: PaymentMethod, requested_by: Actor) -> BillingChange:
    live = customer.subscriptions.filter(status__in=policy.LIVE_SUBSCRIPTION_STATUSES).exists()
    refusal = policy.card_removal_refusal(customer=customer, card=card, live_subscription=live)
    if refusal:
        raise Refused(refusal)
    return _request(
        customer=customer,
        kind=Kind.CARD_REMOVE,
        params={"payment_method": card.stripe_id},
        requested_by=requested_by,
    )


# --------------------------------------------------------------------------- changes


def _request(
    *,
    customer: BillingCustomer,
    kind: str,
    params: dict[str, Any],
    requested_by: Actor,
    dedupe: dict[str, Any] | None = None,
) -> BillingChange:
    """Record the change, then try it at once; a double submit of the same thing is one change."""
    with transaction.atomic():
        if dedupe is not None:
            # The customer's row lock makes two simultaneous submits find one another; key lookups
            # (not `params__contains`) because SQLite has no JSON containment.
            BillingCustomer.objects.select_for_update().filter(pk=customer.pk).first()
            found = BillingChange.objects.filter(
                customer=customer, kind=kind, **{f"params__{key}": value for key, value in dedupe.items()}
            ).first()
            if found:
                return found
        change = BillingChange.objects.create(
            customer=customer,
            kind=kind,
            params=params,
            requested_by_id=requested_by.pk if requested_by is not None else None,
            next_attempt_at=timezone.now(),
        )
    apply_change(change_id=change.pk)
    change.refresh_from_db()
    if change.status == Status.PENDING:
        from billing import tasks  # the task module imports this one

        tasks.enqueue_change(change=change)
    return change


def apply_change(*, change_id: Any) -> None:
    """Apply one pending change.  Safe to call any number of times, from anywhere, concurrently:
    the change's row lock makes one caller do the work, its status makes later callers no-ops,
    and Stripe's idempotency keys make a repeated request after a crash a replay."""
    customer_id = BillingChange.objects.filter(pk=change_id).values_list("customer_id", flat=True).first()
    if customer_id is None:
        return
    try:
        with transaction.atomic():
            # Customer first, then the change: the same order as webhook processing and rechecks,
            # so concurrent work on one customer queues up instead of deadlocking.
            customer = BillingCustomer.objects.select_for_update().get(pk=customer_id)
            change = BillingChange.objects.select_for_update().filter(pk=change_id).first()
            if change is None or change.status != Status.PENDING:
                return
            change.customer = customer
            change.attempts += 1
            result = _APPLY[Kind(change.kind)](change)
            change.status = Status.APPLIED
            change.result = result
            change.applied_at = timezone.now()
            change.error_code = change.error_message = ""
            change.next_attempt_at = None
            change.save()
            notify.change_applied(change=change)
    except StripeUnavailable as exc:
        _change_waits(change_id=change_id, error=exc)
    except ActionRequired as exc:
        _change_ends(
            change_id=change_id,
            status=Status.ACTION_REQUIRED,
            error=exc,
            result={"client_secret": exc.client_secret, "intent": exc.intent_id},
        )
    except (CardDeclined, InvalidRequest, BillingError) as exc:
        _change_ends(change_id=change_id, status=Status.FAILED, error=exc, result=_declined_result(exc))


def _declined_result(exc: BillingError) -> dict[str, Any]:
    return {"decline_code": exc.decline_code} if isinstance(exc, CardDeclined) else {}


def _change_waits(*, change_id: Any, error: BillingError) -> None:
    with transaction.atomic():
        change = BillingChange.objects.select_for_update().get(pk=change_id)
        change.attempts += 1
        change.error_code = error.code
        change.error_message = error.message[:2000]
        change.next_attempt_at = timezone.now() + policy.change_retry_delay(attempts=change.attempts)
        change.save(update_fields=["attempts", "error_code", "error_message", "next_attempt_at"])
    logger.warning("change %s waits: Stripe unavailable (%s)", change_id, error.code)


def _change_ends(*, change_id: Any, status: str, error: BillingError, result: dict[str, Any]) -> None:
    with transaction.atomic():
        change = BillingChange.objects.select_for_update().get(pk=change_id)
        if change.status != Status.PENDING:
            return
        change.attempts += 1
        change.status = status
        change.error_code = error.code
        change.error_message = error.message[:2000]
        change.result = {**change.result, **result}
        change.next_attempt_at = None
        change.save()
    logger.info("change %s ended %s: %s", change_id, status, error.code)


def change_payment_recheck(*, change: BillingChange) -> None:
    """After the customer approved (or abandoned) the bank's check of the retried invoice in the
    browser, read the invoice again and record how it ended."""
    invoice_id = change.result.get("invoice")
    if change.result.get("invoice_status") != "action_required" or not invoice_id:
        return
    with transaction.atomic():
        customer = BillingCustomer.objects.select_for_update().get(pk=change.customer_id)
        data = gateway.invoice_retrieve(invoice_id=invoice_id)
        sync.invoice_from_stripe(customer=customer, data=data, state_at=timezone.now())
        locked = BillingChange.objects.select_for_update().get(pk=change.pk)
        if data.get("status") == "paid":
            locked.result = {**locked.result, "invoice_status": "paid"}
            locked.save(update_fields=["result"])
    change.refresh_from_db()


# --------------------------------------------------------------------------- how each kind is applied


def _sync_from(
    change: BillingChange, *, card: dict[str, Any] | None = None, customer_data: dict[str, Any] | None = None
) -> None:
    now = timezone.now()
    if card is not None:
        sync.payment_method_from_stripe(customer=change.customer, data=card, state_at=now)
    if customer_data is not None:
        sync.customer_from_stripe(customer=change.customer, data=customer_data, state_at=now)


def _make_default(change: BillingChange, *, payment_method_id: str) -> dict[str, Any]:
    """Default on the customer and on every live subscription: Stripe charges a subscription's own
    default first, so setting it only on the customer would leave retries on the old card."""
    customer = change.customer
    assert customer.stripe_customer_id
    updated = gateway.customer_set_default_payment_method(
        customer_id=customer.stripe_customer_id,
        payment_method_id=payment_method_id,
        idempotency_key=change.idempotency_key("customer-default"),
    )
    _sync_from(change, customer_data=updated)
    subscriptions = list(customer.subscriptions.filter(status__in=policy.LIVE_SUBSCRIPTION_STATUSES))
    for sub in subscriptions:
        data = gateway.subscription_set_default_payment_method(
            subscription_id=sub.stripe_id,
            payment_method_id=payment_method_id,
            idempotency_key=change.idempotency_key(f"subscription-default-{sub.stripe_id}"),
        )
        sync.subscription_from_stripe(customer=customer, data=data, state_at=timezone.now())
    return {"payment_method": payment_method_id, "subscriptions": [s.stripe_id for s in subscriptions]}


def _apply_card_add(change: BillingChange) -> dict[str, Any]:
    customer = change.customer
    intent = gateway.setup_intent_retrieve(setup_intent_id=change.params["setup_intent"])
    intent_customer = intent.get("customer")
    if isinstance(intent_customer, dict):
        intent_customer = intent_customer.get("id")
    if intent_customer != customer.stripe_customer_id:
        raise InvalidRequest("This card setup belongs to someone else.", code="setup_intent_foreign")
    if intent.get("status") != "succeeded":
        raise InvalidRequest("The card was not confirmed.", code=f"setup_intent_{intent.get('status')}")
    pm_ref = intent.get("payment_method")
    pm_id = str(pm_ref.get("id") if isinstance(pm_ref, dict) else pm_ref)
    card = gateway.payment_method_retrieve(payment_method_id=pm_id)
    _sync_from(change, card=card)
    result = _make_default(change, payment_method_id=pm_id)
    brand = (card.get("card") or {}).get("brand", "")
    last4 = (card.get("card") or {}).get("last4", "")
    result.update({"brand": brand, "last4": last4})
    # An unpaid invoice is tried again at once with the new card, and the customer is told how it went.
    unpaid = selectors.open_invoices(customer=customer)
    open_invoice = unpaid[0] if unpaid else None
    if open_invoice is not None:
        result["invoice"] = open_invoice.stripe_id
        result["invoice_amount"] = open_invoice.amount_remaining
        result["invoice_currency"] = open_invoice.currency
        try:
            paid = gateway.invoice_pay(
                invoice_id=open_invoice.stripe_id,
                payment_method_id=pm_id,
                idempotency_key=change.idempotency_key(f"pay-{open_invoice.stripe_id}"),
            )
        except CardDeclined as exc:
            result.update({"invoice_status": "declined", "decline_code": exc.decline_code or exc.code})
        except ActionRequired as exc:
            result.update({"invoice_status": "action_required", "client_secret": exc.client_secret})
        else:
            sync.invoice_from_stripe(customer=customer, data=paid, state_at=timezone.now())
            result["invoice_status"] = paid.get("status", "")
    return result


def _apply_card_set_default(change: BillingChange) -> dict[str, Any]:
    card = PaymentMethod.objects.get(customer=change.customer, stripe_id=change.params["payment_method"])
    result = _make_default(change, payment_method_id=card.stripe_id)
    result.update({"brand": card.brand, "last4": card.last4})
    return result


def _apply_card_set_backup(change: BillingChange) -> dict[str, Any]:
    customer = change.customer
    card = PaymentMethod.objects.get(customer=customer, stripe_id=change.params["payment_method"])
    assert customer.stripe_customer_id
    updated = gateway.customer_update_metadata(
        customer_id=customer.stripe_customer_id,
        metadata={"backup_payment_method": card.stripe_id, "backup_consent_at": change.params["consent_at"]},
        idempotency_key=change.idempotency_key("backup"),
    )
    _sync_from(change, customer_data=updated)
    customer.backup_consent_at = dt.datetime.fromisoformat(change.params["consent_at"])
    customer.save(update_fields=["backup_consent_at"])
    return {"payment_method": card.stripe_id, "brand": card.brand, "last4": card.last4}


def _apply_card_remove(change: BillingChange) -> dict[str, Any]:
    customer = change.customer
    card = PaymentMethod.objects.filter(customer=customer, stripe_id=change.params["payment_method"]).first()
    detached = gateway.payment_method_detach(
        payment_method_id=change.params["payment_method"], idempotency_key=change.idempotency_key("detach")
    )
    result = {
        "payment_method": detached["id"],
        "brand": card.brand if card else "",
        "last4": card.last4 if card else "",
    }
    PaymentMethod.objects.filter(customer=customer, stripe_id=detached["id"]).delete()
    if customer.backup_payment_method_id == detached["id"]:
        assert customer.stripe_customer_id
        updated = gateway.customer_update_metadata(
            customer_id=customer.stripe_customer_id,
            metadata={"backup_payment_method": "", "backup_consent_at": ""},
            idempotency_key=change.idempotency_key("backup-clear"),
        )
        _sync_from(change, customer_data=updated)
    return result


_APPLY = {
    Kind.CARD_ADD: _apply_card_add,
    Kind.CARD_SET_DEFAULT: _apply_card_set_default,
    Kind.CARD_SET_BACKUP: _apply_card_set_backup,
    Kind.CARD_REMOVE: _apply_card_remove,
}


def apply_due_changes(*, now: dt.datetime | None = None, limit: int = 100) -> int:
    """Apply pending changes whose next try is due (the safety net behind the per-change task)."""
    now = now or timezone.now()
    due = list(
        BillingChange.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for change_id in due:
        apply_change(change_id=change_id)
    return len(due)
