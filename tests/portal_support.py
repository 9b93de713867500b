"""Helpers for portal and billing tests: customers with Stripe state, and webhooks delivered
from the emulator's event log to the Django test client, signed as Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import requests
import stripe
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from billing import sync
from billing.models import BillingCustomer, Price
from billing.services.customers import customer_create, ensure_stripe_customer

PASSWORD = "correct-horse-battery-staple"
WEBHOOK_URL = "/billing/webhooks/stripe/"


def stripe_client() -> stripe.StripeClient:
    """The official client on the emulator the portal uses (for arranging Stripe-side state)."""
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        stripe_version=stripe.api_version,
        max_network_retries=0,
    )


def make_customer(
    *,
    email: str,
    language: str = "en",
    currency: str = "eur",
    card: str | None = "pm_card_visa",
    price: str | None = "standard_month_eur",
) -> BillingCustomer:
    """A verified user, their billing customer and Stripe customer; optionally a card (default on
    the customer) and a subscription to `price` (a catalog lookup key), mirrored locally."""
    user = get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    customer = customer_create(user=user, email=email, language=language)
    customer.currency = currency
    customer.save(update_fields=["currency"])
    stripe_id = ensure_stripe_customer(customer=customer)
    api = stripe_client()
    pm_id = None
    if card:
        pm_id = api.v1.payment_methods.attach(card, params={"customer": stripe_id}).id
        api.v1.customers.update(stripe_id, params={"invoice_settings": {"default_payment_method": pm_id}})
    if price:
        price_id = Price.objects.get(lookup_key=price).stripe_price_id
        assert price_id
        api.v1.subscriptions.create(params={"customer": stripe_id, "items": [{"price": price_id}]})
    sync.reconcile_customer(customer_id=customer.pk)
    customer.refresh_from_db()
    return customer


def logged_in(customer: BillingCustomer) -> Client:
    client = Client()
    client.force_login(customer.user)
    return client


def signature_header(payload: bytes, *, secret: str | None = None, timestamp: int | None = None) -> str:
    secret = settings.STRIPE_WEBHOOK_SECRET if secret is None else secret
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def post_event(client: Client, event: dict[str, Any], **signing: Any) -> Any:
    payload = json.dumps(event).encode()
    return client.post(
        WEBHOOK_URL,
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature_header(payload, **signing),
    )


def emulator_events(*, types: set[str] | None = None) -> list[dict[str, Any]]:
    """Every event the emulator has emitted since its reset, oldest first, as the JSON Stripe sends."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    headers = {"Authorization": f"Bearer {settings.STRIPE_API_KEY}", "Stripe-Version": stripe.api_version}
    while True:
        page = requests.get(
            f"{settings.STRIPE_API_BASE}/v1/events", params=params, headers=headers, timeout=10
        ).json()
        events.extend(page["data"])
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    # Stripe lists newest first (the emulator by creation order); ids are random, so sorting by
    # (created, id) would shuffle the events of one second.
    events.reverse()
    return [e for e in events if types is None or e["type"] in types]


def deliver_events(client: Client | None = None, *, types: set[str] | None = None) -> list[dict[str, Any]]:
    """Post the emulator's events to the webhook endpoint, as Stripe would; returns them."""
    client = client or Client()
    events = emulator_events(types=types)
    for event in events:
        response = post_event(client, event)
        assert response.status_code == 200, response.content
    return events


def shown_day(value: Any, *, time_zone: str = "") -> str:
    """A date as the portal writes it for a customer in `time_zone` (empty: the portal's display
    zone, Europe/Stockholm), in English: in the evening, UTC's date is not the customer's."""
    from django.utils import timezone

    from billing.money import customer_zone, format_day

    with timezone.override(customer_zone(time_zone)):
        return format_day(value=value, language="en")
