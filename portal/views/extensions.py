"""More time to pay: the customer picks the date they can pay (a calendar limited by the policy)
and, if they like, says why; approved at once or sent to the billing team (billing.services.
extensions).  Opened from the failed-payment banner, the fix page, a message's "ask for more
time" link (no login: the link's grant covers this page for its case), and the dashboard before a
renewal."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from billing.errors import Refused
from billing.models import BillingCustomer, Extension
from billing.services import extensions
from portal.forms import ExtensionForm
from portal.views.common import link_view


@require_http_methods(["GET", "POST"])
@link_view(lambda grant, kwargs: grant.case_id is not None)
def extend(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    found = extensions.offer(customer=customer)
    form = ExtensionForm(request.POST or None)
    if request.method == "POST" and found is not None and form.is_valid():
        try:
            extension = extensions.request(
                customer=customer,
                until=form.cleaned_data["until"],
                reason=form.cleaned_data["reason"],
                requested_by=request.user if request.user.is_authenticated else None,
            )
        except Refused as exc:
            form.add_error("until", str(exc))
        else:
            if extension.status == Extension.Status.APPROVED:
                messages.success(request, _("Done: we will charge the payment on the date you picked."))
            else:
                messages.info(
                    request, _("Thank you. Our billing team will answer your request within a working day.")
                )
            if request.user.is_authenticated:
                return redirect("portal:dashboard")
            return redirect("portal:extend")
    context = {
        "offer": found,
        "form": form,
        "refusal": extensions.refusal_text(refusal=found.refusal, found=found)
        if found and found.refusal
        else "",
    }
    return render(
        request,
        "portal/extend.html",
        context,
        status=200 if request.method == "GET" or form.is_valid() else 400,
    )
