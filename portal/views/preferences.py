from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from billing.models import BillingCustomer
from billing.services.customers import customer_set_language
from portal.forms import LanguageForm
from portal.views.common import customer_view


def safe_next(request: HttpRequest, target: str) -> str:
    """`target` if it is one of our own pages on this site, else the dashboard."""
    if (
        target.startswith("/")
        and target.isascii()
        and target.isprintable()
        and len(target) <= 2000
        and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        try:
            resolve(urlsplit(target).path)
        except Resolver404:
            pass
        else:
            return target
    return reverse("portal:dashboard")


@require_POST
@customer_view
def language(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = LanguageForm(request.POST)
    response = HttpResponseRedirect(safe_next(request, str(request.POST.get("next", ""))))
    if form.is_valid():
        code = form.cleaned_data["language"]
        customer_set_language(customer=customer, language=code)
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, code, samesite="Lax", secure=request.is_secure())
    return response
