from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import selectors
from billing.models import BillingCustomer
from portal.views.common import customer_view


@require_GET
@customer_view
def dashboard(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    return render(
        request, "portal/dashboard.html", {"view": selectors.dashboard(customer=customer).read_all()}
    )
