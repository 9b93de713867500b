"""Helpers for driving the emulator in tests: catalog set-up, clocks, raw HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import stripe

DAY = 86400
#: 2026-01-01T00:00:00Z, a fixed start so month lengths are known.
JAN_1 = 1767225600


@dataclass
class Catalog:
    monthly: stripe.Price
    quarterly: stripe.Price
    yearly: stripe.Price
    basic_monthly: stripe.Price


def catalog(client: stripe.StripeClient, currency: str = "eur") -> Catalog:
    pro = client.v1.products.create(params={"name": "Pro"})
    basic = client.v1.products.create(params={"name": "Basic"})

    def price(product: str, amount: int, interval: str, count: int = 1) -> stripe.Price:
        return client.v1.prices.create(
            params={
                "product": product,
                "currency": currency,
                "unit_amount": amount,
                "recurring": {"interval": interval, "interval_count": count},
            }
        )

    return Catalog(
        monthly=price(pro.id, 3000, "month"),
        quarterly=price(pro.id, 8100, "month", 3),
        yearly=price(pro.id, 30000, "year"),
        basic_monthly=price(basic.id, 1000, "month"),
    )


def customer_on_clock(
    client: stripe.StripeClient, *, card: str = "pm_card_visa", frozen_time: int = JAN_1
) -> tuple[stripe.Customer, stripe.test_helpers.TestClock, str]:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": frozen_time})
    customer = client.v1.customers.create(params={"email": "ada@example.com", "test_clock": clock.id})
    pm = client.v1.payment_methods.attach(card, params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    return customer, clock, pm.id


def subscribe(client: stripe.StripeClient, customer: str, price: str, **extra: Any) -> stripe.Subscription:
    return client.v1.subscriptions.create(
        params={
            "customer": customer,
            "items": [{"price": price}],
            "billing_mode": {"type": "flexible"},
            **extra,
        }
    )


def advance(client: stripe.StripeClient, clock: str, to: int, timeout: float = 30) -> None:
    """Advance a test clock and wait, as a Stripe client must, until it is ready again."""
    client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})
    deadline = time.monotonic() + timeout
    while client.v1.test_helpers.test_clocks.retrieve(clock).status != "ready":
        if time.monotonic() > deadline:
            raise AssertionError(f"test clock {clock} did not become ready within {timeout}s")
        time.sleep(0.02)


def event_types(client: stripe.StripeClient, **filters: Any) -> list[str]:
    """Event types in the order they happened (the API lists newest first)."""
    events = client.v1.events.list(params={"limit": 100, **filters})
    return [e.type for e in reversed(events.data)]


def raw(
    base: str,
    method: str,
    path: str,
    data: dict[str, Any] | str | None = None,
    headers: dict[str, str] | None = None,
    key: str | None = "sk_test_emulator",
) -> tuple[int, dict[str, str], Any]:
    """A request without the official client, to test the wire protocol itself."""
    body = None
    if data is not None:
        body = (data if isinstance(data, str) else urllib.parse.urlencode(data, doseq=True)).encode()
    request = urllib.request.Request(base + path, data=body, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def emulator_post(base: str, path: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())
