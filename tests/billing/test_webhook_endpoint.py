"""The webhook endpoint accepts only what Stripe signed, recently, for our API version, and stores
nothing else: a refused request leaves no event, no mirror change and no message behind."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client

from billing.models import BillingCustomer, Delivery, Invoice, StripeEvent
from tests.billing.conftest import Deliver
from tests.billing.support import mirror_snapshot, pay_in_stripe
from tests.portal_support import WEBHOOK_URL, emulator_events, make_customer, signature_header

pytestmark = pytest.mark.usefixtures("catalog")


@pytest.fixture()
def paid_behind_our_back() -> tuple[BillingCustomer, dict[str, Any]]:
    """A customer whose mirror shows an open invoice that Stripe has since been paid, and the
    `invoice.paid` event that tells: accepted, it would change the mirror and send a receipt."""
    customer = make_customer(email="late@example.com", card="pm_card_chargeCustomerFail")
    invoice = Invoice.objects.get(customer=customer)
    assert invoice.status == Invoice.Status.OPEN
    pay_in_stripe(customer=customer, invoice_id=invoice.stripe_id)
    [event] = emulator_events(types={"invoice.paid"})
    assert event["data"]["object"]["id"] == invoice.stripe_id
    return customer, event


def _post(body: bytes, **headers: str) -> Any:
    return Client().post(WEBHOOK_URL, data=body, content_type="application/json", **headers)


def _signed(body: bytes, **signing: Any) -> dict[str, str]:
    return {"HTTP_STRIPE_SIGNATURE": signature_header(body, **signing)}


def _forged(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    return body, _signed(body, secret="whsec_someone_else")


def _unsigned(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return json.dumps(event).encode(), {}


def _stale(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    old = int(time.time()) - settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS - 60
    return body, _signed(body, timestamp=old)


def _tampered(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Signed, then changed on the way: the signature no longer matches the body."""
    body = json.dumps(event).encode()
    headers = _signed(body)
    return json.dumps({**event, "id": "evt_other"}).encode(), headers


def _not_json(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = b"event=" + event["id"].encode()
    return body, _signed(body)


def _not_an_event(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event["data"]["object"]).encode()  # signed JSON, but an invoice, not an event
    return body, _signed(body)


def _event_without_object(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({**event, "data": {}}).encode()
    return body, _signed(body)


def _other_api_version(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({**event, "api_version": "2024-06-20"}).encode()
    return body, _signed(body)


REFUSALS: dict[str, Callable[[dict[str, Any]], tuple[bytes, dict[str, str]]]] = {
    "forged signature": _forged,
    "no signature header": _unsigned,
    "stale timestamp": _stale,
    "body changed after signing": _tampered,
    "body not JSON": _not_json,
    "JSON but not an event": _not_an_event,
    "event without an object": _event_without_object,
    "another API version": _other_api_version,
}


@pytest.mark.parametrize("make_request", REFUSALS.values(), ids=REFUSALS.keys())
def test_refused_request_is_400_and_leaves_nothing(
    paid_behind_our_back: tuple[BillingCustomer, dict[str, Any]],
    make_request: Callable[[dict[str, Any]], tuple[bytes, dict[str, str]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    _customer, event = paid_behind_our_back
    before = mirror_snapshot()
    body, headers = make_request(event)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _post(body, **headers)
    assert response.status_code == 400
    assert not callbacks
    assert StripeEvent.objects.count() == 0
    assert mirror_snapshot() == before
    assert Delivery.objects.count() == 0
    assert mail.outbox == []


def test_the_same_event_signed_by_stripe_is_taken(
    paid_behind_our_back: tuple[BillingCustomer, dict[str, Any]], deliver: Deliver
) -> None:
    """The control for the refusals above: the very event they alter, as Stripe sends it, is
    stored once under its id and does change the mirror and send the receipt."""
    customer, event = paid_behind_our_back
    response = deliver(event)
    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert stored.stripe_id == event["id"]
    assert stored.type == "invoice.paid"
    assert stored.customer_stripe_id == customer.stripe_customer_id
    assert stored.status == StripeEvent.Status.PROCESSED
    assert Invoice.objects.get(customer=customer).status == Invoice.Status.PAID
    assert (
        Delivery.objects.get(channel=Delivery.Channel.EMAIL).about
        == f"invoice:{event['data']['object']['id']}"
    )
    assert [m.to for m in mail.outbox] == [[customer.email]]


def test_a_signature_within_the_tolerance_is_taken(
    paid_behind_our_back: tuple[BillingCustomer, dict[str, Any]], deliver: Deliver
) -> None:
    _customer, event = paid_behind_our_back
    recent = int(time.time()) - settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS + 30
    assert deliver(event, timestamp=recent).status_code == 200
    assert StripeEvent.objects.filter(stripe_id=event["id"]).count() == 1


def test_unknown_event_type_is_stored_and_ignored(
    paid_behind_our_back: tuple[BillingCustomer, dict[str, Any]], deliver: Deliver
) -> None:
    customer, _event = paid_behind_our_back
    # The portal has no use for charges; Stripe sends them anyway when an endpoint asks for "*".
    [charge_event] = emulator_events(types={"charge.succeeded"})
    before = mirror_snapshot()
    response = deliver(charge_event)
    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert (stored.stripe_id, stored.type) == (charge_event["id"], "charge.succeeded")
    assert stored.customer_stripe_id == customer.stripe_customer_id
    assert stored.status == StripeEvent.Status.IGNORED
    assert mirror_snapshot() == before
    assert mail.outbox == []


def test_event_about_someone_not_ours_is_stored_and_ignored(deliver: Deliver) -> None:
    """Another application's customer on the same Stripe account: kept, left alone."""
    make_customer(email="ours@example.com")
    [event] = emulator_events(types={"invoice.paid"})
    event = {**event, "data": {"object": {**event["data"]["object"], "customer": "cus_not_ours"}}}
    before = mirror_snapshot()
    assert deliver(event).status_code == 200
    assert StripeEvent.objects.get().status == StripeEvent.Status.IGNORED
    assert mirror_snapshot() == before
    assert mail.outbox == []


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_post_is_allowed(method: str) -> None:
    response = getattr(Client(), method)(WEBHOOK_URL)
    assert response.status_code == 405
    assert StripeEvent.objects.count() == 0
