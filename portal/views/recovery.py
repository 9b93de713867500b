"""Fixing a failed payment: the fix page of a recovery case (what happened, what to do, the one
button), the deep links that open it without a password, and the list of in-app messages.

A deep link's GET shows the page and changes nothing (mail scanners and link previews open every
link); the customer's click on its button is a POST, which records the click and lets this
browser take the link's action, and only that (portal.customers.Grant).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import selectors
from billing.errors import Refused
from billing.links import Purpose
from billing.models import BillingCustomer
from billing.services import invoices, links, notifications, predunning
from portal import customers
from portal.forms import CardActionForm, new_token
from portal.views.common import bad_request, customer_view, found_or_404, link_view, speaking_to

# The friendly page for each reason a link does not open, and its status.
_PROBLEM_STATUS = {links.Problem.INVALID: 404, links.Problem.EXPIRED: 410, links.Problem.DONE: 410}


def _fix_context(page: selectors.FixPage, *, token: str = "") -> dict[str, object]:
    return {
        "page": page,
        "case": page.case,
        "playbook": page.playbook,
        "link_token": token,
        "token": new_token(),
    }


@require_GET
@link_view(lambda grant, kwargs: grant.case_id == kwargs.get("case_id"))
def fix(request: HttpRequest, case_id: int, *, customer: BillingCustomer) -> HttpResponse:
    page = found_or_404(selectors.fix_page(customer=customer, case_id=case_id))
    return render(request, "portal/fix.html", _fix_context(page))


@require_http_methods(["GET", "POST"])
def link(request: HttpRequest, token: str) -> HttpResponse:
    found = links.check(token=token)
    if isinstance(found, links.Problem):
        return _link_page(request, token, found)
    with speaking_to(found.customer):
        return _link_page(request, token, found)


def _link_page(request: HttpRequest, token: str, found: links.Link | links.Problem) -> HttpResponse:
    if isinstance(found, links.Problem):
        return render(
            request, "portal/link_problem.html", {"problem": str(found)}, status=_PROBLEM_STATUS[found]
        )
    mine = customers.customer_of(request)
    if request.user.is_authenticated and (mine is None or mine.pk != found.customer.pk):
        # Someone else is logged in on this browser: the link is not theirs to use.
        return render(request, "portal/link_problem.html", {"problem": "other_account"}, status=403)
    if found.case is None and found.purpose == Purpose.UPDATE_CARD:
        return _card_link(request, token, found)
    page = selectors.fix_page(customer=found.customer, case_id=found.case.pk) if found.case else None
    if page is None:
        return render(request, "portal/link_problem.html", {"problem": "done"}, status=410)
    if request.method == "GET":
        return render(request, "portal/fix.html", _fix_context(page, token=token))
    links.record_open(link=found)
    if not request.user.is_authenticated:
        customers.open_grant(request, link=found)
    if found.purpose == Purpose.EXTEND or request.POST.get("next") == "extend":
        return redirect("portal:extend")
    if found.purpose == Purpose.UPDATE_CARD:
        return redirect("portal:card_add")
    if request.POST.get("next") == "card":
        return redirect("portal:invoice_pay", invoice_id=found.invoice_id)
    return _pay(request, customer=found.customer, page=page)


def _card_link(request: HttpRequest, token: str, found: links.Link) -> HttpResponse:
    """A reminder's link to add a card before the next payment (no failed payment, no case): the
    page says why, and its button opens the card form for this customer only."""
    if request.method == "GET":
        facts = predunning.card_facts(context=found.facts)
        return render(request, "portal/link_card.html", {"link_token": token, "f": facts})
    links.record_open(link=found)
    if not request.user.is_authenticated:
        customers.open_grant(request, link=found)
    return redirect("portal:card_add")


@require_POST
@link_view(
    lambda grant, kwargs: grant.case_id == kwargs.get("case_id") and grant.purpose != Purpose.UPDATE_CARD
)
def fix_pay(request: HttpRequest, case_id: int, *, customer: BillingCustomer) -> HttpResponse:
    """Pay the case's invoice now with the card on file (the bank may ask for its approval next)."""
    return _pay(
        request, customer=customer, page=found_or_404(selectors.fix_page(customer=customer, case_id=case_id))
    )


def _pay(request: HttpRequest, *, customer: BillingCustomer, page: selectors.FixPage) -> HttpResponse:
    form = CardActionForm(request.POST)
    if page.invoice is None or not form.is_valid():
        return bad_request(request, _("This page is out of date. Please reload it and try again."))
    try:
        change = invoices.invoice_pay(
            customer=customer,
            invoice=page.invoice,
            card=page.card,
            setup_intent_id=None,
            requested_by=request.user,
            token=form.cleaned_data["token"],
        )
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("portal:fix", case_id=page.case.pk)
    customers.link_used(request, change=change)
    return redirect("portal:change", change_id=change.pk)


@require_GET
@customer_view
def message_list(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    return render(
        request, "portal/messages.html", {"messages_list": selectors.in_app_messages(customer=customer)}
    )


@require_POST
@customer_view
def messages_read(request: HttpRequest, *, customer: BillingCustomer) -> HttpResponse:
    notifications.mark_read(customer=customer)
    return redirect("portal:messages")
