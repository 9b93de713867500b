"""What a deep link may do, decided when it is opened: whose it is, whether it is still good, and
what was done with it (billing/links.py makes and reads the links themselves).

Opening a link (GET) only reads.  The customer's click on the page's button (a POST) is recorded
as `opened`; the action it was for, as `used`.  After that action has paid, the link does nothing
more; while the payment is still owed (a card was declined), it may be tried again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import links
from billing.links import Purpose
from billing.messages import MESSAGES
from billing.models import BillingChange, BillingCustomer, Delivery, LinkEvent, RecoveryCase

# Links of a message that belongs to no case (none yet) last this long.
DEFAULT_DAYS = 14


class Problem(enum.StrEnum):
    """Why a link does not open its action; each has its own friendly page."""

    INVALID = "invalid"  # not ours, cut short, edited
    EXPIRED = "expired"
    DONE = "done"  # the payment it was about is made, or written off


@dataclasses.dataclass(frozen=True)
class Link:
    delivery_id: int
    customer: BillingCustomer
    case: RecoveryCase | None
    purpose: Purpose
    invoice_id: str
    expires_at: dt.datetime
    channel: str
    # The facts of the message that carried it (what a link without a case shows).
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)


def check(*, token: str, now: dt.datetime | None = None) -> Link | Problem:
    """The link behind `token`, or why it can't be used.  Reads only."""
    now = now or timezone.now()
    parsed = links.parse(token)
    if parsed is None:
        return Problem.INVALID
    delivery = (
        Delivery.objects.select_related("customer", "customer__user", "case", "case__policy")
        .filter(pk=parsed.delivery_id)
        .first()
    )
    if delivery is None or not links.signed_for(token=parsed, customer_id=delivery.customer_id):
        return Problem.INVALID
    message = MESSAGES.get(delivery.message)
    # A failed payment's message carries its action's link, and one to ask for more time.
    extends = parsed.purpose == Purpose.EXTEND and delivery.case_id is not None
    if (
        message is None
        or not message.link
        or (delivery.context.get("action") != parsed.purpose and not extends)
    ):
        return Problem.INVALID
    case = delivery.case
    days = case.policy.link_days if case is not None else DEFAULT_DAYS
    expires_at = (delivery.sent_at or delivery.created_at) + dt.timedelta(days=days)
    if now >= expires_at:
        return Problem.EXPIRED
    if case is not None and not _acts(case, parsed.purpose):
        return Problem.DONE
    return Link(
        delivery_id=delivery.pk,
        customer=delivery.customer,
        case=case,
        purpose=parsed.purpose,
        invoice_id=str(delivery.context.get("invoice") or ""),
        expires_at=expires_at,
        channel=delivery.channel,
        facts=dict(delivery.context),
    )


def record_open(*, link: Link) -> None:
    """The customer clicked through (the page's button, not a scanner's GET)."""
    LinkEvent.objects.create(
        delivery_id=link.delivery_id, case=link.case, purpose=link.purpose, kind=LinkEvent.Kind.OPENED
    )


def record_use(*, delivery_id: int, purpose: Purpose, change: BillingChange) -> None:
    """The action the link was for was taken (the change that takes it); once per link."""
    case = _case_of(delivery_id)
    try:
        with transaction.atomic():
            LinkEvent.objects.create(
                delivery_id=delivery_id, case=case, purpose=purpose, kind=LinkEvent.Kind.USED, change=change
            )
    except IntegrityError:
        pass  # tried again after a declined card: the first use stands


def still_owed(*, delivery_id: int) -> bool:
    """Whether the payment the link is about is still to be made (its case open), so that the link
    may act (again, if a card was declined); or, paid by the backup card, whether the default
    card that failed is still to be replaced."""
    case = _case_of(delivery_id)
    if case is None:
        return True
    purpose = Delivery.objects.filter(pk=delivery_id).values_list("context__action", flat=True).first()
    return _acts(case, str(purpose or ""))


def _acts(case: RecoveryCase, purpose: str) -> bool:
    """A case's links act while it is open; the backup card's message asks for a new default
    card after the case closed, and its link does that until it expires."""
    if case.status == RecoveryCase.Status.OPEN:
        return True
    return case.outcome == RecoveryCase.Outcome.BACKUP_CARD and purpose == Purpose.UPDATE_CARD


def _case_of(delivery_id: int) -> RecoveryCase | None:
    return RecoveryCase.objects.filter(deliveries__pk=delivery_id).first()
