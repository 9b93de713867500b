"""A customer adds a card (and pays) in a real browser through the Stripe.js stand-in.

The merchant page is served from another loopback port and loads ``<emulator>/v3/``
exactly as a production page loads ``https://js.stripe.com/v3/``; the card form is the
emulator's iframe, and the API's answers are checked with the official client."""

from __future__ import annotations

import pathlib
import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import stripe

from .conftest import MerchantSite, Shopper, bank_challenge, playwright_sync

expect = playwright_sync.expect

CARD_FRAME = "iframe[title='Secure payment input frame']"


def _setup_intent(client: stripe.StripeClient) -> tuple[str, Any]:
    customer = client.v1.customers.create(params={"email": "jenny@example.com", "name": "Jenny Rosen"})
    intent = client.v1.setup_intents.create(
        params={"customer": customer.id, "allowed_payment_method_types": ["card"], "usage": "off_session"}
    )
    return customer.id, intent


def _open_checkout(
    shopper: Shopper, site: MerchantSite, client_secret: str, *, redirect: str = "if_required"
) -> Any:
    page = shopper.page
    page.goto(f"{site.url}/?{urlencode({'client_secret': client_secret, 'redirect': redirect})}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page.frame_locator(CARD_FRAME)


def _type_card(card: Any, number: str, expiry: str = "12/34", cvc: str = "123") -> None:
    card.get_by_label("Card number").press_sequentially(number)
    card.get_by_label("Expiration date").press_sequentially(expiry)
    card.get_by_label("Security code").press_sequentially(cvc)


def _result(shopper: Shopper) -> Any:
    return shopper.page.get_by_role("status")


def _submit(shopper: Shopper, name: str = "Save card") -> None:
    shopper.page.get_by_role("button", name=name).click()


def test_card_is_saved_and_attached_to_the_customer(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper, artifacts: pathlib.Path
) -> None:
    customer_id, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)

    _type_card(card, "4242 4242 4242 4242")
    expect(card.get_by_label("Card number")).to_have_value("4242 4242 4242 4242")
    expect(card.get_by_label("Expiration date")).to_have_value("12 / 34")
    expect(card.get_by_text("Visa", exact=True)).to_be_visible()
    expect(shopper.page.locator("body")).to_have_attribute("data-complete", "true")
    shopper.page.screenshot(path=str(artifacts / "payment-form.png"), full_page=True)
    _submit(shopper)

    expect(_result(shopper)).to_have_text("Your card has been saved.")
    saved = client.v1.setup_intents.retrieve(intent.id)
    assert saved.status == "succeeded"
    assert saved.payment_method
    cards = client.v1.customers.payment_methods.list(customer_id).data
    assert [pm.id for pm in cards] == [saved.payment_method]
    assert cards[0].card is not None and (cards[0].card.brand, cards[0].card.last4) == ("visa", "4242")
    # The card number went from the emulator's own frame to the API, never via the merchant page.
    assert shopper.api_calls(f"/v1/setup_intents/{intent.id}/confirm")


