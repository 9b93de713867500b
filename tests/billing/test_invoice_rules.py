"""The rules of the Invoices page on their own (billing/invoice_rules.py): plain facts in, a
status in words, a refusal in the customer's words or none, and a page of the list."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from billing.invoice_rules import PER_PAGE, Payable, card_refusal, paging, pay_refusal, status_words

OPEN = Payable(status="open", amount_remaining=1900)


def test_an_open_invoice_with_money_left_may_be_paid_now() -> None:
    assert pay_refusal(invoice=OPEN) is None


@pytest.mark.parametrize(
    ("invoice", "why"),
    [
        (Payable(status="paid", amount_remaining=0), "This invoice is paid. Thank you!"),
        (
            Payable(status="void", amount_remaining=0),
            "This invoice was cancelled, so there is nothing to pay.",
        ),
        (
            Payable(status="uncollectible", amount_remaining=1900),
            "This invoice was written off. Please contact us if you want to settle it.",
        ),
        (
            Payable(status="draft", amount_remaining=1900),
            "This invoice is not final yet, so it can't be paid yet.",
        ),
        (Payable(status="open", amount_remaining=0), "There is nothing left to pay on this invoice."),
        (
            Payable(status="open", amount_remaining=1900, being_paid=True),
            "A payment of this invoice is already on its way.",
        ),
        (
            Payable(status="open", amount_remaining=1900, paused=True),
            "Your subscription is paused, so nothing is collected until it resumes.",
        ),
    ],
)
def test_why_an_invoice_may_not_be_paid_now(invoice: Payable, why: str) -> None:
    with translation.override("en"):
        assert pay_refusal(invoice=invoice) == why


def test_a_payment_on_its_way_is_said_before_a_pause() -> None:
    """Both hold: the customer's own payment in flight is the nearer news."""
    both = Payable(status="open", amount_remaining=1900, paused=True, being_paid=True)
    assert pay_refusal(invoice=both) == "A payment of this invoice is already on its way."


def test_statuses_in_plain_words() -> None:
    with translation.override("en"):
        words = {s: status_words(status=s) for s in ("draft", "open", "paid", "uncollectible", "void")}
    assert words == {
        "draft": "Being prepared",
        "open": "Unpaid",
        "paid": "Paid",
        "uncollectible": "Written off",
        "void": "Cancelled",
    }
    # One Stripe adds later is shown as Stripe names it rather than hidden.
    assert status_words(status="something_new") == "something_new"


def test_an_expired_default_card_is_not_offered() -> None:
    today = dt.date(2027, 3, 21)
    assert card_refusal(exp_year=2027, exp_month=3, today=today) is None  # good to the month's end
    with translation.override("en"):
        assert card_refusal(exp_year=2027, exp_month=2, today=today) == (
            "Your default card has expired. Please pay with another card."
        )


@pytest.mark.parametrize(
    ("requested", "number"),
    [(None, 1), ("", 1), ("1", 1), ("3", 3), ("0", 1), ("-4", 1), ("x", 1), ("1e3", 1), ("99999999", 10_000)],
)
def test_a_page_of_the_list(requested: str | None, number: int) -> None:
    page = paging(requested=requested)
    assert page.number == number
    assert page.offset == (number - 1) * PER_PAGE
    # One row more than a page: whether there is a next page, without counting them all.
    assert page.limit == PER_PAGE + 1
    assert page.has_previous() == (number > 1)
