"""The rules of the invoice list, in one place: each status in plain words, which invoices the
customer may pay now from the portal, and why one may not (a sentence in the customer's
language).  Pure functions over plain facts: no database, no Stripe, so the Invoices page, the
service that pays and the tests share them.

- Only an open invoice with money left on it is paid from the portal.  A paid one has nothing
  left; a void one was cancelled; a draft is not final yet; an uncollectible one was written off
  after its retries, and settling it is a conversation with us, not a button.
- Nothing is collected from a paused subscription until it resumes, and the portal does not
  collect it either.
- One payment at a time: while a payment of the invoice is on its way to Stripe (a change still
  pending, say during an outage), another would charge twice.  A payment waiting for the bank's
  approval is not on its way: the customer may still pay with another card instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.utils.translation import gettext, pgettext

from billing.policy import card_expired

# Stripe's invoice statuses (billing.models.Invoice.Status), as plain strings: this module has no
# models.
DRAFT, OPEN, PAID, UNCOLLECTIBLE, VOID = "draft", "open", "paid", "uncollectible", "void"

# How many invoices the Invoices page lists at a time.
PER_PAGE = 20


@dataclasses.dataclass(frozen=True)
class Payable:
    """What paying one invoice now depends on."""

    status: str
    amount_remaining: int
    # The subscription it bills is paused (itself, or the collection of its payments).
    paused: bool = False
    # A payment of it is on its way to Stripe (a change not yet applied).
    being_paid: bool = False


def status_words(*, status: str) -> str:
    """The status as the customer reads it, in the active language."""
    words = {
        DRAFT: pgettext("invoice status", "Being prepared"),
        OPEN: pgettext("invoice status", "Unpaid"),
        PAID: pgettext("invoice status", "Paid"),
        UNCOLLECTIBLE: pgettext("invoice status", "Written off"),
        VOID: pgettext("invoice status", "Cancelled"),
    }
    return words.get(status, status)


def pay_refusal(*, invoice: Payable) -> str | None:
    """Why this invoice can't be paid now, in the customer's words; None if it can."""
    if invoice.status == PAID:
        return gettext("This invoice is paid. Thank you!")
    if invoice.status == VOID:
        return gettext("This invoice was cancelled, so there is nothing to pay.")
    if invoice.status == UNCOLLECTIBLE:
        return gettext("This invoice was written off. Please contact us if you want to settle it.")
    if invoice.status != OPEN:
        return gettext("This invoice is not final yet, so it can't be paid yet.")
    if invoice.amount_remaining <= 0:
        return gettext("There is nothing left to pay on this invoice.")
    if invoice.being_paid:
        return gettext("A payment of this invoice is already on its way.")
    if invoice.paused:
        return gettext("Your subscription is paused, so nothing is collected until it resumes.")
    return None


def card_refusal(*, exp_year: int, exp_month: int, today: dt.date) -> str | None:
    """Why the default card can't pay now (the page then offers another card only)."""
    if card_expired(exp_year=exp_year, exp_month=exp_month, today=today):
        return gettext("Your default card has expired. Please pay with another card.")
    return None


@dataclasses.dataclass(frozen=True)
class Paging:
    """One page of the list: which rows to read, and whether there are pages either side."""

    number: int
    offset: int
    # Rows to read: one more than a page, which says whether a next page exists without a count.
    limit: int

    def has_previous(self) -> bool:
        return self.number > 1


def paging(*, requested: str | None, per_page: int = PER_PAGE) -> Paging:
    """The page asked for (?page=3), or the first for anything that is not a page number; a
    number past the last page is simply an empty page, not an error."""
    try:
        number = int(requested or 1)
    except ValueError:
        number = 1
    # Bounded: an offset of billions would only make the database count rows for nothing.
    number = min(max(number, 1), 10_000)
    return Paging(number=number, offset=(number - 1) * per_page, limit=per_page + 1)
