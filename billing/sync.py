"""Writing Stripe's state into the local mirror.

Every function here takes a Stripe object (a plain dict from the gateway) and the moment
it was read, and writes it only if it is newer than what the mirror holds.  Callers hold
the customer's row lock (`locked_customer`), so reads from Stripe and writes here are
serialised per customer and arrival order does not matter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing import gateway
from billing.models import BillingCustomer, Invoice, PaymentMethod, Price, Subscription

StripeDict = dict[str, Any]


def _ts(value: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC) if value else None


def locked_customer(*, stripe_customer_id: str) -> BillingCustomer | None:
    """The customer's row, locked until the end of the transaction (None if not ours)."""
    return BillingCustomer.objects.select_for_update().filter(stripe_customer_id=stripe_customer_id).first()


def customer_from_stripe(*, customer: BillingCustomer, data: StripeDict, state_at: dt.datetime) -> None:
    if customer.stripe_state_at and customer.stripe_state_at > state_at:
        return
    if data.get("deleted"):
        customer.default_payment_method_id = ""
    else:
        settings_ = data.get("invoice_settings") or {}
        customer.default_payment_method_id = gateway.ref_id(settings_.get("default_payment_method"))
        customer.delinquent = bool(data.get("delinquent"))
        customer.backup_payment_method_id = (data.get("metadata") or {}).get("backup_payment_method", "")
        # The billing email is where messages go: a Stripe customer without one keeps ours.
        customer.email = data.get("email") or customer.email
        customer.name = data.get("name") or ""
        address = data.get("address") or {}
        customer.address_line1 = address.get("line1") or ""
        customer.address_line2 = address.get("line2") or ""
        customer.address_postal_code = address.get("postal_code") or ""
        customer.address_city = address.get("city") or ""
        customer.address_country = address.get("country") or ""
    customer.stripe_state_at = state_at
    customer.save(
        update_fields=[
            "default_payment_method_id",
            "delinquent",
            "backup_payment_method_id",
            "email",
            "name",
            "address_line1",
            "address_line2",
            "address_postal_code",
            "address_city",
            "address_country",
            "stripe_state_at",
        ]
    )


def customer_tax_id(*, customer: BillingCustomer, stripe_id: str, value: str) -> None:
    """The customer's VAT number as Stripe now has it (a tax id, or none)."""
    customer.tax_id_stripe_id, customer.tax_id = stripe_id, value
    customer.save(update_fields=["tax_id_stripe_id", "tax_id"])


def subscription_from_stripe(*, customer: BillingCustomer, data: StripeDict, state_at: dt.datetime) -> None:
    existing = Subscription.objects.filter(stripe_id=data["id"]).first()
    if existing and existing.stripe_state_at > state_at:
        return
    items = (data.get("items") or {}).get("data") or []
    item = items[0] if items else {}
    price = item.get("price") or {}
    pause = data.get("pause_collection") or {}
    values: dict[str, Any] = {
        "customer": customer,
        "status": data["status"],
        "stripe_price_id": price.get("id", ""),
        "price": _price(price.get("id")),
        "quantity": item.get("quantity") or 1,
        "currency": data.get("currency") or price.get("currency") or customer.currency,
        "unit_amount": price.get("unit_amount") or 0,
        "current_period_start": _ts(item.get("current_period_start")),
        "current_period_end": _ts(item.get("current_period_end")),
        "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
        "cancel_at": _ts(data.get("cancel_at")),
        "canceled_at": _ts(data.get("canceled_at")),
        "ended_at": _ts(data.get("ended_at")),
        "trial_end": _ts(data.get("trial_end")),
        "pause_behavior": pause.get("behavior") or "",
        "pause_resumes_at": _ts(pause.get("resumes_at")) or _pause_resumes_at(data),
        "default_payment_method_id": gateway.ref_id(data.get("default_payment_method")),
        "latest_invoice_id": gateway.ref_id(data.get("latest_invoice")),
        "created": _ts(data.get("created")) or state_at,
        "stripe_state_at": state_at,
        **_pending(data),
        **_scheduled(data, existing, current_price=price.get("id")),
    }
    Subscription.objects.update_or_create(stripe_id=data["id"], defaults=values)


def _pause_resumes_at(data: StripeDict) -> dt.datetime | None:
    """The resume date the portal gave a paused subscription (billing.services.pauses)."""
    if data.get("status") != Subscription.Status.PAUSED:
        return None
    value = (data.get("metadata") or {}).get(gateway.PAUSE_RESUMES_AT) or ""
    return _ts(int(value)) if value.isdigit() else None


def _price(stripe_price_id: str | None) -> Price | None:
    return Price.objects.filter(stripe_price_id=stripe_price_id).first() if stripe_price_id else None


def _pending(data: StripeDict) -> dict[str, Any]:
    pending = data.get("pending_update") or {}
    items = pending.get("subscription_items") or []
    price = gateway.ref_id(items[0].get("price") if items else None)
    return {"pending_price": _price(price), "pending_expires_at": _ts(pending.get("expires_at"))}


