from __future__ import annotations

import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing import selectors, services
from billing.errors import BillingError
from billing.models import BillingCustomer
from portal.views.common import customer_view


@require_GET
@customer_view
def change_detail(request: HttpRequest, change_id: uuid.UUID, *, customer: BillingCustomer) -> HttpResponse:
    """The change's state; while pending, the htmx partial polls this URL until Stripe has it."""
    change = selectors.change_for(customer=customer, change_id=change_id)
    context = {
        "change": change,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
    }
    template = "portal/partials/change.html" if request.htmx else "portal/change.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@require_POST
@customer_view
def change_recheck(request: HttpRequest, change_id: uuid.UUID, *, customer: BillingCustomer) -> HttpResponse:
    change = selectors.change_for(customer=customer, change_id=change_id)
    try:
        services.change_payment_recheck(change=change)
    except BillingError:
        pass  # The page still says the payment waits; the webhook will bring the outcome.
    return redirect("portal:change", change_id=change.pk)
