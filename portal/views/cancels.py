"""Cancelling: a short survey, one honest alternative fitted to the reason (with its real price),
then the cancel at the end of the paid period, or the alternative instead; and the undo."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from billing.cancellation import Offer, Reason
from billing.errors import Refused
from billing.models import BillingCustomer
from billing.services import cancels
from portal import previews
from portal.forms import (
    CancelConfirmForm,
    CancelOfferForm,
    CancelPauseForm,
    CancelSurveyForm,
    CardActionForm,
    new_token,
)
from portal.views.common import bad_request, customer_view


def _page_or_refusal(request: HttpRequest, customer: BillingCustomer) -> cancels.CancelPage | None:
    try:
        page = cancels.cancel_page(customer=customer)
    except Refused as exc:
        messages.error(request, str(exc))
        return None
    if page is None:
        messages.error(request, _("You have no active subscription to cancel."))
    return page


@require_http_methods(["GET", "POST"])
@customer_view
def cancel(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    """The survey (GET), then what it offers (POST: nothing is changed yet)."""
    page = _page_or_refusal(request, customer)
    if page is None:
        return redirect("portal:dashboard")
    form = CancelSurveyForm(request.POST if request.method == "POST" else None)
    if request.method == "GET" or not form.is_valid():
        return render(request, "portal/cancel.html", {"page": page, "form": form, "token": new_token()})
    reason = Reason(form.cleaned_data["reason"])
    offered = cancels.alternative(customer=customer, subscription=page.subscription, reason=reason)
    context: dict[str, Any] = {
        "page": page,
        "reason": reason.value,
        "comment": form.cleaned_data["comment"],
        "token": form.cleaned_data["token"] or new_token(),
        "offer": offered.offer.value,
        "target": offered.target,
        "preview": offered.preview,
        "pause": offered.pause,
    }
    if offered.preview is not None:
        context["signed"] = previews.signed(preview=offered.preview, customer=customer)
    return render(request, "portal/cancel_offer.html", context)


@require_POST
@customer_view
def cancel_confirm(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = CancelConfirmForm(request.POST)
    if not form.is_valid():
        return bad_request(request, _("This page is out of date. Please reload it and try again."))
    try:
        change = cancels.cancel(
            customer=customer,
            reason=Reason(form.cleaned_data["reason"]),
            comment=form.cleaned_data["comment"],
            offer=Offer(form.cleaned_data["offer"]),
            requested_by=request.user,
            key=form.cleaned_data["token"],
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:dashboard")
    return redirect("portal:change", change_id=change.pk)


@require_POST
@customer_view
def cancel_take_offer(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    """The cheaper plan instead of cancelling: the change its preview showed, made as on the Plan
    page, and the survey's answer kept with the offer taken."""
    form = CancelOfferForm(request.POST)
    shown = (
        previews.unsigned(value=form.data.get("preview", ""), customer=customer) if form.is_valid() else None
    )
    if shown is None:
        messages.error(request, _("This offer is out of date. Please start again."))
        return redirect("portal:cancel")
    try:
        change = cancels.take_cheaper_plan(
            customer=customer,
            shown=shown,
            reason=Reason(form.cleaned_data["reason"]),
            comment=form.cleaned_data["comment"],
            requested_by=request.user,
            key=form.cleaned_data["token"],
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:dashboard")
    return redirect("portal:change", change_id=change.pk)


@require_POST
@customer_view
def cancel_take_pause(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    """A pause instead of cancelling."""
    form = CancelPauseForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("This offer is out of date. Please start again."))
        return redirect("portal:cancel")
    try:
        change = cancels.take_pause(
            customer=customer,
            months=form.cleaned_data["months"],
            reason=Reason(form.cleaned_data["reason"]),
            comment=form.cleaned_data["comment"],
            requested_by=request.user,
            key=form.cleaned_data["token"],
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:dashboard")
    return redirect("portal:change", change_id=change.pk)


@require_POST
@customer_view
def cancel_undo(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = CardActionForm(request.POST)
    if not form.is_valid():
        return bad_request(request, _("This page is out of date. Please reload it and try again."))
    try:
        change = cancels.keep(customer=customer, requested_by=request.user, key=form.cleaned_data["token"])
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:dashboard")
    return redirect("portal:change", change_id=change.pk)
