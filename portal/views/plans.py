"""The Plan page: the catalog with the current plan marked, a preview of each choice (fetched after
the page, from Stripe), and the confirm that charges exactly what the preview showed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from billing import changes, selectors
from billing.errors import BillingError, Refused
from billing.models import BillingChange, BillingCustomer, Price
from billing.money import format_money
from billing.plans import When
from billing.services import plans, subscriptions
from portal import previews
from portal.forms import (
    CardActionForm,
    PlanConfirmForm,
    PlanPreviewForm,
    PlanStartForm,
    SetupIntentForm,
    new_token,
)
from portal.views.common import bad_request, customer_view, found_or_404


@require_GET
@customer_view
def plan(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    return render(
        request, "portal/plan.html", {"page": selectors.plan_page(customer=customer), "token": new_token()}
    )


@require_GET
@customer_view
def plan_preview(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    """What a choice would charge, and the button that confirms it: a fragment for htmx, a page
    without JavaScript."""
    form = PlanPreviewForm(request.GET)
    if not form.is_valid():
        return bad_request(request, _("This choice of plan is not one we offer. Please choose again."))
    sub = found_or_404(selectors.plan_subscription(customer=customer))
    target = (
        Price.objects.select_related("tier")
        .filter(lookup_key=form.cleaned_data["price"], active=True, currency=sub.currency)
        .first()
    )
    context: dict[str, Any] = {
        "target": found_or_404(target),
        "when": form.cleaned_data["when"],
        "token": new_token(),
    }
    try:
        shown = plans.preview(
            customer=customer, subscription=sub, target=context["target"], when=When(context["when"])
        )
    except Refused as exc:
        context["refusal"] = str(exc)
    except BillingError:  # Stripe unreachable, or it could not answer this preview
        context["unavailable"] = True
    else:
        context.update(
            preview=shown,
            signed=previews.signed(preview=shown, customer=customer),
            scheduled=sub.scheduled_price,
        )
    template = "portal/partials/plan_preview.html" if request.htmx else "portal/plan_preview.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@require_POST
@customer_view
def plan_confirm(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = PlanConfirmForm(request.POST)
    shown = (
        previews.unsigned(value=form.data.get("preview", ""), customer=customer) if form.is_valid() else None
    )
    if shown is None:
        messages.error(request, _("This preview is out of date. Please choose your plan again."))
        return redirect("portal:plan")
    try:
        change = plans.plan_change(
            customer=customer, shown=shown, requested_by=request.user, key=form.cleaned_data["token"]
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:plan")
    if change.error_code == "preview_stale":
        messages.error(
            request,
            _("Your subscription changed after this preview was shown. Here is the plan as it is now."),
        )
        return redirect("portal:plan")
    return redirect("portal:change", change_id=change.pk)


@require_POST
@customer_view
def plan_schedule_cancel(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = CardActionForm(request.POST)
    if not form.is_valid():
        return bad_request(request, _("This page is out of date. Please reload it and try again."))
    sub = found_or_404(selectors.plan_subscription(customer=customer))
    try:
        change = plans.plan_schedule_cancel(
            customer=customer, subscription=sub, requested_by=request.user, key=form.cleaned_data["token"]
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:plan")
    return redirect("portal:change", change_id=change.pk)


# --------------------------------------------------------------------------- starting a subscription


@require_GET
@customer_view
def plan_start(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    """What starting a subscription to the chosen plan charges, and the card that pays it: the
    default card if the customer has one (or another), else the card form."""
    form = PlanPreviewForm({"price": request.GET.get("price", ""), "when": "now"})
    try:
        if not form.is_valid():
            raise Refused(_("This plan can't be started here. Please choose one below."))
        price = subscriptions.startable(customer=customer, lookup_key=form.cleaned_data["price"])
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:plan")
    card = selectors.default_card(customer=customer)
    new_card = card is None or request.GET.get("card") == "new"
    context = {
        "price": price,
        "card": None if new_card else card,
        "token": new_token(),
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        # One per page view: a double click reuses the same SetupIntent (idempotency key).
        "attempt": new_token(),
        "return_url": request.build_absolute_uri(
            f"{reverse('portal:plan_start_return')}?{urlencode({'price': price.lookup_key})}"
        ),
    }
    context["hidden"] = {"price": price.lookup_key, "token": context["token"]}
    return render(request, "portal/plan_start.html", context)


@require_POST
@customer_view
def plan_start_confirm(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = PlanStartForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("We could not read your choice. Please choose your plan again."))
        return redirect("portal:plan")
    setup_intent = form.cleaned_data["setup_intent"] or None
    earlier = subscriptions.submitted_start(
        customer=customer, setup_intent_id=setup_intent, key=form.cleaned_data["token"]
    )
    if earlier is not None:
        # Posted again (a double click, the bank's return page): the start it made.
        return _after_start(request, earlier)
    try:
        change = subscriptions.subscription_start(
            customer=customer,
            lookup_key=form.cleaned_data["price"],
            setup_intent_id=setup_intent,
            requested_by=request.user,
            key=form.cleaned_data["token"],
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:plan")
    return _after_start(request, change)


def _after_start(request: HttpRequest, change: BillingChange) -> HttpResponse:
    """Started and paid: the dashboard, with the confirmation.  Anything else (a payment to
    approve or declined, Stripe not answering) is said on the change's page."""
    result = changes.result_of(change)
    if not isinstance(result, subscriptions.SubscriptionStartResult) or result.outcome != "paid":
        return redirect("portal:change", change_id=change.pk)
    amount = format_money(amount=result.amount, currency=result.currency, language=get_language())
    messages.success(
        request,
        _("Done: your subscription to %(plan)s has started. %(amount)s was charged.")
        % {"plan": result.plan, "amount": amount},
    )
    return redirect("portal:dashboard")


@require_GET
@customer_view
def plan_start_return(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    """Where the bank's page sends the customer back after 3-D Secure: a GET only shows a page;
    the page posts the confirmation."""
    form = SetupIntentForm({"setup_intent": request.GET.get("setup_intent", "")})
    ok = form.is_valid() and request.GET.get("redirect_status") == "succeeded"
    context = {
        "ok": ok,
        "action": reverse("portal:plan_start_confirm"),
        "retry": f"{reverse('portal:plan_start')}?{urlencode({'price': request.GET.get('price', '')})}",
        "hidden": {"setup_intent": form.data["setup_intent"], "price": request.GET.get("price", "")},
    }
    return render(request, "portal/card_return.html", context)
