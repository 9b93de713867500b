"""The billing customer: created with the login, and at Stripe the first time it is needed."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from billing import gateway
from billing.models import BillingCustomer


def customer_create(*, user: AbstractBaseUser, email: str = "", language: str = "") -> BillingCustomer:
    """The login's billing customer (made with the account, so pages never need to make one)."""
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
        stripe_customer_id=created.id
    )
    customer.refresh_from_db(fields=["stripe_customer_id"])
    assert customer.stripe_customer_id
    return customer.stripe_customer_id
