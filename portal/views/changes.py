from __future__ import annotations

import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from billing import changes, selectors
from billing.errors import BillingError
from billing.models import BillingChange, BillingCustomer
from billing.services import approvals
from portal import customers
from portal.views.common import found_or_404, link_view


def _change(customer: BillingCustomer, change_id: uuid.UUID) -> BillingChange:
    return found_or_404(selectors.change_for(customer=customer, change_id=change_id))


@require_GET
@link_view(customers.made_change)
def change_detail(request: HttpRequest, change_id: uuid.UUID, *, customer: BillingCustomer) -> HttpResponse:
    """The change's state; while pending, the htmx partial polls this URL until Stripe has it."""
    view = selectors.change_view(change=_change(customer, change_id))
    context = {
        "view": view,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
    }
    template = "portal/partials/change.html" if request.htmx else "portal/change.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@require_POST
@link_view(customers.made_change)
def change_retry(request: HttpRequest, change_id: uuid.UUID, *, customer: BillingCustomer) -> HttpResponse:
    """Try a pending change now instead of after its wait."""
    changes.retry_now(change=_change(customer, change_id))
    return redirect("portal:change", change_id=change_id)


@require_POST
@link_view(customers.made_change)
def change_approve(request: HttpRequest, change_id: uuid.UUID, *, customer: BillingCustomer) -> HttpResponse:
    """What the browser needs to show the bank's check for a payment the customer approves now."""
    change = _change(customer, change_id)
    try:
        secret = approvals.payment_secret(change=change)
    except BillingError:
        secret = ""
    if not secret:
        return JsonResponse(
            {"error": _("This payment can't be approved now. Please reload the page.")}, status=409
        )
    return JsonResponse({"client_secret": secret})


@require_POST
@link_view(customers.made_change)
def change_recheck(request: HttpRequest, change_id: uuid.UUID, *, customer: BillingCustomer) -> HttpResponse:
    change = _change(customer, change_id)
    try:
        approvals.payment_recheck(change=change)
    except BillingError:
        pass  # The page still says the payment waits; the webhook will bring the outcome.
    return redirect("portal:change", change_id=change.pk)
