from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import selectors
from billing.models import BillingCustomer
from portal.forms import new_token
from portal.views.common import customer_view


@require_GET
@customer_view
def dashboard(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    context = {
        "view": selectors.dashboard(customer=customer).read_all(),
        # The form's one-time key for "Keep my subscription".
        "token": new_token(),
    }
    return render(request, "portal/dashboard.html", context)
