"""The Invoices page: the customer's invoices, paged, from the mirror only; and paying an open one
now, with the default card (a button on the list) or another card (the Payment Element).  The
result is shown on the change's page, as for every change."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from billing import selectors
from billing.errors import Refused
from billing.models import BillingCustomer, Invoice
from billing.services import invoices
from portal import customers
from portal.forms import InvoicePayForm, SetupIntentForm, new_token
from portal.views.common import customer_view, found_or_404, link_view


def _invoice(customer: BillingCustomer, invoice_id: str) -> Invoice:
    # Scoped to the customer: another customer's invoice is not found (404), and nothing is paid.
    return found_or_404(selectors.invoice_for(customer=customer, stripe_id=invoice_id))


@require_GET
@customer_view
def invoice_list(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    page = selectors.invoice_page(customer=customer, page=request.GET.get("page"))
    return render(request, "portal/invoices.html", {"page": page, "token": new_token()})


@require_GET
@link_view(customers.pays_invoice)
def invoice_pay(request: HttpRequest, invoice_id: str, *, customer: BillingCustomer) -> HttpResponse:
    """Pay one open invoice with another card: the Payment Element, then the payment."""
    invoice = _invoice(customer, invoice_id)
    refusal = selectors.invoice_pay_refusal(customer=customer, invoice=invoice)
    if refusal:
        messages.error(request, refusal)
        return redirect("portal:invoices")
    context = {
        "invoice": invoice,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        # One per page view: a double click reuses the same SetupIntent (idempotency key).
        "attempt": new_token(),
        "return_url": request.build_absolute_uri(
            reverse("portal:invoice_pay_return", args=[invoice.stripe_id])
        ),
        "hidden": {},
    }
    return render(request, "portal/invoice_pay.html", context)


@require_POST
@link_view(customers.pays_invoice)
def invoice_pay_confirm(request: HttpRequest, invoice_id: str, *, customer: BillingCustomer) -> HttpResponse:
    invoice = _invoice(customer, invoice_id)
    form = InvoicePayForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("We could not read your payment. Please try again."))
        return redirect("portal:invoices")
    setup_intent = form.cleaned_data["setup_intent"] or None
    token = form.cleaned_data["token"] or ""
    earlier = invoices.submitted_payment(
        customer=customer, invoice=invoice, setup_intent_id=setup_intent, token=token
    )
    if earlier is not None:
        # Posted again (a double click, the bank's return page): the payment it made.
        return redirect("portal:change", change_id=earlier.pk)
    card = None
    if setup_intent is None:
        card = found_or_404(selectors.card_for(customer=customer, card_id=form.cleaned_data["card"] or 0))
    try:
        change = invoices.invoice_pay(
            customer=customer,
            invoice=invoice,
            card=card,
            setup_intent_id=setup_intent,
            requested_by=request.user,
            token=token,
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:invoices")
    customers.link_used(request, change=change)
    return redirect("portal:change", change_id=change.pk)


@require_GET
@link_view(customers.pays_invoice)
def invoice_pay_return(request: HttpRequest, invoice_id: str, *, customer: BillingCustomer) -> HttpResponse:
    """Where the bank's page sends the customer back after 3-D Secure: a GET only shows a page;
    the page posts the confirmation."""
    invoice = _invoice(customer, invoice_id)
    form = SetupIntentForm({"setup_intent": request.GET.get("setup_intent", "")})
    context = {
        "ok": form.is_valid() and request.GET.get("redirect_status") == "succeeded",
        "action": reverse("portal:invoice_pay_confirm", args=[invoice.stripe_id]),
        "retry": reverse("portal:invoice_pay", args=[invoice.stripe_id]),
        "hidden": {"setup_intent": form.data["setup_intent"]},
    }
    return render(request, "portal/card_return.html", context)
