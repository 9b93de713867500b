"""Stripe's wire protocol: keys, errors, unknown parameters, idempotency, lists, expand."""

from __future__ import annotations

import threading

import pytest
import stripe

from stripe_emulator import forms
from stripe_emulator.app import Emulator

from .support import catalog, emulator_post, raw, subscribe


def test_bracket_nesting_and_both_array_styles_decode() -> None:
    decoded = forms.decode(
        "items[0][price]=p1&items[1][price]=p2&items[1][quantity]=3&expand[]=a&expand[]=b.c&metadata[k]=v"
    )
    assert decoded == {
        "items": [{"price": "p1"}, {"price": "p2", "quantity": "3"}],
        "expand": ["a", "b.c"],
        "metadata": {"k": "v"},
    }


def test_a_request_without_a_key_gets_401(fresh_emulator: Emulator) -> None:
    status, headers, body = raw(fresh_emulator.url, "GET", "/v1/customers", key=None)
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert "API key" in body["error"]["message"]
    assert headers["Request-Id"].startswith("req_")


def test_a_live_or_malformed_key_is_refused(fresh_emulator: Emulator) -> None:
    status, _headers, body = raw(fresh_emulator.url, "GET", "/v1/customers", key="sk_live_abcdefghijkl")
    assert (status, body["error"]["code"]) == (401, "api_key_invalid")


def test_every_response_has_its_own_request_id(fresh_emulator: Emulator) -> None:
    ids = {raw(fresh_emulator.url, "GET", "/v1/customers")[1]["Request-Id"] for _ in range(3)}
    assert len(ids) == 3


def test_an_unknown_parameter_is_refused_by_name(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.create(params={"emial": "x@example.com"})  # type: ignore[typeddict-unknown-key]
    assert (caught.value.code, caught.value.param, caught.value.http_status) == (
        "parameter_unknown",
        "emial",
        400,
    )
    prices = catalog(client)
    customer = client.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError) as nested:
        client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": prices.monthly.id, "qty": 2}]}
        )  # type: ignore
    assert nested.value.param == "items[0][qty]"
    assert client.v1.subscriptions.list().data == []


def test_wrong_types_and_missing_parameters_are_refused(fresh_emulator: Emulator) -> None:
    status, _h, body = raw(
        fresh_emulator.url,
        "POST",
        "/v1/prices",
        {"currency": "eur", "unit_amount": "ten", "product": "prod_x"},
    )
    assert (status, body["error"]["code"], body["error"]["param"]) == (
        400,
        "parameter_invalid_integer",
        "unit_amount",
    )
    status, _h, body = raw(
        fresh_emulator.url, "POST", "/v1/prices", {"unit_amount": "10", "product": "prod_x"}
    )
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "parameter_missing", "currency")


def test_missing_objects_and_urls_are_404(client: stripe.StripeClient, fresh_emulator: Emulator) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.retrieve("cus_missing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")
    assert raw(fresh_emulator.url, "GET", "/v1/no_such_things")[0] == 404


def test_an_api_version_other_than_the_pinned_one_is_refused(fresh_emulator: Emulator) -> None:
    status, _h, body = raw(
        fresh_emulator.url, "GET", "/v1/customers", headers={"Stripe-Version": "2020-08-27"}
    )
    assert status == 400 and "2026-10-28.endive" in body["error"]["message"]


def test_same_idempotency_key_and_body_replays_the_first_answer(fresh_emulator: Emulator) -> None:
    first = raw(
        fresh_emulator.url,
        "POST",
        "/v1/customers",
        {"email": "a@example.com"},
        headers={"Idempotency-Key": "key-1"},
    )
    again = raw(
        fresh_emulator.url,
        "POST",
        "/v1/customers",
        {"email": "a@example.com"},
        headers={"Idempotency-Key": "key-1"},
    )
    assert first[0] == again[0] == 200
    assert first[2]["id"] == again[2]["id"]
    assert again[1].get("Idempotent-Replayed") == "true"
    assert len(raw(fresh_emulator.url, "GET", "/v1/customers")[2]["data"]) == 1


def test_same_idempotency_key_with_another_body_is_a_400(fresh_emulator: Emulator) -> None:
    raw(
        fresh_emulator.url,
        "POST",
        "/v1/customers",
        {"email": "a@example.com"},
        headers={"Idempotency-Key": "k"},
    )
    status, _h, body = raw(
        fresh_emulator.url,
        "POST",
        "/v1/customers",
        {"email": "b@example.com"},
        headers={"Idempotency-Key": "k"},
    )
    assert (status, body["error"]["type"]) == (400, "idempotency_error")


