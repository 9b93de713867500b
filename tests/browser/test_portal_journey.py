"""The customer's card journey in a real browser: log in, add a card through the Payment Element
(the emulator's iframe), pass 3-D Secure, and see the result, the dashboard and the email.

The portal runs on pytest-django's live server; Stripe is the emulator, which serves Stripe.js,
the card form and the bank's 3-D Secure page, and sends its signed webhooks to the live server.
Waits are on what the customer sees (Playwright's `expect`), never on fixed sleeps."""

from __future__ import annotations

import datetime as dt
import pathlib
import re
import time
from typing import Any

import requests
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from billing import changes, sync
from billing.models import BillingChange, BillingCustomer, Invoice, PaymentMethod, Price
from billing.services.customers import customer_create
from tests.portal_support import PASSWORD, make_customer

from .conftest import LivePortal, Shopper, bank_challenge, each_width, playwright_sync

expect = playwright_sync.expect

CARD_FRAME = "iframe[title='Secure payment input frame']"
DAY = 86400


# --------------------------------------------------------------------------- what the customer does


def _log_in(page: Any, portal: LivePortal, *, email: str) -> None:
    page.goto(f"{portal.url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", name="Your subscription")).to_be_visible()


def _open_card_form(page: Any) -> Any:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cards").click()
    page.get_by_role("link", name="Add a card").click()
    expect(page.get_by_role("heading", name="Add a card")).to_be_visible()
    # card_add.js (deferred) has run by then: a click before it would post the bare form.
    page.wait_for_load_state("domcontentloaded")
    return page.frame_locator(CARD_FRAME)


def _type_card(card: Any, number: str, expiry: str = "12/34", cvc: str = "123") -> None:
    card.get_by_label("Card number").press_sequentially(number)
    card.get_by_label("Expiration date").press_sequentially(expiry)
    card.get_by_label("Security code").press_sequentially(cvc)


def _approve_3ds(page: Any) -> None:
    bank_challenge(page).locator("#test-source-authorize-3ds").click()
    # Closing waits on a round trip to the bank (the emulator), which shares the CPUs with the
    # live server and its webhook traffic in a full run: a generous deadline, not a pause.
    expect(page.get_by_role("dialog", name="3D Secure authentication")).to_be_hidden(timeout=20_000)


def _approve_payment(page: Any, invoice_result: Any) -> None:
    # The button works without scripts too (it only asks us to read the invoice again); the bank's
    # check needs change.js, which runs once the change page's document is parsed.
    expect(page).to_have_url(re.compile(r"/changes/[0-9a-f-]{36}/$"))
    page.wait_for_load_state("domcontentloaded")
    invoice_result.get_by_role("button", name="Approve payment").click()


def _change_result(page: Any) -> Any:
    expect(page).to_have_url(re.compile(r"/changes/[0-9a-f-]{36}/$"))
    return page.locator("[data-test=change-result]")


def _no_horizontal_scroll(page: Any) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths[0]}px wide in a {widths[1]}px window"


# --------------------------------------------------------------------------- arranging Stripe's side


def _customer_whose_renewal_failed(portal: LivePortal, *, email: str) -> BillingCustomer:
    """A customer on a test clock: paid the first month with a good card, then switched to a card
    that fails, and the renewal a month later failed (subscription past due, invoice open)."""
    api = portal.api
    user = get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    customer = customer_create(user=user, email=email, language="en")
    start = int(time.time())
    clock = api.v1.test_helpers.test_clocks.create(params={"frozen_time": start})
    stripe_customer = api.v1.customers.create(
        params={"email": email, "test_clock": clock.id, "metadata": {"portal_customer": str(customer.pk)}}
    )
    BillingCustomer.objects.filter(pk=customer.pk).update(
        stripe_customer_id=stripe_customer.id, currency="eur"
    )
    good = api.v1.payment_methods.attach("pm_card_visa", params={"customer": stripe_customer.id})
    api.v1.customers.update(
        stripe_customer.id, params={"invoice_settings": {"default_payment_method": good.id}}
    )
    price_id = Price.objects.get(lookup_key="standard_month_eur").stripe_price_id
    api.v1.subscriptions.create(params={"customer": stripe_customer.id, "items": [{"price": price_id}]})
    failing = api.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": stripe_customer.id}
    )
    api.v1.customers.update(
        stripe_customer.id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    api.v1.payment_methods.detach(good.id)
    # A month and a bit later: the renewal invoice is finalized (after an hour) and its payment fails.
    api.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": start + 32 * DAY})
    # A Stripe client polls until the clock is ready; the emulator can answer when it is.
    requests.post(
        f"{portal.emulator.url}/_emulator/test_clocks/{clock.id}/wait", json={"timeout": 30}, timeout=35
    ).raise_for_status()
    # The failure's webhooks processed: its recovery case is open, as it would be in production.
    portal.webhooks_delivered()
    sync.reconcile_customer(customer_id=customer.pk)
    return BillingCustomer.objects.get(pk=customer.pk)


def _owing_customer_saves_a_3ds_card(portal: LivePortal, page: Any, *, email: str, number: str) -> Invoice:
    """A customer whose renewal failed logs in, types a card whose bank asks for 3-D Secure to
    save it, and approves; returns the invoice left unpaid by the renewal."""
    with portal.quiet():
        customer = _customer_whose_renewal_failed(portal, email=email)
        (unpaid,) = Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN)
    _log_in(page, portal, email=email)
    card = _open_card_form(page)
    _type_card(card, number)
    page.get_by_role("button", name="Save card").click()
    _approve_3ds(page)
    return unpaid


