"""Webhooks: delivered in the background, signed as Stripe signs, retried, and, in chaos
mode, duplicated and reordered."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from stripe_emulator.app import Emulator

from .support import emulator_post


class Receiver:
    """A webhook endpoint on loopback that records what arrives; can fail on purpose."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0
        self.lock = threading.Lock()
        # Notified at each delivery, so a test waits for the deliveries themselves.
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    failing = receiver.fail_first > 0
                    if failing:
                        receiver.fail_first -= 1
                    else:
                        receiver.received.append((dict(self.headers), body))
                        receiver.arrived.notify_all()
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _headers, body in self.received]

    def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout):
                raise AssertionError(f"expected {count} deliveries, got {len(self.received)}")
        return self.events()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def _endpoint(client: stripe.StripeClient, receiver: Receiver, events: list[str] | None = None) -> str:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": events or ["*"]}
    )
    assert endpoint.secret.startswith("whsec_")
    return endpoint.secret


def test_events_are_delivered_signed_and_verifiable(client: stripe.StripeClient, receiver: Receiver) -> None:
    secret = _endpoint(client, receiver)
    customer = client.v1.customers.create(params={"email": "a@example.com"})
    receiver.wait_for(1)
    headers, body = receiver.received[0]
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], secret)
    assert (event.type, event.data.object.id) == ("customer.created", customer.id)
    assert event.api_version == "2026-10-28.endive"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            body.replace(b"a@example.com", b"x@example.com"), headers["Stripe-Signature"], secret
        )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_wrong")


def test_updates_carry_previous_attributes(client: stripe.StripeClient, receiver: Receiver) -> None:
    _endpoint(client, receiver, ["customer.updated"])
    customer = client.v1.customers.create(params={"email": "old@example.com"})
    client.v1.customers.update(customer.id, params={"email": "new@example.com"})
    event = receiver.wait_for(1)[0]
    assert event["data"]["object"]["email"] == "new@example.com"
    assert event["data"]["previous_attributes"] == {"email": "old@example.com"}
    assert event["request"]["id"].startswith("req_")


def test_only_enabled_events_are_sent(
    client: stripe.StripeClient, receiver: Receiver, fresh_emulator: Emulator
) -> None:
    _endpoint(client, receiver, ["customer.updated"])
    customer = client.v1.customers.create(params={"email": "a@example.com"})
    client.v1.customers.update(customer.id, params={"name": "Ada"})
    assert fresh_emulator.dispatcher.idle()
    assert [e["type"] for e in receiver.events()] == ["customer.updated"]


def test_failed_deliveries_are_retried_with_backoff(
    client: stripe.StripeClient, receiver: Receiver, fresh_emulator: Emulator
) -> None:
    emulator_post(fresh_emulator.url, "/_emulator/settings", {"webhook_retry_base_seconds": 0.05})
    receiver.fail_first = 2
    _endpoint(client, receiver)
    client.v1.customers.create()
    event = receiver.wait_for(1)[0]
    # The emulator writes an attempt down once the endpoint has answered it.
    assert fresh_emulator.dispatcher.idle()
    attempts = [d for d in fresh_emulator.state.deliveries if d["event"] == event["id"]]
    assert [(d["attempt"], d["status"]) for d in attempts] == [(1, 500), (2, 500), (3, 200)]
    assert attempts[2]["at"] - attempts[1]["at"] >= attempts[1]["at"] - attempts[0]["at"]  # backing off
    assert client.v1.events.retrieve(event["id"]).pending_webhooks == 0


def test_events_are_listed_and_retrievable(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    client.v1.customers.update(customer.id, params={"name": "Ada"})
    listed = client.v1.events.list(params={"type": "customer.*"})
    assert [e.type for e in listed.data] == ["customer.updated", "customer.created"]
    assert client.v1.events.retrieve(listed.data[1].id).data.object.id == customer.id


def test_a_deleted_endpoint_gets_nothing_more(
    client: stripe.StripeClient, receiver: Receiver, fresh_emulator: Emulator
) -> None:
    client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["*"]})
    endpoint = client.v1.webhook_endpoints.list().data[0]
    assert "secret" not in endpoint  # shown once, at creation
    client.v1.webhook_endpoints.delete(endpoint.id)
    client.v1.customers.create()
    assert fresh_emulator.dispatcher.idle()
    assert receiver.events() == []


def test_chaos_mode_duplicates_deliveries(
    client: stripe.StripeClient, receiver: Receiver, fresh_emulator: Emulator
) -> None:
    emulator_post(fresh_emulator.url, "/_emulator/settings", {"chaos": {"duplicate_rate": 1.0, "seed": 7}})
    _endpoint(client, receiver, ["customer.created"])
    for _ in range(3):
        client.v1.customers.create()
    events = receiver.wait_for(6)
    ids = [e["id"] for e in events]
    assert len(ids) == 6 and len(set(ids)) == 3


def test_chaos_mode_reorders_deliveries(
    client: stripe.StripeClient, receiver: Receiver, fresh_emulator: Emulator
) -> None:
    emulator_post(
        fresh_emulator.url,
        "/_emulator/settings",
        {"chaos": {"shuffle_window": 10, "max_delay_seconds": 0.3, "seed": 11}},
    )
    _endpoint(client, receiver, ["customer.created"])
    created = [client.v1.customers.create().id for _ in range(20)]
    events = receiver.wait_for(20)
    arrived = [e["data"]["object"]["id"] for e in events]
    assert sorted(arrived) == sorted(created)
    assert arrived != created


def test_flushing_an_endpoint_waits_out_its_retries(
    client: stripe.StripeClient, receiver: Receiver, fresh_emulator: Emulator
) -> None:
    """Flushed for one endpoint, every event sent to it has had its last attempt: here the
    third, after two refusals and the backoff between them."""
    emulator_post(fresh_emulator.url, "/_emulator/settings", {"webhook_retry_base_seconds": 0.3})
    receiver.fail_first = 2
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["customer.created"]}
    )
    client.v1.customers.create()

    flushed = emulator_post(
        fresh_emulator.url, "/_emulator/webhooks/flush", {"endpoint": endpoint.id, "timeout": 10}
    )
    assert flushed == {"idle": True}
    assert [e["type"] for e in receiver.events()] == ["customer.created"]
    assert [d["status"] for d in fresh_emulator.state.deliveries] == [500, 500, 200]
    assert fresh_emulator.dispatcher.settled(endpoint.id, timeout=0)
