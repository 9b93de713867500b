from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from billing import changes, selectors
from billing.errors import BillingError, Refused, StripeUnavailable
from billing.models import BillingChange, BillingCustomer, PaymentMethod
from billing.services import cards
from portal import customers
from portal.forms import AttemptForm, BackupForm, CardActionForm, SetupIntentForm, new_token
from portal.views.common import View, bad_request, customer_view, found_or_404, link_view


def _after_change(change: BillingChange) -> HttpResponse:
    return redirect("portal:change", change_id=change.pk)


@require_GET
@customer_view
def card_list(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    return render(
        request, "portal/cards.html", {"view": selectors.dashboard(customer=customer), "token": new_token()}
    )


@require_GET
@link_view(customers.updates_card)
def card_add(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    context = {
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "currency": customer.currency,
        # One per page view: a double click reuses the same SetupIntent (idempotency key).
        "attempt": new_token(),
        "open_invoices": selectors.open_invoices(customer=customer),
        # Where the bank's page sends the customer back after 3-D Secure.
        "return_url": request.build_absolute_uri(reverse("portal:card_return")),
        "hidden": {},
    }
    return render(request, "portal/card_add.html", context)


@require_POST
@link_view(customers.updates_card)
def card_setup(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = AttemptForm(request.POST)
    if not form.is_valid():
        return JsonResponse(
            {"error": _("This page is out of date. Please reload it and try again.")}, status=400
        )
    try:
        client_secret = cards.card_setup_start(customer=customer, attempt=form.cleaned_data["attempt"])
    except StripeUnavailable:
        return JsonResponse(
            {"error": _("We can't reach our payment provider right now. Please try again in a minute.")},
            status=503,
        )
    except BillingError:
        return JsonResponse(
            {
                "error": _(
                    "Our payment provider could not start adding your card. Please try again, or contact us."
                )
            },
            status=502,
        )
    return JsonResponse({"client_secret": client_secret})


@require_POST
@link_view(customers.updates_card)
def card_confirm(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = SetupIntentForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("We could not read the card confirmation. Please add the card again."))
        return redirect("portal:card_add")
    change = cards.card_add(
        customer=customer, setup_intent_id=form.cleaned_data["setup_intent"], requested_by=request.user
    )
    customers.link_used(request, change=change)
    return _after_change(change)


@require_GET
@link_view(customers.updates_card)
def card_return(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    """Where the bank's page sends the customer back after 3-D Secure: a GET only shows a page;
    the page posts the confirmation."""
    form = SetupIntentForm({"setup_intent": request.GET.get("setup_intent", "")})
    context = {
        "ok": form.is_valid() and request.GET.get("redirect_status") == "succeeded",
        "action": reverse("portal:card_confirm"),
        "retry": reverse("portal:card_add"),
        "hidden": {"setup_intent": form.data["setup_intent"]},
    }
    return render(request, "portal/card_return.html", context)


Act = Callable[[HttpRequest, BillingCustomer, PaymentMethod, dict[str, Any]], BillingChange]


def _card_action(*, form_class: type[CardActionForm], kind: changes.ChangeKind[Any, Any], act: Act) -> View:
    """A view that makes one change to one of the customer's cards."""

    @require_POST
    @customer_view
    def view(request: HttpRequest, card_id: int, *, customer: BillingCustomer) -> HttpResponse:
        form = form_class(request.POST)
        if not form.is_valid():
            # Only an edited or replayed request gets here: our pages send a valid token.
            return bad_request(request, _("This page is out of date. Please reload it and try again."))
        # The same submit again (a double click, a reload) shows the change it made, even once the
        # card it was about is gone.
        earlier = changes.submitted(customer=customer, kind=kind, key=form.cleaned_data["token"])
        if earlier is not None:
            return _after_change(earlier)
        card = found_or_404(selectors.card_for(customer=customer, card_id=card_id))
        try:
            change = act(request, customer, card, form.cleaned_data)
        except Refused as refusal:
            messages.error(request, str(refusal))
            return redirect("portal:cards")
        return _after_change(change)

    return view


card_default = _card_action(
    form_class=CardActionForm,
    kind=cards.SET_DEFAULT,
    act=lambda request, customer, card, data: cards.card_set_default(
        customer=customer, card=card, requested_by=request.user, key=data["token"]
    ),
)
card_backup = _card_action(
    form_class=BackupForm,
    kind=cards.SET_BACKUP,
    act=lambda request, customer, card, data: cards.card_set_backup(
        customer=customer, card=card, consent=data["consent"], requested_by=request.user, key=data["token"]
    ),
)
card_remove = _card_action(
    form_class=CardActionForm,
    kind=cards.REMOVE,
    act=lambda request, customer, card, data: cards.card_remove(
        customer=customer, card=card, requested_by=request.user, key=data["token"]
    ),
)
