"""The Details page: billing email, name, address, VAT number, language, time zone, mobile number
and which messages come on which channel.  The form checks every value (portal/forms.py,
billing/details.py); billing/services/details.py saves them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from billing import changes, policy, selectors
from billing.models import BillingChange, BillingCustomer
from billing.services import details as details_service
from portal.forms import DetailsForm, new_token
from portal.views.common import customer_view


def _initial(customer: BillingCustomer, pending: BillingChange | None) -> dict[str, Any]:
    """What the form shows: the details a pending change is sending (the customer's latest word),
    or the mirror's; the preferences as saved."""
    shown = (
        details_service.DetailsParams.model_validate(pending.params, strict=False)
        if pending is not None
        else details_service.current_details(customer=customer)
    )
    switched_on = [
        pref.key
        for row in policy.preferences(opt_outs=list(customer.opt_outs or []))
        for pref in row
        if pref.on and not pref.locked
    ]
    return {
        **shown.model_dump(),
        "time_zone": customer.time_zone or settings.PORTAL_DISPLAY_TIME_ZONE,
        "phone": customer.phone,
        "notify": switched_on,
        "token": new_token(),
    }


def _page(request: HttpRequest, customer: BillingCustomer, form: DetailsForm, pending: Any) -> HttpResponse:
    value = form["notify"].value()
    return render(
        request,
        "portal/details.html",
        {
            "form": form,
            "pending": pending,
            "preferences": policy.preferences(opt_outs=[]),
            "notify_on": list(value) if value else [],
            "has_phone": bool(customer.phone),
        },
    )


@require_http_methods(["GET", "POST"])
@customer_view
def details(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    pending = selectors.pending_change(customer=customer, kind=details_service.DETAILS.name)
    if request.method != "POST":
        form = DetailsForm(initial=_initial(customer, pending), zone=customer.time_zone)
        return _page(request, customer, form, pending)
    form = DetailsForm(request.POST, zone=customer.time_zone)
    if not form.is_valid():
        # Nothing is saved and nothing goes to Stripe; the page says what is wrong, field by field.
        return _page(request, customer, form, pending)
    key = form.cleaned_data["token"]
    # The same submit again (a double click, a reload) shows the change it made.
    earlier = changes.submitted(customer=customer, kind=details_service.DETAILS, key=key)
    if earlier is not None:
        return redirect("portal:change", change_id=earlier.pk)
    saved = details_service.details_save(
        customer=customer,
        details=form.details(),
        preferences=form.preferences(),
        pending=pending,
        requested_by=request.user,
        key=key,
    )
    # The confirmation, and the pages after it, in the language just chosen.
    translation.activate(customer.language)
    if saved.change is not None:
        response = redirect("portal:change", change_id=saved.change.pk)
    else:
        if saved.preferences_changed:
            messages.success(request, _("Done: your details and preferences are saved."))
        else:
            messages.info(request, _("Nothing to save: your details and preferences are as they were."))
        response = redirect("portal:details")
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME, customer.language, samesite="Lax", secure=request.is_secure()
    )
    return response
