"""Speak the customer's saved language once they are logged in (LocaleMiddleware guesses before)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import translation

from billing.models import BillingCustomer


class CustomerLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            customer = BillingCustomer.objects.filter(user_id=user.pk).first()
            request.customer = customer  # type: ignore[attr-defined]
            if customer is not None and customer.language:
                translation.activate(customer.language)
                request.LANGUAGE_CODE = customer.language
        return self.get_response(request)
