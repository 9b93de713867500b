from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from billing import services
from billing.models import BillingCustomer
from portal.forms import LanguageForm
from portal.views.common import customer_view


@require_POST
@customer_view
def language(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = LanguageForm(request.POST)
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    response = redirect(target)
    if form.is_valid():
        code = form.cleaned_data["language"]
        services.customer_set_language(customer=customer, language=code)
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, code, samesite="Lax", secure=request.is_secure())
    return response
