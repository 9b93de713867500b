"""The Details page in a real browser: a bad VAT number is refused with a sentence that says what is
wrong and nothing goes to Stripe; the address and VAT number then reach Stripe, confirmed on
screen and by email; text messages switched off for reminders while payment problems stay on.
Waits are on what the customer sees (Playwright's `expect`), never on fixed sleeps."""

from __future__ import annotations

import pathlib
import re
from typing import Any

from django.core import mail

from billing.models import BillingChange, BillingCustomer
from tests.billing.support import stripe_counted
from tests.portal_support import make_customer

from .conftest import LivePortal, Shopper, each_width, playwright_sync
from .test_portal_journey import _change_result, _log_in, _no_horizontal_scroll

expect = playwright_sync.expect


def _open_details(page: Any) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Details").click()
    expect(page.get_by_role("heading", name="Details", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/details/$"))


def _fill_address(page: Any, *, vat: str) -> None:
    page.get_by_label("Street and number").fill("Keizersgracht 123")
    page.get_by_label("Postal code").fill("1015 CJ")
    page.get_by_label("City").fill("Amsterdam")
    page.get_by_label("Country").select_option(label="Netherlands")
    page.get_by_label("VAT number (optional)").fill(vat)


def _channel(page: Any, category: str, channel: str) -> Any:
    """One category's checkbox for one channel, found as a screen reader finds it."""
    group = page.get_by_role("group", name=category, exact=True)
    return group.get_by_role("checkbox", name=re.compile(rf"^{channel}"))


def test_change_the_address_and_vat_number_and_switch_text_reminders_off(
    live_portal: LivePortal, customer_browser: Shopper, settings: Any
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="edsger@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="edsger@example.com")
    _open_details(page)
    expect(page.get_by_label("Billing email")).to_have_value("edsger@example.com")

    # A VAT number with a wrong check digit: refused by the form, and Stripe hears nothing.
    _fill_address(page, vat="NL004495445B02x")
    with stripe_counted(settings) as stripe:
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("alert")).to_contain_text("Nothing was saved.")
        error = page.locator("#id_tax_id_error")
        expect(error).to_have_text(re.compile("This is not a valid VAT number for its country"))
        expect(page.get_by_label("VAT number (optional)")).to_have_attribute("aria-invalid", "true")
    assert stripe.calls == 0
    # What was typed is still there to correct.
    expect(page.get_by_label("City")).to_have_value("Amsterdam")
    with live_portal.quiet():
        assert not BillingChange.objects.filter(customer=customer).exists()
    assert live_portal.api.v1.customers.tax_ids.list(customer.stripe_customer_id).data == []

    # Corrected (with spaces, as people write it): made at Stripe, confirmed on screen and by email.
    page.get_by_label("VAT number (optional)").fill("NL 0044 95445 B01")
    page.get_by_role("button", name="Save").click()
    expect(_change_result(page)).to_have_text("Done: your details and preferences are saved.")
    expect(page.locator("[data-test=result-address]")).to_have_text(
        "Keizersgracht 123, 1015 CJ Amsterdam, NL"
    )
    expect(page.locator("[data-test=result-tax-id]")).to_have_text("NL004495445B01")
    stripe_customer = live_portal.api.v1.customers.retrieve(customer.stripe_customer_id)
    assert (stripe_customer.address.line1, stripe_customer.address.country) == ("Keizersgracht 123", "NL")
    tax_ids = live_portal.api.v1.customers.tax_ids.list(customer.stripe_customer_id).data
    assert [(t.type, t.value) for t in tax_ids] == [("eu_vat", "NL004495445B01")]
    [email] = [m for m in mail.outbox if m.subject == "Your details were changed"]
    assert "Address: Keizersgracht 123, 1015 CJ Amsterdam, NL" in email.body
    assert "VAT number: NL004495445B01" in email.body

    # Text messages: a mobile number, then reminders off by text; payment problems can't be.
    page.get_by_role("link", name="Back to your details").click()
    expect(page.get_by_label("VAT number (optional)")).to_have_value("NL004495445B01")
    page.get_by_label("Mobile number for text messages (optional)").fill("+31 6 12345678")
    reminders_by_text = _channel(page, "Reminders", "Text message")
    expect(reminders_by_text).to_be_checked()
    reminders_by_text.uncheck()
    critical_by_text = _channel(page, "Payment problems", "Text message")
    expect(critical_by_text).to_be_checked()
    expect(critical_by_text).to_be_disabled()
    expect(page.get_by_role("group", name="Payment problems", exact=True)).to_contain_text("Always on")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Done: your details and preferences are saved.")
    expect(_channel(page, "Reminders", "Text message")).not_to_be_checked()
    expect(_channel(page, "Reminders", "Email")).to_be_checked()
    expect(_channel(page, "Payment problems", "Text message")).to_be_checked()
    expect(_channel(page, "Payment problems", "Text message")).to_be_disabled()
    with live_portal.quiet():
        saved = BillingCustomer.objects.get(pk=customer.pk)
    assert saved.phone == "+31612345678"
    assert "reminder:sms" in saved.opt_outs and not any(
        o.startswith("payment_critical") for o in saved.opt_outs
    )
    assert len([m for m in mail.outbox if m.subject == "Your details were changed"]) == 2


def test_details_page_fits_a_phone_and_a_desktop_with_and_without_errors(
    live_portal: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        make_customer(email="ada@example.com")
    for name, tab in each_width(portal_chromium):
        page = tab.page
        _log_in(page, live_portal, email="ada@example.com")
        _open_details(page)
        page.screenshot(path=str(artifacts / f"details-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
        page.get_by_label("Street and number").fill("Storgatan 1")
        page.get_by_label("VAT number (optional)").fill("SE12")
        page.get_by_label("Mobile number for text messages (optional)").fill("+46 8 123 456 78")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("alert")).to_contain_text("Nothing was saved.")
        expect(page.locator(".field.has-error")).to_have_count(4)  # VAT, phone, city, country
        page.screenshot(path=str(artifacts / f"details-errors-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
