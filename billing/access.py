"""A customer's access (full, grace, restricted, none), decided in one place for the portal and
for the product that uses it: `access_of()` for code, `requires_access` for the product's views,
and `{{ access }}` in its templates (the `context` processor).

The rule is billing.recovery.customer_access (pure, tested on its own); this module reads its facts
from the mirror and the open recovery cases, in two queries.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from billing import recovery, selectors
from billing.models import BillingCustomer, RecoveryCase, Subscription
from billing.recovery import Access, Level
from billing.state import subscription_state

__all__ = ["Access", "Level", "access_of", "context", "requires_access"]

View = Callable[..., HttpResponse]
# Decided once per request, however many templates and views ask.
_CACHE = "_billing_access"


def access_of(*, customer: BillingCustomer, now: dt.datetime | None = None) -> Access:
    now = now or timezone.now()
    cases = {
        case.subscription_stripe_id: case
        for case in RecoveryCase.objects.filter(customer=customer, status=RecoveryCase.Status.OPEN).order_by(
            "-opened_at"
        )
    }
    facts = []
    for sub in Subscription.objects.filter(customer=customer).select_related("scheduled_price"):
        case = cases.get(sub.stripe_id)
        facts.append(
            recovery.SubscriptionFacts(
                stripe_id=sub.stripe_id,
                phase=subscription_state(subscription=sub, now=now).phase,
                paused_service=sub.status == Subscription.Status.PAUSED,
                case_id=case.pk if case else None,
                grace_ends_at=case.grace_ends_at if case else None,
                extended_until=case.extended_until if case else None,
            )
        )
    return recovery.customer_access(subscriptions=facts, now=now)


def _of_request(request: HttpRequest) -> Access:
    cached: Access | None = getattr(request, _CACHE, None)
    if cached is not None:
        return cached
    user = getattr(request, "user", None)
    customer = (
        selectors.customer_of_user(user_id=user.pk) if user is not None and user.is_authenticated else None
    )
    found = access_of(customer=customer) if customer is not None else Access(Level.NONE)
    setattr(request, _CACHE, found)
    return found


def requires_access(level: Level = Level.GRACE) -> Callable[[View], View]:
    """For the product's views: the view runs for a customer whose access is at least `level`
    (by default, grace counts: what was paid for goes on while a payment is being fixed); anyone
    else gets a page that says why and how to get it back (402)."""

    def decorate(view: View) -> View:
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            access = _of_request(request)
            if access.level < level:
                return render(request, "billing/access_restricted.html", {"access": access}, status=402)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def context(request: HttpRequest) -> dict[str, Any]:
    """`{{ access.name }}` ("full", "grace", "restricted", "none") and `{{ access.until }}` in any
    template, read only if the template uses it."""
    return {"access": SimpleLazyObject(lambda: _of_request(request))}
