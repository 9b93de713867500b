from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import get_script_prefix, reverse

# The links every page's header and footer carry.
NAV = {
    "dashboard": "portal:dashboard",
    "cards": "portal:cards",
    "card_add": "portal:card_add",
    "plan": "portal:plan",
    "details": "portal:details",
    "invoices": "portal:invoices",
    "pause": "portal:pause",
    "account": "account_email",
    "logout": "account_logout",
    "language": "portal:language",
    "set_language": "set_language",
}


def portal(request: HttpRequest) -> dict[str, Any]:
    return {"DEBUG": settings.DEBUG, "LANGUAGES": settings.LANGUAGES, "nav": _nav(get_script_prefix())}


# Reversed once per process (and script prefix), not on every page: they take no arguments.
@functools.cache
def _nav(prefix: str) -> dict[str, str]:
    return {name: reverse(view) for name, view in NAV.items()}
