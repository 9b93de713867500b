"""More of the customer's journey in a real browser: a card the bank authenticated once pays the
failed invoice without a second check, long values never widen a phone's page, and the
Content-Security-Policy holds (and is seen to refuse what it should)."""

from __future__ import annotations

import pathlib
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model

from billing.services.customers import customer_create
from tests.portal_support import PASSWORD, make_customer

from .conftest import LivePortal, Shopper, open_tab, playwright_sync
from .test_portal_journey import (
    _change_result,
    _log_in,
    _no_horizontal_scroll,
    _owing_customer_saves_a_3ds_card,
)

expect = playwright_sync.expect


def test_card_authenticated_when_saved_pays_the_failed_invoice_without_a_second_check(
    live_portal: LivePortal, customer_browser: Shopper, artifacts: pathlib.Path
) -> None:
    page = customer_browser.page
    unpaid = _owing_customer_saves_a_3ds_card(
        live_portal, page, email="alan@example.com", number="4000 0025 0000 3155"
    )

    expect(_change_result(page)).to_contain_text("Visa •••• 3155 is saved and is now your default card")
    expect(page.locator("[data-test=invoice-result]")).to_contain_text(
        "Your unpaid invoice of €19.00 is now paid."
    )
    expect(page.get_by_role("button", name="Approve payment")).to_have_count(0)
    expect(page.get_by_role("dialog", name="3D Secure authentication")).to_have_count(0)
    page.screenshot(path=str(artifacts / "change-3ds-once-paid.png"), full_page=True)
    assert live_portal.api.v1.invoices.retrieve(unpaid.stripe_id).status == "paid"


def test_long_values_never_widen_a_phone_page(
    live_portal: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    long_email = "a-very-long-mailbox-name-" + "x" * 200 + "@example.com"
    assert len(long_email) <= 254
    with live_portal.quiet():
        user = get_user_model().objects.create_user(username="long", email=long_email, password=PASSWORD)
        EmailAddress.objects.create(user=user, email=long_email, verified=True, primary=True)
        customer_create(user=user, email=long_email, language="en")
    tab = open_tab(
        portal_chromium,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = tab.page
        _log_in(page, live_portal, email=long_email)
        for path in ("/", "/accounts/email/"):
            page.goto(f"{live_portal.url}{path}")
            expect(page.locator("main")).to_be_visible()
            _no_horizontal_scroll(page)
        expect(page.get_by_text(long_email[:30])).to_be_visible()
        page.screenshot(path=str(artifacts / "account-long-email-phone.png"), full_page=True)
    finally:
        tab.page.context.close()
    assert tab.csp_violations == []


def test_the_content_security_policy_refuses_an_injected_script_and_style(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    """The control for every other browser test's "no violation": an inline script and style put
    into the page (as an injection would) are refused, and the browser says so."""
    with live_portal.quiet():
        make_customer(email="csp@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="csp@example.com")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__injected = 1';"
        " document.body.append(s); const st = document.createElement('style');"
        " st.textContent = 'body { background: red }'; document.head.append(st); }"
    )
    page.wait_for_function("() => window.__cspViolations.length >= 2")
    expect(page.locator("h1")).to_have_text("Your subscription")
    assert page.evaluate("() => window.__injected") is None
    violations = page.evaluate("() => window.__cspViolations")
    assert any(v.startswith("script-src-elem inline") for v in violations), violations
    assert any(v.startswith("style-src-elem inline") for v in violations), violations
    # Seen (the console said so too): the fixture checks that nothing else was refused.
    assert len(customer_browser.script_errors) == 2
    customer_browser.csp_violations.clear()
    customer_browser.script_errors.clear()
