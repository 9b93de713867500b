from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from billing import selectors, services
from billing.errors import BillingError
from billing.models import BillingChange, BillingCustomer
from portal.forms import BackupForm, SetupIntentForm
from portal.views.common import customer_view


def _after_change(request: HttpRequest, change: BillingChange) -> HttpResponse:
    return redirect("portal:change", change_id=change.pk)


@require_GET
@customer_view
def card_list(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    return render(
        request,
        "portal/cards.html",
        {"view": selectors.dashboard(customer=customer), "backup_form": BackupForm()},
    )


@require_GET
@customer_view
def card_add(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    context = {
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "currency": customer.currency,
        # One per page view: a double click reuses the same SetupIntent (idempotency key).
        "attempt": secrets.token_urlsafe(12),
        "open_invoices": selectors.open_invoices(customer=customer),
    }
    return render(request, "portal/card_add.html", context)


@require_POST
@customer_view
def card_setup(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    attempt = request.POST.get("attempt", "")[:40] or secrets.token_urlsafe(12)
    try:
        client_secret = services.card_setup_start(customer=customer, attempt=attempt)
    except BillingError:
        return JsonResponse(
            {"error": _("We can't reach our payment provider right now. Please try again in a minute.")},
            status=503,
        )
    return JsonResponse({"client_secret": client_secret})


@require_POST
@customer_view
def card_confirm(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = SetupIntentForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("We could not read the card confirmation. Please add the card again."))
        return redirect("portal:card_add")
    change = services.card_add(
        customer=customer,
        setup_intent_id=form.cleaned_data["setup_intent"],
        requested_by=request.user,
    )
    return _after_change(request, change)


@require_GET
@customer_view
def card_return(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    """Where the bank's page sends the customer back after 3-D Secure: a GET only shows a page;
    the page posts the confirmation."""
    form = SetupIntentForm({"setup_intent": request.GET.get("setup_intent", "")})
    return render(
        request,
        "portal/card_return.html",
        {"form": form, "ok": form.is_valid() and request.GET.get("redirect_status") == "succeeded"},
    )


def _card_action(request: HttpRequest, customer: BillingCustomer, card_id: int, action: str) -> HttpResponse:
    card = selectors.card_for(customer=customer, card_id=card_id)
    user = request.user
    try:
        if action == "default":
            change = services.card_set_default(customer=customer, card=card, requested_by=user)
        elif action == "remove":
            change = services.card_remove(customer=customer, card=card, requested_by=user)
        else:
            form = BackupForm(request.POST)
            consent = form.is_valid() and form.cleaned_data["consent"]
            change = services.card_set_backup(
                customer=customer, card=card, consent=consent, requested_by=user
            )
    except services.Refused as refusal:
        messages.error(request, str(refusal))
        return redirect(reverse("portal:cards"))
    return _after_change(request, change)


@require_POST
@customer_view
def card_default(request: HttpRequest, card_id: int, *, customer: BillingCustomer) -> HttpResponse:
    return _card_action(request, customer, card_id, "default")


@require_POST
@customer_view
def card_backup(request: HttpRequest, card_id: int, *, customer: BillingCustomer) -> HttpResponse:
    return _card_action(request, customer, card_id, "backup")


@require_POST
@customer_view
def card_remove(request: HttpRequest, card_id: int, *, customer: BillingCustomer) -> HttpResponse:
    return _card_action(request, customer, card_id, "remove")
