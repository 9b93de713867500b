from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import get_script_prefix, reverse
from django.utils.functional import SimpleLazyObject

from billing import selectors
from portal.customers import customer_of

# The links every page's header and footer carry.
NAV = {
    "dashboard": "portal:dashboard",
    "cards": "portal:cards",
    "card_add": "portal:card_add",
    "plan": "portal:plan",
    "details": "portal:details",
    "invoices": "portal:invoices",
    "pause": "portal:pause",
    "messages": "portal:messages",
    "account": "account_email",
    "logout": "account_logout",
    "language": "portal:language",
    "set_language": "set_language",
}


def portal(request: HttpRequest) -> dict[str, Any]:
    return {
        "DEBUG": settings.DEBUG,
        "LANGUAGES": settings.LANGUAGES,
        "nav": _nav(get_script_prefix()),
        "notices": SimpleLazyObject(lambda: _notices(request)),
    }


def _notices(request: HttpRequest) -> selectors.Notices | None:
    """The open recovery case's banner and the unread count, on every page of a logged-in
    customer's (one query, made only if the page shows them)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    customer = customer_of(request)
    return selectors.notices(customer_id=customer.pk) if customer is not None else None


# Reversed once per process (and script prefix), not on every page: they take no arguments.
@functools.cache
def _nav(prefix: str) -> dict[str, str]:
    return {name: reverse(view) for name, view in NAV.items()}
