"""Plan journeys where the bank has a say, in a real browser: a new sign-up subscribes from the
Plan page with a card that asks for 3-D Secure, and an upgrade whose payment the bank wants
approved is approved in the page, or abandoned (the plan stays as it was).

As in test_plan_journey: the live server, the emulator's Stripe.js, card form and bank page, its
webhooks really flowing; waits are on what the customer sees, never on fixed sleeps."""

from __future__ import annotations

import re
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail

from billing.models import BillingCustomer, Subscription
from billing.services.customers import customer_create
from tests.portal_support import PASSWORD, make_customer

from .conftest import LivePortal, Shopper, bank_challenge, playwright_sync
from .test_plan_journey import _dashboard, _mail, _open_plan_page, _plan_on_dashboard, _preview, _price_id
from .test_portal_journey import (
    CARD_FRAME,
    _approve_3ds,
    _approve_payment,
    _change_result,
    _log_in,
    _type_card,
)

expect = playwright_sync.expect

# 3-D Secure to save the card; a payment off-session afterwards goes through without it.
CARD_3DS_ON_SETUP = "4000 0025 0000 3155"
# 3-D Secure for every payment.
CARD_3DS_ALWAYS = "pm_card_authenticationRequired"


def _signed_up(email: str) -> BillingCustomer:
    """A customer who just signed up: an account, no Stripe customer, no card, no subscription."""
    user = get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return customer_create(user=user, email=email, language="en")


def _upgrade_needing_approval(portal: LivePortal, page: Any, *, email: str) -> tuple[BillingCustomer, str]:
    """Standard monthly, paid; the default card is now one whose bank checks every payment.  The
    customer asks for Pro now and confirms; returns the customer and the amount the preview showed."""
    with portal.quiet():
        customer = make_customer(email=email, price="standard_month_eur")
        card = portal.api.v1.payment_methods.attach(
            CARD_3DS_ALWAYS, params={"customer": customer.stripe_customer_id}
        )
        portal.api.v1.customers.update(
            customer.stripe_customer_id, params={"invoice_settings": {"default_payment_method": card.id}}
        )
    _log_in(page, portal, email=email)
    _open_plan_page(page)
    preview = _preview(page, "pro_month_eur", "now")
    shown = preview.locator("[data-test=preview-charge]").inner_text()
    preview.get_by_role("button", name=f"Confirm and pay {shown}").click()
    expect(_change_result(page)).to_contain_text(
        f"Your bank wants you to approve the payment of {shown}. "
        "Your plan changes to Pro (monthly) once it is approved."
    )
    return customer, shown


