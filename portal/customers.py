"""Whom a request acts for, decided in one place: the logged-in user's billing customer, or the one
a signed deep link names (for that link's action only).  Looking it up never creates one: a login
without a billing customer (staff, say) simply has none."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from billing import selectors
from billing.links import Purpose
from billing.models import BillingCustomer
from billing.services import links

_CACHE = "_portal_customer"
# What a deep link's button opened, kept in the session (no password was given).
LINK_SESSION = "deep_link"


def customer_of(request: HttpRequest) -> BillingCustomer | None:
    if hasattr(request, _CACHE):
        found: BillingCustomer | None = getattr(request, _CACHE)
        return found
    user = getattr(request, "user", None)
    customer = None
    if user is not None and user.is_authenticated:
        customer = selectors.customer_of_user(user_id=user.pk)
    setattr(request, _CACHE, customer)
    return customer


@dataclasses.dataclass(frozen=True)
class Grant:
    """What a deep link opened for this browser: one customer, one purpose, one invoice, and the
    changes made through it (whose pages it may show)."""

    customer_id: int
    delivery_id: int
    purpose: Purpose
    invoice_id: str
    case_id: int | None
    expires_at: dt.datetime
    changes: tuple[str, ...]


def grant_of(request: HttpRequest) -> Grant | None:
    data: dict[str, Any] | None = request.session.get(LINK_SESSION)
    if not data:
        return None
    try:
        grant = Grant(
            customer_id=int(data["customer"]),
            delivery_id=int(data["delivery"]),
            purpose=Purpose(data["purpose"]),
            invoice_id=str(data["invoice"]),
            case_id=int(data["case"]) if data.get("case") else None,
            expires_at=dt.datetime.fromisoformat(data["expires"]),
            changes=tuple(data.get("changes") or ()),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if timezone.now() >= grant.expires_at:
        return None
    return grant


def open_grant(request: HttpRequest, *, link: links.Link) -> None:
    """The customer clicked a link's button: this browser may take that link's action."""
    # A fresh session key: whatever session the browser had does not carry over into this one.
    request.session.cycle_key()
    request.session[LINK_SESSION] = {
        "customer": link.customer.pk,
        "delivery": link.delivery_id,
        "purpose": str(link.purpose),
        "invoice": link.invoice_id,
        "case": link.case.pk if link.case else None,
        "expires": link.expires_at.isoformat(),
        "changes": [],
    }


def grant_change(request: HttpRequest, *, change_id: str) -> None:
    data = request.session.get(LINK_SESSION)
    if data:
        data["changes"] = [*data.get("changes", []), change_id][-10:]
        request.session.modified = True


def link_customer(request: HttpRequest, *, grant: Grant) -> BillingCustomer | None:
    customer = BillingCustomer.objects.select_related("user").filter(pk=grant.customer_id).first()
    setattr(request, _CACHE, customer)
    return customer


def link_used(request: HttpRequest, *, change: Any) -> None:
    """A change made through a deep link: recorded as the link's use, and its page is the link's
    to show (its result, the bank's approval)."""
    grant = grant_of(request)
    if grant is None or request.user.is_authenticated:
        return
    links.record_use(delivery_id=grant.delivery_id, purpose=grant.purpose, change=change)
    grant_change(request, change_id=str(change.pk))


def may_act(grant: Grant) -> bool:
    """A link acts while the payment it is about is still owed (again, after a declined card)."""
    return links.still_owed(delivery_id=grant.delivery_id)


def updates_card(grant: Grant, kwargs: dict[str, Any]) -> bool:
    return grant.purpose == Purpose.UPDATE_CARD and may_act(grant)


def pays_invoice(grant: Grant, kwargs: dict[str, Any]) -> bool:
    return (
        grant.purpose in (Purpose.PAY_NOW, Purpose.APPROVE)
        and kwargs.get("invoice_id") == grant.invoice_id
        and may_act(grant)
    )


def made_change(grant: Grant, kwargs: dict[str, Any]) -> bool:
    return str(kwargs.get("change_id")) in grant.changes
