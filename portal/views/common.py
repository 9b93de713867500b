"""What every portal view needs: a logged-in user and their billing customer."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from billing import services
from billing.models import BillingCustomer

View = Callable[..., HttpResponse]


def customer_view(view: Callable[..., HttpResponse]) -> View:
    """Login required; the view receives `customer` (the request user's, and only theirs)."""

    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        customer: BillingCustomer | None = getattr(request, "customer", None)
        if customer is None:
            customer = services.customer_for_user(user=request.user, email=getattr(request.user, "email", ""))  # type: ignore[arg-type]
        return view(request, *args, customer=customer, **kwargs)

    return wrapper
