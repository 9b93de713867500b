"""What the emulator serves for the Stripe.js stand-in, checked without a browser."""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import stripe

from stripe_emulator.app import Emulator
from stripe_emulator.stripejs import _with_result


def _get(url: str, data: bytes | None = None) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_script_is_served_at_both_spellings_of_v3(emulator: Emulator) -> None:
    for path in ("/v3", "/v3/"):
        status, content_type, body = _get(emulator.url + path)
        assert status == 200
        assert content_type.startswith("application/javascript")
        assert "window.Stripe = Stripe" in body
        assert "__STRIPE_EMULATOR_ORIGIN__" not in body


def test_card_form_assets_are_served_and_nothing_else(emulator: Emulator) -> None:
    assert _get(emulator.url + "/v3/elements/payment.html")[1].startswith("text/html")
    assert _get(emulator.url + "/v3/elements/payment.js")[1].startswith("application/javascript")
    assert _get(emulator.url + "/v3/elements/payment.css")[1].startswith("text/css")
    assert _get(emulator.url + "/v3/elements/../../stripejs.py")[0] == 404
    assert _get(emulator.url + "/v3/elements/stripe.js")[0] == 404


def test_challenge_page_for_an_unknown_intent_is_not_found(emulator: Emulator) -> None:
    assert _get(emulator.url + "/_emulator/3ds/seti_doesnotexist")[0] == 404
    assert _get(emulator.url + "/_emulator/3ds/seti_doesnotexist", b"outcome=approve")[0] == 404


def test_challenge_refuses_an_unknown_outcome_and_answers_once(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    customer = client.v1.customers.create(params={"email": "kim@example.com"})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 500,
            "currency": "usd",
            "customer": customer.id,
            "allowed_payment_method_types": ["card"],
            "payment_method": "pm_card_authenticationRequired",
            "confirm": True,
        }
    )
    url = f"{fresh_emulator.url}/_emulator/3ds/{intent.id}"
    status, _, page = _get(url)
    assert status == 200
    assert "<title>3D Secure 2 Test Page</title>" in page
    assert 'id="test-source-authorize-3ds"' in page and 'id="test-source-fail-3ds"' in page
    assert "5.00 USD" in page
    # In a frame, it tells the stand-in once it is on screen and can take a click.
    assert '"type": "3ds-ready", "intent": "' + intent.id + '"' in page

    assert _get(url, b"outcome=maybe")[0] == 400
    status, _, page = _get(url, b"outcome=approve")
    assert status == 200 and "Authentication complete" in page
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    # A second answer is refused by the API side; the page reports it instead of crashing.
    assert _get(url, b"outcome=fail")[0] == 400
    # Opening the page again after the fact still tells a waiting stand-in that it is over.
    status, _, page = _get(url)
    assert status == 200 and "3ds-complete" in page


def test_return_url_keeps_its_own_query_and_fragment() -> None:
    intent = {
        "object": "setup_intent",
        "id": "seti_123",
        "client_secret": "seti_123_secret_abc",
        "status": "requires_payment_method",
    }
    url = _with_result("https://shop.test/return?order=7#done", intent, succeeded=False)
    parts = urlsplit(url)
    assert parts.fragment == "done"
    assert parse_qs(parts.query) == {
        "order": ["7"],
        "setup_intent": ["seti_123"],
        "setup_intent_client_secret": ["seti_123_secret_abc"],
        "redirect_status": ["failed"],
    }