# --------------------------------------------------------------------------- the journeys


def test_card_with_3d_secure_becomes_the_default_everywhere(
    live_portal: LivePortal, customer_browser: Shopper, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="ada@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="ada@example.com")
    card = _open_card_form(page)

    _type_card(card, "4000 0025 0000 3155")
    page.get_by_role("button", name="Save card").click()
    expect(bank_challenge(page).locator("#test-source-authorize-3ds")).to_be_visible()
    page.screenshot(path=str(artifacts / "card-add-3ds.png"))
    _approve_3ds(page)

    expect(_change_result(page)).to_contain_text("Visa •••• 3155 is saved and is now your default card")
    page.screenshot(path=str(artifacts / "change-card-added.png"), full_page=True)
    page.get_by_role("link", name="Back to your subscription").click()
    expect(page.locator("[data-test=default-card]")).to_contain_text("Visa •••• 3155")
    expect(page.locator("[data-test=messages]")).to_contain_text(
        "Card Visa •••• 3155 added and made your default card."
    )

    live_portal.webhooks_delivered()
    about_card = [m for m in mail.outbox if "card" in m.subject.lower()]
    assert [m.subject for m in about_card] == ["Your new card is saved"], [m.subject for m in mail.outbox]
    assert about_card[0].to == ["ada@example.com"]
    assert "3155" in about_card[0].body

    with live_portal.quiet():
        new_card = PaymentMethod.objects.get(customer=customer, last4="3155")
        (change,) = BillingChange.objects.filter(customer=customer)
        mirrored = BillingCustomer.objects.get(pk=customer.pk)
    assert change.status == BillingChange.Status.APPLIED
    assert mirrored.default_payment_method_id == new_card.stripe_id
    # Stripe charges a subscription's own default first: the new card must be the default on both.
    stripe_customer = live_portal.api.v1.customers.retrieve(customer.stripe_customer_id)
    assert stripe_customer.invoice_settings.default_payment_method == new_card.stripe_id
    (subscription,) = live_portal.api.v1.subscriptions.list(
        params={"customer": customer.stripe_customer_id}
    ).data
    assert subscription.default_payment_method == new_card.stripe_id


def test_new_card_pays_the_invoice_that_failed(
    live_portal: LivePortal, customer_browser: Shopper, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        customer = _customer_whose_renewal_failed(live_portal, email="grace@example.com")
        (unpaid,) = Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN)
    page = customer_browser.page
    _log_in(page, live_portal, email="grace@example.com")
    banner = page.locator("[data-test=recovery-banner]")
    expect(banner).to_contain_text("didn't go through. Your access continues until")
    expect(page.locator("[data-test=status]")).to_have_text("Payment failed")

    # A new card from the Cards page: the card form says what will happen to the unpaid invoice.
    page.locator("nav.main-nav").get_by_role("link", name="Cards").click()
    page.get_by_role("link", name="Add a card").first.click()
    expect(page.locator("[data-test=will-pay]")).to_contain_text("will be paid with this card right away")
    card = page.frame_locator(CARD_FRAME)
    _type_card(card, "4242 4242 4242 4242")
    page.get_by_role("button", name="Save card").click()

    expect(_change_result(page)).to_contain_text("Visa •••• 4242 is saved and is now your default card")
    expect(page.locator("[data-test=invoice-result]")).to_contain_text("is now paid")
    page.screenshot(path=str(artifacts / "change-invoice-paid.png"), full_page=True)
    assert live_portal.api.v1.invoices.retrieve(unpaid.stripe_id).status == "paid"

    live_portal.webhooks_delivered()
    page.get_by_role("link", name="Back to your subscription").click()
    expect(page.locator("[data-test=default-card]")).to_contain_text("Visa •••• 4242")
    expect(page.locator("[data-test=recovery-banner]")).to_have_count(0)
    expect(page.locator("[data-test=open-invoices]")).to_have_text("Nothing to pay. Thank you!")
    expect(page.locator("[data-test=status]")).to_have_text("Active")
    # The payment closed the recovery case: one thank-you, instead of a confirmation and a receipt.
    subjects = [m.subject for m in mail.outbox if "grace@example.com" in m.to]
    assert subjects.count("Thank you: your payment went through") == 1
    assert "Your new card is saved and has paid €19.00" not in subjects


def test_payment_the_bank_wants_approved_is_approved_on_the_change_page(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    page = customer_browser.page
    # A card whose bank asks for 3-D Secure on every payment: once to save it, once to pay.
    unpaid = _owing_customer_saves_a_3ds_card(
        live_portal, page, email="ada@example.com", number="4000 0027 6000 3184"
    )

    expect(_change_result(page)).to_contain_text("Visa •••• 3184 is saved and is now your default card")
    invoice_result = page.locator("[data-test=invoice-result]")
    expect(invoice_result).to_contain_text("Your bank wants you to approve the payment")
    _approve_payment(page, invoice_result)
    _approve_3ds(page)

    expect(invoice_result).to_contain_text("is now paid")
    assert live_portal.api.v1.invoices.retrieve(unpaid.stripe_id).status == "paid"
    live_portal.webhooks_delivered()
    page.get_by_role("link", name="Back to your subscription").click()
    expect(page.locator(".banner-invoice_open")).to_have_count(0)
    expect(page.locator("[data-test=status]")).to_have_text("Active")


def test_payment_approval_that_fails_says_so_on_the_page(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    page = customer_browser.page
    unpaid = _owing_customer_saves_a_3ds_card(
        live_portal, page, email="ada@example.com", number="4000 0027 6000 3184"
    )
    expect(_change_result(page)).to_contain_text("Visa •••• 3184 is saved")
    invoice_result = page.locator("[data-test=invoice-result]")
    expect(invoice_result.get_by_role("link", name="Use another card")).to_be_hidden()
    _approve_payment(page, invoice_result)

    dialog = page.get_by_role("dialog", name="3D Secure authentication")
    bank_challenge(page).locator("#test-source-fail-3ds").click()
    expect(dialog).to_be_hidden()
    expect(invoice_result.get_by_role("alert")).to_have_text(
        "Your bank did not approve the payment, so nothing was charged. Please try again, or use another card."
    )
    invoice_result.get_by_role("link", name="Use another card").click()
    expect(page.get_by_role("heading", name="Add a card")).to_be_visible()
    expect(page.locator("[data-test=will-pay]")).to_be_visible()
    assert live_portal.api.v1.invoices.retrieve(unpaid.stripe_id).status == "open"


def test_declined_card_shows_why_and_saves_nothing(
    live_portal: LivePortal, customer_browser: Shopper, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="linus@example.com")
        old_card = PaymentMethod.objects.get(customer=customer)
    page = customer_browser.page
    _log_in(page, live_portal, email="linus@example.com")
    card = _open_card_form(page)

    _type_card(card, "4000 0000 0000 0002")
    page.get_by_role("button", name="Save card").click()

    errors = page.locator("#card-errors")
    expect(errors).to_have_text("Your card was declined.")
    page.screenshot(path=str(artifacts / "card-add-declined.png"), full_page=True)
    expect(page.get_by_role("button", name="Save card")).to_be_enabled()
    expect(page).to_have_url(re.compile(r"/cards/add/$"))
    stripe_cards = live_portal.api.v1.customers.payment_methods.list(customer.stripe_customer_id).data
    assert [c.id for c in stripe_cards] == [old_card.stripe_id]
    with live_portal.quiet():
        assert not BillingChange.objects.filter(customer=customer).exists()
        assert list(PaymentMethod.objects.filter(customer=customer)) == [old_card]

    page.get_by_role("link", name="Cancel").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    expect(page.locator("[data-test=default-card]")).to_contain_text("Visa •••• 4242")
    assert mail.outbox == [] or all("card" not in m.subject.lower() for m in mail.outbox)


def test_declined_card_then_a_good_one_on_the_same_form(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="mona@example.com", card=None)
    page = customer_browser.page
    _log_in(page, live_portal, email="mona@example.com")
    card = _open_card_form(page)
    _type_card(card, "4000000000000002")
    page.get_by_role("button", name="Save card").click()
    expect(page.locator("#card-errors")).to_have_text("Your card was declined.")

    card.get_by_label("Card number").fill("")
    card.get_by_label("Card number").press_sequentially("5555 5555 5555 4444")
    page.get_by_role("button", name="Save card").click()
    expect(_change_result(page)).to_contain_text("Mastercard •••• 4444 is saved and is now your default card")
    stripe_cards = live_portal.api.v1.customers.payment_methods.list(customer.stripe_customer_id).data
    assert [c.card.last4 for c in stripe_cards] == ["4444"]


def test_card_the_bank_does_not_approve_is_not_saved(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="ada@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="ada@example.com")
    card = _open_card_form(page)
    _type_card(card, "4000 0025 0000 3155")
    page.get_by_role("button", name="Save card").click()
    dialog = page.get_by_role("dialog", name="3D Secure authentication")
    bank_challenge(page).locator("#test-source-fail-3ds").click()
    expect(dialog).to_be_hidden()

    expect(page.locator("#card-errors")).to_have_text(
        "Your bank did not approve the card, so it was not saved."
    )
    expect(page.get_by_role("button", name="Save card")).to_be_enabled()
    stripe_cards = live_portal.api.v1.customers.payment_methods.list(customer.stripe_customer_id).data
    assert [c.card.last4 for c in stripe_cards] == ["4242"]
    with live_portal.quiet():
        assert not BillingChange.objects.filter(customer=customer).exists()


def test_card_form_without_stripe_js_says_so(live_portal: LivePortal, customer_browser: Shopper) -> None:
    with live_portal.quiet():
        customer = make_customer(email="ada@example.com")
    page = customer_browser.page
    # Stripe.js blocked (an ad blocker, a network hiccup): the form must not post an empty card.
    page.route(f"{live_portal.emulator.url}/v3/**", lambda route: route.abort())
    _log_in(page, live_portal, email="ada@example.com")
    _open_card_form(page)
    page.get_by_role("button", name="Save card").click()
    expect(page.locator("#card-errors")).to_have_text(
        "Something went wrong. Your card was not saved; please try again."
    )
    expect(page).to_have_url(re.compile(r"/cards/add/$"))
    with live_portal.quiet():
        assert not BillingChange.objects.filter(customer=customer).exists()


def test_pending_change_updates_by_itself_once_stripe_has_it(
    live_portal: LivePortal, customer_browser: Shopper, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="ada@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="ada@example.com")
    card = _open_card_form(page)
    _type_card(card, "4242424242424242")
    # The card is confirmed with Stripe in the browser, but when the portal reads it back,
    # Stripe is unavailable: the change is recorded and waits.
    requests.post(
        f"{live_portal.emulator.url}/_emulator/faults",
        json={"path_prefix": "/v1/setup_intents/", "method": "GET", "status": 503, "count": 1},
        timeout=5,
    ).raise_for_status()
    page.get_by_role("button", name="Save card").click()

    change_box = page.locator("[data-test=change]")
    expect(change_box).to_have_attribute("data-status", "pending")
    expect(change_box).to_contain_text("Pending: we are sending this to our payment provider.")
    expect(change_box).to_contain_text("Our payment provider is not answering right now.")
    page.screenshot(path=str(artifacts / "change-pending.png"), full_page=True)

    # The worker's next try (what Celery beat runs every minute), while the page keeps polling.
    with live_portal.quiet():
        assert changes.apply_due(now=timezone.now() + dt.timedelta(hours=1)) == 1
    expect(page.locator("[data-test=change-result]")).to_contain_text(
        "Visa •••• 4242 is saved and is now your default card", timeout=15_000
    )
    expect(change_box).to_have_attribute("data-status", "applied")
    with live_portal.quiet():
        (change,) = BillingChange.objects.filter(customer=customer)
    assert change.status == BillingChange.Status.APPLIED
    assert change.attempts == 2


def test_dashboard_fits_a_phone_and_a_desktop(
    live_portal: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        _customer_whose_renewal_failed(live_portal, email="hedy@example.com")
    for name, tab in each_width(portal_chromium):
        page = tab.page
        _log_in(page, live_portal, email="hedy@example.com")
        expect(page.locator("[data-test=recovery-banner]")).to_be_visible()
        expect(page.locator("[data-test=default-card]")).to_contain_text("•••• 0341")
        page.screenshot(path=str(artifacts / f"dashboard-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
        _open_card_form(page)
        expect(page.frame_locator(CARD_FRAME).get_by_label("Card number")).to_be_visible()
        page.screenshot(path=str(artifacts / f"card-add-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Cards").click()
        expect(page.locator("[data-test=cards]")).to_be_visible()
        page.screenshot(path=str(artifacts / f"cards-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
