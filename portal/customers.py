"""Whom a request acts for, decided in one place: the logged-in user's billing customer (and,
with the recovery engine, the one a signed deep link names).  Looking it up never creates one: a
login without a billing customer (staff, say) simply has none."""

from __future__ import annotations

from django.http import HttpRequest

from billing import selectors
from billing.models import BillingCustomer

_CACHE = "_portal_customer"


def customer_of(request: HttpRequest) -> BillingCustomer | None:
    if hasattr(request, _CACHE):
        found: BillingCustomer | None = getattr(request, _CACHE)
        return found
    user = getattr(request, "user", None)
    customer = None
    if user is not None and user.is_authenticated:
        customer = selectors.customer_of_user(user_id=user.pk)
    setattr(request, _CACHE, customer)
    return customer