def test_mastercard_is_saved_by_pressing_enter(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    _, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _type_card(card, "5555555555554444")
    expect(card.get_by_text("Mastercard", exact=True)).to_be_visible()
    # Enter in the card form submits the merchant's form, as Stripe's iframe does.
    card.get_by_label("Security code").press("Enter")
    expect(_result(shopper)).to_have_text("Your card has been saved.")


def test_3d_secure_challenge_completed_saves_the_card(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper, artifacts: pathlib.Path
) -> None:
    customer_id, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _type_card(card, "4000 0025 0000 3155")
    _submit(shopper)

    dialog = shopper.page.get_by_role("dialog", name="3D Secure authentication")
    expect(dialog).to_be_visible()
    challenge = bank_challenge(shopper.page)
    expect(challenge.get_by_role("heading", name="3D Secure 2 Test Page")).to_be_visible()
    shopper.page.screenshot(path=str(artifacts / "3ds-challenge.png"))
    challenge.get_by_role("button", name="Complete").click()

    expect(dialog).to_be_hidden()
    expect(_result(shopper)).to_have_text("Your card has been saved.")
    assert client.v1.setup_intents.retrieve(intent.id).status == "succeeded"
    assert len(client.v1.customers.payment_methods.list(customer_id).data) == 1


def test_3d_secure_challenge_failed_shows_an_error_and_saves_nothing(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    customer_id, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _type_card(card, "4000002500003155")
    _submit(shopper)

    bank_challenge(shopper.page).get_by_role("button", name="Fail").click()

    expect(shopper.page.get_by_role("dialog", name="3D Secure authentication")).to_be_hidden()
    expect(_result(shopper)).to_have_text(re.compile("authenticat", re.IGNORECASE))
    expect(_result(shopper)).to_have_attribute("data-detail", "setup_intent_authentication_failure")
    after = client.v1.setup_intents.retrieve(intent.id)
    assert after.status == "requires_payment_method"
    assert client.v1.customers.payment_methods.list(customer_id).data == []


def test_closing_the_3d_secure_challenge_counts_as_failed(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    _, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _type_card(card, "4000002760003184")
    _submit(shopper)

    shopper.page.get_by_role("button", name="Cancel authentication").click()

    expect(_result(shopper)).to_have_attribute("data-detail", "setup_intent_authentication_failure")
    assert client.v1.setup_intents.retrieve(intent.id).status == "requires_payment_method"


def test_declined_card_shows_the_decline_message(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    customer_id, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _type_card(card, "4000000000000002")
    _submit(shopper)

    expect(_result(shopper)).to_have_text("Your card was declined.")
    assert client.v1.setup_intents.retrieve(intent.id).status == "requires_payment_method"
    assert client.v1.customers.payment_methods.list(customer_id).data == []


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("4000000000009995", "Your card has insufficient funds."),
        ("4000000000000069", "Your card has expired."),
        ("4000000000000127", "Your card's security code is incorrect."),
        ("4000000000000119", "An error occurred while processing your card. Try again in a little bit."),
    ],
)
def test_other_declines_show_stripes_messages(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper, number: str, message: str
) -> None:
    _, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _type_card(card, number)
    _submit(shopper)
    expect(_result(shopper)).to_have_text(message)


def test_mistyped_card_number_is_caught_before_anything_is_sent(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    _, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _type_card(card, "4242 4242 4242 4241")

    # Shown under the field as soon as the number is long enough to be known wrong.
    expect(card.get_by_text("Your card number is invalid.")).to_be_visible()
    expect(card.get_by_label("Card number")).to_have_attribute("aria-invalid", "true")
    _submit(shopper)

    expect(_result(shopper)).to_have_text("Your card number is invalid.")
    expect(_result(shopper)).to_have_attribute("data-detail", "invalid_number")
    assert shopper.api_calls("/confirm") == []
    assert client.v1.setup_intents.retrieve(intent.id).status == "requires_payment_method"


def test_empty_form_lists_every_missing_field(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper, artifacts: pathlib.Path
) -> None:
    _, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _submit(shopper)

    expect(card.get_by_text("Your card number is incomplete.")).to_be_visible()
    expect(card.get_by_text("Your card's expiration date is incomplete.")).to_be_visible()
    expect(card.get_by_text("Your card's security code is incomplete.")).to_be_visible()
    expect(_result(shopper)).to_have_attribute("data-detail", "incomplete_number")
    expect(card.get_by_label("Card number")).to_be_focused()
    shopper.page.screenshot(path=str(artifacts / "payment-form-errors.png"))
    assert shopper.api_calls("/confirm") == []


def test_expiry_in_the_past_is_refused(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    _, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _type_card(card, "4242424242424242", expiry="01/20")
    expect(card.get_by_text("Your card's expiration year is in the past.")).to_be_visible()
    _submit(shopper)
    expect(_result(shopper)).to_have_attribute("data-detail", "invalid_expiry_year_past")
    assert shopper.api_calls("/confirm") == []


def test_redirect_always_returns_to_the_merchant_with_the_result(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    _, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret, redirect="always")
    _type_card(card, "4242424242424242")
    _submit(shopper)

    shopper.page.wait_for_url(f"{merchant_site.url}/return?**")
    expect(shopper.page.get_by_role("heading", name="Back at the merchant")).to_be_visible()
    query = parse_qs(urlsplit(shopper.page.url).query)
    assert query == {
        "setup_intent": [intent.id],
        "setup_intent_client_secret": [intent.client_secret],
        "redirect_status": ["succeeded"],
    }


def test_3d_secure_by_redirect_returns_to_the_merchant(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    _, intent = _setup_intent(client)
    card = _open_checkout(shopper, merchant_site, intent.client_secret, redirect="always")
    _type_card(card, "4000002500003155")
    _submit(shopper)

    # With a return_url the API asks for a redirect: the whole tab goes to the bank's page.
    expect(shopper.page).to_have_title("3D Secure 2 Test Page")
    shopper.page.get_by_role("button", name="Complete").click()

    shopper.page.wait_for_url(f"{merchant_site.url}/return?**")
    query = parse_qs(urlsplit(shopper.page.url).query)
    assert query["setup_intent"] == [intent.id]
    assert query["redirect_status"] == ["succeeded"]
    assert client.v1.setup_intents.retrieve(intent.id).status == "succeeded"


def test_customer_pays_with_a_card_that_needs_3d_secure(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    customer = client.v1.customers.create(params={"email": "pat@example.com"})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "eur",
            "customer": customer.id,
            "allowed_payment_method_types": ["card"],
        }
    )
    assert intent.client_secret
    card = _open_checkout(shopper, merchant_site, intent.client_secret)
    _type_card(card, "4000002760003184")
    _submit(shopper, "Pay now")

    challenge = bank_challenge(shopper.page)
    expect(challenge.get_by_text("20.00 EUR")).to_be_visible()
    challenge.get_by_role("button", name="Complete").click()

    expect(_result(shopper)).to_have_text("Payment succeeded.")
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


def test_payment_confirmed_by_the_server_is_finished_with_handle_next_action(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    customer = client.v1.customers.create(params={"email": "sam@example.com"})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "customer": customer.id,
            "allowed_payment_method_types": ["card"],
            "payment_method": "pm_card_authenticationRequired",
            "confirm": True,
        }
    )
    assert intent.status == "requires_action" and intent.client_secret
    page = shopper.page
    page.goto(
        f"{merchant_site.url}/?{urlencode({'client_secret': intent.client_secret, 'flow': 'next_action'})}"
    )
    _submit(shopper, "Authenticate payment")

    bank_challenge(page).get_by_role("button", name="Complete").click()

    expect(_result(shopper)).to_have_text("Payment succeeded.")
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


def test_retrieve_intent_answers_like_stripe_js(
    client: stripe.StripeClient, merchant_site: MerchantSite, shopper: Shopper
) -> None:
    _, intent = _setup_intent(client)
    _open_checkout(shopper, merchant_site, intent.client_secret)
    page = shopper.page

    found = page.evaluate(
        "async (secret) => { const r = await checkout.stripe.retrieveSetupIntent(secret);"
        " return {id: r.setupIntent.id, status: r.setupIntent.status}; }",
        intent.client_secret,
    )
    assert found == {"id": intent.id, "status": "requires_payment_method"}
    wrong = page.evaluate(
        "async (secret) => (await checkout.stripe.retrieveSetupIntent(secret)).error",
        f"{intent.id}_secret_wrong",
    )
    assert wrong["type"] == "invalid_request_error"
    # A malformed secret is a programming mistake: Stripe.js throws instead of resolving.
    thrown = page.evaluate(
        "() => { try { checkout.stripe.retrievePaymentIntent('nonsense'); } catch (e) { return e.name; } }"
    )
    assert thrown == "IntegrationError"


def test_card_form_fits_a_phone(
    client: stripe.StripeClient, merchant_site: MerchantSite, phone_shopper: Shopper, artifacts: pathlib.Path
) -> None:
    _, intent = _setup_intent(client)
    card = _open_checkout(phone_shopper, merchant_site, intent.client_secret)
    page = phone_shopper.page
    width = page.viewport_size["width"]
    for label in ("Card number", "Expiration date", "Security code"):
        field = card.get_by_label(label)
        expect(field).to_be_visible()
        box = field.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, label
        assert box["height"] >= 44, f"{label} is too small to tap"
        # Below 16px, phones zoom the page in when the field gets focus.
        assert field.evaluate("el => parseFloat(getComputedStyle(el).fontSize)") >= 16
        assert field.get_attribute("inputmode") == "numeric"
    _type_card(card, "4242424242424242")
    page.screenshot(path=str(artifacts / "payment-form-phone.png"), full_page=True)
    _submit(phone_shopper)
    expect(_result(phone_shopper)).to_have_text("Your card has been saved.")
