"""Per-request context: the logged-in customer's language and time zone, and the
Content-Security-Policy with the Stripe.js origins in use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone, translation

from billing.money import customer_zone
from portal.customers import customer_of

# What Stripe documents Stripe.js to need: its script and frames, its API, the 3-D Secure frames.
STRIPE_ORIGINS = (
    "https://js.stripe.com",
    "https://*.js.stripe.com",
    "https://api.stripe.com",
    "https://hooks.stripe.com",
)


class CustomerMiddleware:
    """Speak the customer's saved language and show their time zone once they are logged in
    (LocaleMiddleware guesses the language before)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        customer = customer_of(request)
        if customer is not None and customer.language:
            translation.activate(customer.language)
            request.LANGUAGE_CODE = customer.language
        zone = customer_zone(customer.time_zone if customer is not None else "")
        with timezone.override(zone):
            return self.get_response(request)


def stripe_origins() -> list[str]:
    """The origins Stripe.js needs: the emulator's (offline), or Stripe's own hosts."""
    parts = urlsplit(settings.STRIPE_JS_URL)
    origin = f"{parts.scheme}://{parts.netloc}"
    return list(STRIPE_ORIGINS) if origin == "https://js.stripe.com" else [origin]


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with Stripe.js's origins added as settings name them when the
    response is made (tests and the demo point STRIPE_JS_URL at an emulator started at run time)."""

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if report_only:
            return parts
        stripe = stripe_origins()
        update: dict[str, Any] = dict(parts.update or {})
        for directive in ("script-src", "frame-src", "connect-src"):
            update[directive] = [*stripe, *(update.get(directive) or [])]
        parts.update = update
        return parts