def test_a_decline_is_replayed_not_charged_again(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    for _ in range(2):
        with pytest.raises(stripe.CardError):
            client.v1.payment_intents.create(
                params={
                    "amount": 1000,
                    "currency": "eur",
                    "customer": customer.id,
                    "confirm": True,
                    "payment_method": "pm_card_chargeDeclined",
                },
                options={"idempotency_key": "pay-once"},
            )
    assert len(client.v1.charges.list(params={"customer": customer.id}).data) == 1


def test_a_request_refused_for_its_parameters_does_not_burn_the_key(fresh_emulator: Emulator) -> None:
    bad = raw(
        fresh_emulator.url,
        "POST",
        "/v1/customers",
        {"emial": "a@example.com"},
        headers={"Idempotency-Key": "fix-me"},
    )
    assert bad[0] == 400
    good = raw(
        fresh_emulator.url,
        "POST",
        "/v1/customers",
        {"email": "a@example.com"},
        headers={"Idempotency-Key": "fix-me"},
    )
    assert good[0] == 200


def test_a_concurrent_request_with_the_same_key_gets_409(fresh_emulator: Emulator) -> None:
    emulator_post(
        fresh_emulator.url,
        "/_emulator/faults",
        {"delay_seconds": 1.0, "path_prefix": "/v1/customers", "method": "POST"},
    )
    results: list[int] = []
    slow = threading.Thread(
        target=lambda: results.append(
            raw(
                fresh_emulator.url,
                "POST",
                "/v1/customers",
                {"email": "a@example.com"},
                headers={"Idempotency-Key": "busy"},
            )[0]
        )
    )
    slow.start()
    assert fresh_emulator.key_in_use("busy", timeout=5)
    second = raw(
        fresh_emulator.url,
        "POST",
        "/v1/customers",
        {"email": "a@example.com"},
        headers={"Idempotency-Key": "busy"},
    )
    slow.join()
    assert results == [200]
    assert (second[0], second[2]["error"]["type"]) == (409, "idempotency_error")


def test_429_on_request_and_the_client_retries_through_it(fresh_emulator: Emulator) -> None:
    emulator_post(
        fresh_emulator.url, "/_emulator/faults", {"status": 429, "count": 2, "path_prefix": "/v1/customers"}
    )
    patient = stripe.StripeClient(
        "sk_test_emulator", base_addresses={"api": fresh_emulator.url}, max_network_retries=3
    )
    assert patient.v1.customers.create(params={"email": "a@example.com"}).email == "a@example.com"
    emulator_post(
        fresh_emulator.url, "/_emulator/faults", {"status": 429, "count": 1, "path_prefix": "/v1/customers"}
    )
    impatient = stripe.StripeClient(
        "sk_test_emulator", base_addresses={"api": fresh_emulator.url}, max_network_retries=0
    )
    with pytest.raises(stripe.RateLimitError):
        impatient.v1.customers.list()


def test_a_server_error_retried_by_the_client_creates_one_object(fresh_emulator: Emulator) -> None:
    emulator_post(
        fresh_emulator.url,
        "/_emulator/faults",
        {"status": 500, "count": 1, "path_prefix": "/v1/customers", "method": "POST"},
    )
    retrying = stripe.StripeClient(
        "sk_test_emulator", base_addresses={"api": fresh_emulator.url}, max_network_retries=2
    )
    retrying.v1.customers.create(params={"email": "once@example.com"})
    assert len(retrying.v1.customers.list(params={"email": "once@example.com"}).data) == 1


def test_lists_page_with_starting_after(client: stripe.StripeClient) -> None:
    created = [client.v1.customers.create(params={"email": f"c{n}@example.com"}).id for n in range(25)]
    first = client.v1.customers.list(params={"limit": 10})
    assert first.has_more and len(first.data) == 10
    seen = [c.id for c in client.v1.customers.list(params={"limit": 10}).auto_paging_iter()]
    assert seen == list(reversed(created))  # newest first, each once


def test_expand_follows_ids_and_rejects_unknown_paths(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer = client.v1.customers.create(params={"email": "e@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    sub = subscribe(
        client,
        customer.id,
        prices.monthly.id,
        expand=["customer.invoice_settings.default_payment_method", "latest_invoice"],
    )
    assert sub.customer.invoice_settings.default_payment_method.card.last4 == "4242"
    listed = client.v1.subscriptions.list(params={"expand": ["data.customer"]})
    assert listed.data[0].customer.email == "e@example.com"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice.payment_intent"]})


def test_a_publishable_key_reaches_only_what_stripe_js_may(
    fresh_emulator: Emulator, client: stripe.StripeClient
) -> None:
    status, _h, _b = raw(fresh_emulator.url, "GET", "/v1/customers", key="pk_test_emulator")
    assert status in (401, 403)
    customer = client.v1.customers.create()
    intent = client.v1.setup_intents.create(params={"customer": customer.id})
    ok = raw(
        fresh_emulator.url,
        "GET",
        f"/v1/setup_intents/{intent.id}?client_secret={intent.client_secret}",
        key="pk_test_emulator",
    )
    wrong = raw(
        fresh_emulator.url,
        "GET",
        f"/v1/setup_intents/{intent.id}?client_secret=seti_x_secret_y",
        key="pk_test_emulator",
    )
    assert ok[0] == 200 and ok[2]["status"] == "requires_payment_method"
    assert wrong[0] == 400


def test_a_request_its_client_gave_up_on_still_completes_and_can_be_waited_for(
    fresh_emulator: Emulator,
) -> None:
    """A client's timeout is no cancellation: Stripe finishes the request, and the same key then
    replays its answer.  `requests_idle` is how a test waits for that instead of sleeping."""
    emulator_post(
        fresh_emulator.url,
        "/_emulator/faults",
        {"delay_seconds": 0.5, "path_prefix": "/v1/customers", "method": "POST"},
    )
    hasty = stripe.StripeClient(
        "sk_test_emulator",
        base_addresses={"api": fresh_emulator.url},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=0.1),
    )
    with pytest.raises(stripe.APIConnectionError):
        hasty.v1.customers.create(params={"email": "late@example.com"}, options={"idempotency_key": "late-1"})
    assert not fresh_emulator.requests_idle(timeout=0)
    assert fresh_emulator.requests_idle(timeout=10)
    patient = stripe.StripeClient("sk_test_emulator", base_addresses={"api": fresh_emulator.url})
    again = patient.v1.customers.create(
        params={"email": "late@example.com"}, options={"idempotency_key": "late-1"}
    )
    assert [c.id for c in patient.v1.customers.list(params={"email": "late@example.com"}).data] == [again.id]
