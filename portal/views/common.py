"""What every portal view needs: a logged-in user with a billing customer, and only theirs; or,
for the few views a deep link opens, the customer the link names, for its action only."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone, translation

from billing.models import BillingCustomer
from billing.money import customer_zone
from portal.customers import Grant, customer_of, grant_of, link_customer

View = Callable[..., HttpResponse]
T = TypeVar("T")
# Whether a deep link's grant lets this view run with these URL arguments.
LinkRule = Callable[[Grant, dict[str, Any]], bool]


def customer_view(view: View) -> View:
    """Login required; the view receives `customer` (the request's, and only theirs).  A login
    without a billing customer gets a page that says so, and nothing is created for it."""

    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        customer = customer_of(request)
        if customer is None:
            return render(request, "portal/no_customer.html", status=403)
        return view(request, *args, customer=customer, **kwargs)

    return wrapper


def link_view(rule: LinkRule) -> Callable[[View], View]:
    """As customer_view for a logged-in customer; without a login, the customer a deep link's
    button opened this browser for, if `rule` says the link covers this view and its arguments.
    Anything else asks for a login, as every other page does."""

    def decorate(view: View) -> View:
        logged_in = customer_view(view)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.user.is_authenticated:
                return logged_in(request, *args, **kwargs)
            grant = grant_of(request)
            customer = link_customer(request, grant=grant) if grant and rule(grant, kwargs) else None
            if customer is None:
                return redirect_to_login(request.get_full_path())
            with speaking_to(customer):
                return view(request, *args, customer=customer, **kwargs)

        return wrapper

    return decorate


@contextlib.contextmanager
def speaking_to(customer: BillingCustomer) -> Iterator[None]:
    """The customer's language and time zone, for a page a deep link opened (no login, so the
    middleware that does this for logged-in customers did not)."""
    with (
        translation.override(customer.language or None),
        timezone.override(customer_zone(customer.time_zone)),
    ):
        yield


def bad_request(request: HttpRequest, message: str) -> HttpResponse:
    """A request the portal's own pages never send (edited, or replayed): say what is wrong."""
    return render(request, "portal/bad_request.html", {"message": message}, status=400)


def found_or_404(found: T | None) -> T:
    """What a selector found for the customer, or "not found" (someone else's, or nothing)."""
    if found is None:
        raise Http404
    return found
