"""The Invoices page in a real browser: an open invoice paid from the list with the default card,
and with another card whose bank wants 3-D Secure (to save it, and again for the payment), each
confirmed on screen and in the mailbox; and the list on a phone and a desktop.

As in test_portal_journey: the live server, the emulator's Stripe.js, card form and bank page, its
webhooks really flowing; waits are on what the customer sees, never on fixed sleeps."""

from __future__ import annotations

import pathlib
from typing import Any

from billing import sync
from billing.models import BillingCustomer, Invoice
from tests.billing.support import add_mirror_rows
from tests.portal_support import make_customer

from .conftest import LivePortal, Shopper, each_width, playwright_sync
from .test_plan_journey import _mail
from .test_portal_journey import (
    CARD_FRAME,
    _approve_3ds,
    _approve_payment,
    _change_result,
    _log_in,
    _no_horizontal_scroll,
    _type_card,
)

expect = playwright_sync.expect


def _owing(
    portal: LivePortal, *, email: str, default: str | None = "pm_card_visa"
) -> tuple[BillingCustomer, Invoice]:
    """A subscriber whose first payment was declined (€19.00 open); their default card is now
    `default` (None: still the card that declined)."""
    with portal.quiet():
        customer = make_customer(email=email, card="pm_card_chargeCustomerFail")
        if default is not None:
            card = portal.api.v1.payment_methods.attach(
                default, params={"customer": customer.stripe_customer_id}
            )
            portal.api.v1.customers.update(
                customer.stripe_customer_id, params={"invoice_settings": {"default_payment_method": card.id}}
            )
            sync.reconcile_customer(customer_id=customer.pk)
        invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)
    return customer, invoice


def _open_invoices(page: Any) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()


def _row(page: Any, invoice: Invoice) -> Any:
    return page.locator(f"[data-invoice={invoice.stripe_id}]")


def test_an_open_invoice_is_paid_from_the_list_with_the_default_card(
    live_portal: LivePortal, customer_browser: Shopper, artifacts: pathlib.Path
) -> None:
    _customer, invoice = _owing(live_portal, email="ada@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="ada@example.com")
    # The dashboard's banner leads to the list.
    page.locator(".banner-invoice_open").get_by_role("link", name="See your invoices").click()
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    row = _row(page, invoice)
    expect(row.locator("[data-test=invoice-status]")).to_have_text("Unpaid")
    expect(row.locator("[data-test=invoice-amount]")).to_have_text("€19.00")

    row.get_by_role("button", name="Pay €19.00 now with Visa •••• 4242").click()
    expect(_change_result(page)).to_have_text(
        "Done: your payment of €19.00 with Visa •••• 4242 went through, and the invoice is paid. Thank you!"
    )
    page.screenshot(path=str(artifacts / "invoice-paid.png"), full_page=True)
    assert live_portal.api.v1.invoices.retrieve(invoice.stripe_id).status == "paid"

    page.get_by_role("link", name="Back to your invoices").click()
    expect(_row(page, invoice).locator("[data-test=invoice-status]")).to_have_text("Paid")
    expect(_row(page, invoice).get_by_role("button")).to_have_count(0)
    live_portal.webhooks_delivered()
    confirmation = _mail("Your payment of €19.00 went through")
    assert "You paid your invoice of €19.00 with your Visa card ending in 4242." in confirmation.body
    _mail("Payment received")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    expect(page.locator(".banner-invoice_open")).to_have_count(0)
    expect(page.locator("[data-test=status]")).to_have_text("Active")


def test_an_open_invoice_is_paid_with_another_card_the_bank_checks_twice(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    _customer, invoice = _owing(live_portal, email="barbara@example.com", default=None)
    page = customer_browser.page
    _log_in(page, live_portal, email="barbara@example.com")
    _open_invoices(page)
    # The card on file is the one that declined: the list offers it, and another card.
    row = _row(page, invoice)
    expect(row.get_by_role("button", name="Pay €19.00 now with Visa •••• 0341")).to_be_visible()
    row.get_by_role("link", name="Pay with another card").click()
    expect(page.get_by_role("heading", name="Pay an invoice")).to_be_visible()
    expect(page.locator("[data-test=pay-amount]")).to_have_text("€19.00")
    page.wait_for_load_state("domcontentloaded")

    # 3-D Secure to save the card, and again for the payment itself.
    _type_card(page.frame_locator(CARD_FRAME), "4000 0027 6000 3184")
    page.get_by_role("button", name="Pay €19.00").click()
    _approve_3ds(page)
    result = _change_result(page)
    expect(result).to_contain_text(
        "Your bank wants you to approve the payment of €19.00. The invoice is paid once it is approved."
    )
    _approve_payment(page, result)
    _approve_3ds(page)
    expect(result).to_have_text(
        "Done: your payment of €19.00 with Visa •••• 3184 went through, and the invoice is paid. Thank you!"
    )
    expect(
        page.get_by_text("The card is saved and is now your default card for future payments.")
    ).to_be_visible()
    assert live_portal.api.v1.invoices.retrieve(invoice.stripe_id).status == "paid"

    live_portal.webhooks_delivered()
    _mail("Approve your payment of €19.00")
    _mail("Your payment of €19.00 went through")
    _mail("Payment received")
    page.get_by_role("link", name="Back to your invoices").click()
    expect(_row(page, invoice).locator("[data-test=invoice-status]")).to_have_text("Paid")


def test_the_invoice_list_fits_a_phone_and_a_desktop(
    live_portal: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    customer, _invoice = _owing(live_portal, email="ada@example.com")
    with live_portal.quiet():
        # A long history: the list pages.
        add_mirror_rows(customer=customer, cards=0, invoices=24)
    for name, tab in each_width(portal_chromium):
        page = tab.page
        _log_in(page, live_portal, email="ada@example.com")
        _open_invoices(page)
        expect(page.locator(".invoice-row")).to_have_count(20)
        expect(page.get_by_role("link", name="Older invoices")).to_be_visible()
        page.screenshot(path=str(artifacts / f"invoices-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
        page.get_by_role("link", name="Older invoices").click()
        expect(page.locator(".invoice-row")).to_have_count(5)
        _no_horizontal_scroll(page)