def test_a_new_sign_up_subscribes_from_the_plan_page_with_a_3d_secure_card(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer = _signed_up("grace@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="grace@example.com")
    page.get_by_role("link", name="Choose a plan").click()
    expect(page.locator("[data-test=current-plan]")).to_have_text(
        "You have no active subscription. Choose a plan to start one."
    )
    page.locator("[data-test=plans] [data-price=standard_month_eur]").get_by_role(
        "link", name="Start"
    ).click()
    expect(page.get_by_role("heading", name="Start your subscription")).to_be_visible()
    expect(page.locator("[data-test=start-charge]")).to_have_text("€19.00")
    page.wait_for_load_state("domcontentloaded")

    _type_card(page.frame_locator(CARD_FRAME), CARD_3DS_ON_SETUP)
    page.get_by_role("button", name="Pay €19.00 and start").click()
    _approve_3ds(page)

    # Started and paid: the dashboard says so.
    expect(page.get_by_role("heading", name="Your subscription")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(
        "Done: your subscription to Standard (monthly) has started. €19.00 was charged."
    )
    customer.refresh_from_db()
    with live_portal.quiet():
        (stripe_sub,) = live_portal.api.v1.subscriptions.list(
            params={"customer": customer.stripe_customer_id}
        ).data
        invoice = live_portal.api.v1.invoices.retrieve(stripe_sub.latest_invoice)
    assert (stripe_sub.status, invoice.status, invoice.amount_paid) == ("active", "paid", 1900)
    live_portal.webhooks_delivered()
    page.reload()
    _plan_on_dashboard(page, plan="Standard", interval="Monthly", price="€19.00")
    expect(page.locator("[data-test=status]")).to_have_text("Active")
    welcome = _mail("Welcome: your subscription to Standard (monthly) has started")
    assert "we charged €19.00 for its first period" in welcome.body


def test_a_first_payment_the_bank_wants_approved_is_approved_on_the_change_page(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        _signed_up("barbara@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="barbara@example.com")
    page.get_by_role("link", name="Choose a plan").click()
    page.locator("[data-test=plans] [data-price=pro_year_eur]").get_by_role("link", name="Start").click()
    page.wait_for_load_state("domcontentloaded")
    # Asks for 3-D Secure to save the card, and again for the payment itself.
    _type_card(page.frame_locator(CARD_FRAME), "4000 0027 6000 3184")
    page.get_by_role("button", name="Pay €490.00 and start").click()
    _approve_3ds(page)

    result = _change_result(page)
    expect(result).to_contain_text(
        "Your bank wants you to approve the first payment of €490.00. "
        "Your subscription to Pro (yearly) starts once it is approved."
    )
    _approve_payment(page, result)
    _approve_3ds(page)
    expect(result).to_have_text("Done: your subscription to Pro (yearly) has started. €490.00 was charged.")
    live_portal.webhooks_delivered()
    page.get_by_role("link", name="Go to your dashboard").click()
    _plan_on_dashboard(page, plan="Pro", interval="Yearly", price="€490.00")
    _mail("Approve the first payment for Pro (yearly)")
    _mail("Welcome: your subscription to Pro (yearly) has started")


def test_an_upgrade_the_bank_wants_approved_is_approved_in_the_page(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    page = customer_browser.page
    customer, shown = _upgrade_needing_approval(live_portal, page, email="ada@example.com")
    # Until approved, Stripe keeps the upgrade pending and the customer stays on Standard.
    assert Subscription.objects.get(customer=customer).price.lookup_key == "standard_month_eur"  # type: ignore[union-attr]

    result = _change_result(page)
    _approve_payment(page, result)
    _approve_3ds(page)
    expect(result).to_have_text(f"Done: your plan is now Pro (monthly). {shown} was charged.")
    with live_portal.quiet():
        (stripe_sub,) = live_portal.api.v1.subscriptions.list(
            params={"customer": customer.stripe_customer_id}
        ).data
        assert stripe_sub["items"].data[0].price.id == _price_id("pro_month_eur")
        assert live_portal.api.v1.invoices.retrieve(stripe_sub.latest_invoice).status == "paid"
    live_portal.webhooks_delivered()
    _dashboard(page)
    _plan_on_dashboard(page, plan="Pro", interval="Monthly", price="€49.00")
    _mail("Approve the payment for Pro (monthly)")
    changed = _mail("Your plan is now Pro (monthly)")
    assert f"We charged {shown} for the change" in changed.body


def test_an_upgrade_whose_approval_is_abandoned_leaves_the_plan_as_it_was(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    page = customer_browser.page
    customer, _shown = _upgrade_needing_approval(live_portal, page, email="alan@example.com")
    result = _change_result(page)
    _approve_payment(page, result)
    dialog = page.get_by_role("dialog", name="3D Secure authentication")
    bank_challenge(page).locator("#test-source-fail-3ds").click()
    expect(dialog).to_be_hidden()
    expect(result.get_by_role("alert")).to_have_text(
        "Your bank did not approve the payment, so nothing was charged and your plan has not changed. "
        "Please try again, or use another card."
    )
    expect(result.get_by_role("link", name="Use another card")).to_be_visible()
    live_portal.webhooks_delivered()
    with live_portal.quiet():
        (stripe_sub,) = live_portal.api.v1.subscriptions.list(
            params={"customer": customer.stripe_customer_id}
        ).data
    assert stripe_sub["items"].data[0].price.id == _price_id("standard_month_eur")
    page.goto(re.sub(r"/changes/.*$", "/", page.url))
    _plan_on_dashboard(page, plan="Standard", interval="Monthly", price="€19.00")
    assert not [m for m in mail.outbox if m.subject.startswith("Your plan is now")]
    # The mailbox has what the page said: the payment waits for the customer's approval.
    _mail("Approve the payment for Pro (monthly)")
