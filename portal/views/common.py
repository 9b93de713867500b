"""What every portal view needs: a logged-in user with a billing customer, and only theirs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from portal.customers import customer_of

View = Callable[..., HttpResponse]
T = TypeVar("T")


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


def bad_request(request: HttpRequest, message: str) -> HttpResponse:
    """A request the portal's own pages never send (edited, or replayed): say what is wrong."""
    return render(request, "portal/bad_request.html", {"message": message}, status=400)


def found_or_404(found: T | None) -> T:
    """What a selector found for the customer, or "not found" (someone else's, or nothing)."""
    if found is None:
        raise Http404
    return found