def _scheduled(
    data: StripeDict, existing: Subscription | None, *, current_price: str | None
) -> dict[str, Any]:
    """The price a schedule moves the subscription to next, and when.  Read from the schedule when
    the subscription comes with it expanded (billing.gateway.subscription_retrieve); an answer
    naming the same schedule unexpanded (the one to another update) leaves what is known."""
    schedule = data.get("schedule")
    if not schedule:
        return {"schedule_id": "", "scheduled_price": None, "scheduled_at": None}
    if not isinstance(schedule, dict):
        if existing is not None and existing.schedule_id == schedule:
            return {}
        return {"schedule_id": str(schedule), "scheduled_price": None, "scheduled_at": None}
    upcoming = None
    if schedule.get("status") in ("active", "not_started"):
        end = ((schedule.get("current_phase") or {}).get("end_date")) or 0
        for phase in schedule.get("phases") or []:
            price = gateway.ref_id(((phase.get("items") or [{}])[0]).get("price"))
            if phase.get("start_date", 0) >= end and price and price != current_price:
                upcoming = (price, phase["start_date"])
                break
    return {
        "schedule_id": str(schedule.get("id") or ""),
        "scheduled_price": _price(upcoming[0]) if upcoming else None,
        "scheduled_at": _ts(upcoming[1]) if upcoming else None,
    }


def payment_method_from_stripe(
    *,
    customer: BillingCustomer,
    data: StripeDict,
    state_at: dt.datetime,
    refreshed_at: dt.datetime | None = None,
) -> None:
    """`refreshed_at`: the card updater gave Stripe this card's new details then
    (payment_method.automatically_updated); kept until it refreshes it again."""
    existing = PaymentMethod.objects.filter(stripe_id=data["id"]).first()
    if existing and existing.stripe_state_at > state_at:
        return
    if gateway.ref_id(data.get("customer")) != customer.stripe_customer_id or data.get("type") != "card":
        # Detached (or not a card): it is no longer one of the customer's cards.
        PaymentMethod.objects.filter(stripe_id=data["id"]).delete()
        return
    card = data.get("card") or {}
    refreshed = {"updated_automatically_at": refreshed_at} if refreshed_at is not None else {}
    PaymentMethod.objects.update_or_create(
        stripe_id=data["id"],
        defaults={
            **refreshed,
            "customer": customer,
            "brand": card.get("brand") or "card",
            "last4": card.get("last4") or "",
            "exp_month": card.get("exp_month") or 1,
            "exp_year": card.get("exp_year") or 1970,
            "funding": card.get("funding") or "",
            "country": card.get("country") or "",
            "created": _ts(data.get("created")) or state_at,
            "stripe_state_at": state_at,
        },
    )


def invoice_from_stripe(*, customer: BillingCustomer, data: StripeDict, state_at: dt.datetime) -> None:
    existing = Invoice.objects.filter(stripe_id=data["id"]).first()
    if existing and existing.stripe_state_at > state_at:
        return
    parent = data.get("parent") or {}
    sub_details = parent.get("subscription_details") or {}
    lines = ((data.get("lines") or {}).get("data")) or []
    period = (lines[0].get("period") if lines else None) or {}
    Invoice.objects.update_or_create(
        stripe_id=data["id"],
        defaults={
            "customer": customer,
            "subscription_stripe_id": gateway.ref_id(sub_details.get("subscription")),
            "number": data.get("number") or "",
            "status": data.get("status") or "draft",
            "currency": data.get("currency") or customer.currency,
            "total": data.get("total") or 0,
            "amount_due": data.get("amount_due") or 0,
            "amount_paid": data.get("amount_paid") or 0,
            "amount_remaining": data.get("amount_remaining") or 0,
            "attempt_count": data.get("attempt_count") or 0,
            "next_payment_attempt": _ts(data.get("next_payment_attempt")),
            "period_start": _ts(period.get("start")) or _ts(data.get("period_start")),
            "period_end": _ts(period.get("end")) or _ts(data.get("period_end")),
            "due_date": _ts(data.get("due_date")),
            "hosted_invoice_url": data.get("hosted_invoice_url") or "",
            "invoice_pdf": data.get("invoice_pdf") or "",
            "created": _ts(data.get("created")) or state_at,
            "stripe_state_at": state_at,
        },
    )


def reconcile_customer(*, customer_id: int) -> None:
    """Re-read everything of one customer from Stripe and make the mirror match, removing what
    Stripe no longer has (a detached card).  Catches anything a missed webhook left behind."""
    with transaction.atomic():
        customer = BillingCustomer.objects.select_for_update().get(pk=customer_id)
        if not customer.stripe_customer_id:
            return
        state_at = timezone.now()
        stripe_id = customer.stripe_customer_id
        customer_from_stripe(
            customer=customer, data=gateway.customer_retrieve(customer_id=stripe_id).raw, state_at=state_at
        )
        cards = list(gateway.payment_methods_list(customer_id=stripe_id))
        for card in cards:
            payment_method_from_stripe(customer=customer, data=card.raw, state_at=state_at)
        customer.payment_methods.exclude(stripe_id__in=[c.id for c in cards]).delete()
        for sub in gateway.subscriptions_list(customer_id=stripe_id):
            subscription_from_stripe(customer=customer, data=sub.raw, state_at=state_at)
        for invoice in gateway.invoices_list(customer_id=stripe_id):
            invoice_from_stripe(customer=customer, data=invoice.raw, state_at=state_at)
