"""The pause page: pause for a length the policy allows, with the resume date and what billing
does shown before confirming; while paused, the resume date and resuming early, with what it
charges.  Everything shown comes from the mirror (no Stripe call); the writes are
billing.services.pauses."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from billing import pauses as rules
from billing import policy, selectors
from billing.errors import Refused
from billing.models import BillingCustomer
from billing.services import pauses
from portal.forms import CardActionForm, PauseForm, new_token
from portal.views.common import bad_request, customer_view, found_or_404


@require_GET
@customer_view
def pause(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    page = selectors.pause_page(customer=customer)
    context: dict[str, object] = {"page": page, "token": new_token()}
    sub, situation = page.subscription, page.situation
    if sub is not None and situation is not None:
        now = timezone.now()
        if page.state is not None and page.state.paused:
            context["resume"] = pauses.resume_preview(subscription=sub, pause=page.pause, now=now)
            context["refusal"] = rules.resume_refusal(situation=situation)
        else:
            pause_policy = policy.current().pause
            # The first length stands for all: refusals other than the length don't depend on it.
            context["refusal"] = rules.pause_refusal(
                policy=pause_policy, situation=situation, months=pause_policy.lengths_months[0], now=now
            )
            if context["refusal"] is None:
                context["preview"] = pauses.pause_preview(subscription=sub, now=now)
    return render(request, "portal/pause.html", context)


@require_POST
@customer_view
def pause_confirm(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = PauseForm(request.POST)
    if not form.is_valid():
        return bad_request(request, _("This page is out of date. Please reload it and try again."))
    sub = found_or_404(selectors.plan_subscription(customer=customer))
    try:
        change = pauses.subscription_pause(
            customer=customer,
            subscription=sub,
            months=form.cleaned_data["months"],
            requested_by=request.user,
            key=form.cleaned_data["token"],
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:pause")
    if change.error_code == "preview_stale":
        messages.error(
            request, _("A plan change was scheduled after this page was shown. Please look again.")
        )
        return redirect("portal:pause")
    return redirect("portal:change", change_id=change.pk)


@require_POST
@customer_view
def resume_confirm(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    form = CardActionForm(request.POST)
    if not form.is_valid():
        return bad_request(request, _("This page is out of date. Please reload it and try again."))
    sub = found_or_404(selectors.plan_subscription(customer=customer))
    try:
        change = pauses.subscription_resume(
            customer=customer, subscription=sub, requested_by=request.user, key=form.cleaned_data["token"]
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:pause")
    return redirect("portal:change", change_id=change.pk)
