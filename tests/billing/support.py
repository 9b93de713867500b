"""Helpers for the billing and portal tests: Stripe-side arrangements in the emulator, snapshots of
the mirror, a listener that counts every attempt to reach "Stripe", and threads that start together."""

from __future__ import annotations

import datetime as dt
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from billing import changes
from billing.models import (
    BillingChange,
    BillingCustomer,
    Delivery,
    Invoice,
    PaymentMethod,
    Price,
    Subscription,
    Tier,
)
from billing.services import cards
from billing.services.cards import CardAddResult
from tests.portal_support import stripe_client


def confirmed_setup_intent(*, customer: BillingCustomer, payment_method: str = "pm_card_mastercard") -> str:
    """A SetupIntent the portal started, confirmed with a test card as Stripe.js would after the
    customer typed it (the emulator lets the secret key confirm with `pm_card_*`); the bank's
    3-D Secure check, if the card asks for one, is approved.  Returns the SetupIntent id."""
    client_secret = cards.card_setup_start(customer=customer, attempt=secrets.token_hex(6))
    intent_id = client_secret.split("_secret_")[0]
    intent = stripe_client().v1.setup_intents.confirm(intent_id, params={"payment_method": payment_method})
    if intent.status == "requires_action":
        assert authenticate(intent_id=intent_id) == "succeeded"
    return intent_id


def card_added(change: BillingChange) -> CardAddResult:
    """What adding a card found, as the change kind declares its result."""
    result = changes.result_of(change)
    assert isinstance(result, CardAddResult), (change.status, change.error_code, change.error_message)
    return result


def authenticate(*, intent_id: str, outcome: str = "approve") -> str:
    """Answer the bank's 3-D Secure challenge for an intent, as the customer would in the browser."""
    answer = requests.post(
        f"{settings.STRIPE_API_BASE}/_emulator/intents/{intent_id}/authenticate",
        json={"outcome": outcome},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["status"])


def pay_in_stripe(*, customer: BillingCustomer, invoice_id: str, card: str = "pm_card_visa") -> None:
    """The open invoice is paid at Stripe (say, from the hosted invoice page), without the portal."""
    api = stripe_client()
    pm = api.v1.payment_methods.attach(card, params={"customer": customer.stripe_customer_id})
    api.v1.invoices.pay(invoice_id, params={"payment_method": pm.id})


def successful_charges(*, customer: BillingCustomer) -> list[Any]:
    page = stripe_client().v1.charges.list(params={"customer": customer.stripe_customer_id, "limit": 100})
    return [charge for charge in page.data if charge.status == "succeeded"]


def mirror_snapshot() -> dict[str, list[dict[str, Any]]]:
    """Everything the portal holds about Stripe, to compare before and after."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (BillingCustomer, Subscription, PaymentMethod, Invoice, BillingChange, Delivery)
    }


# --------------------------------------------------------------------------- customers without Stripe


def mirror_customer(*, email: str, cards: int = 1, invoices: int = 1, stripe_id: str = "") -> BillingCustomer:
    """A customer whose Stripe state exists only in the mirror: rows written directly, so that pages
    can be rendered for any number of cards and invoices without a Stripe account behind them."""
    user = get_user_model().objects.create_user(username=email, email=email, password="x")
    customer = BillingCustomer.objects.create(
        user=user, email=email, stripe_customer_id=stripe_id or f"cus_{secrets.token_hex(8)}"
    )
    now = timezone.now()
    tier, _ = Tier.objects.get_or_create(key="standard", defaults={"name": "Standard", "rank": 2})
    price, _ = Price.objects.get_or_create(
        lookup_key="standard_month_eur",
        defaults={"tier": tier, "interval": "month", "currency": "eur", "unit_amount": 1900},
    )
    Subscription.objects.create(
        stripe_id=f"sub_{secrets.token_hex(8)}",
        customer=customer,
        status=Subscription.Status.PAST_DUE,
        price=price,
        currency="eur",
        unit_amount=1900,
        current_period_start=now,
        current_period_end=now + dt.timedelta(days=30),
        created=now,
        stripe_state_at=now,
    )
    add_mirror_rows(customer=customer, cards=cards, invoices=invoices)
    return customer


def add_mirror_rows(*, customer: BillingCustomer, cards: int, invoices: int) -> None:
    now = timezone.now()
    start = PaymentMethod.objects.filter(customer=customer).count()
    PaymentMethod.objects.bulk_create(
        PaymentMethod(
            stripe_id=f"pm_{secrets.token_hex(10)}",
            customer=customer,
            brand="visa" if n % 2 else "mastercard",
            last4=f"{1000 + n:04d}",
            # Some expired, some expiring, some far off: every branch of the pages runs.
            exp_month=1 + n % 12,
            exp_year=now.year - 1 + n % 4,
            created=now - dt.timedelta(minutes=n),
            stripe_state_at=now,
        )
        for n in range(start, start + cards)
    )
    if not customer.default_payment_method_id:
        first = PaymentMethod.objects.filter(customer=customer).order_by("pk").first()
        second = PaymentMethod.objects.filter(customer=customer).order_by("pk")[1:2].first()
        customer.default_payment_method_id = first.stripe_id if first else ""
        customer.backup_payment_method_id = second.stripe_id if second else ""
        customer.save(update_fields=["default_payment_method_id", "backup_payment_method_id"])
    statuses = [Invoice.Status.OPEN, Invoice.Status.PAID, Invoice.Status.VOID]
    Invoice.objects.bulk_create(
        Invoice(
            stripe_id=f"in_{secrets.token_hex(10)}",
            customer=customer,
            number=f"INV-{n:04d}",
            status=statuses[n % 3],
            currency="eur",
            total=1900,
            amount_due=1900,
            amount_remaining=1900 if n % 3 == 0 else 0,
            amount_paid=1900 if n % 3 == 1 else 0,
            hosted_invoice_url=f"https://invoice.example/{n}",
            created=now - dt.timedelta(days=n),
            stripe_state_at=now,
        )
        for n in range(invoices)
    )
    for _ in range(max(1, invoices // 8)):
        BillingChange.objects.create(
            customer=customer, kind="card_set_default", params={"payment_method": "pm_x"}
        )
        invoice_id = f"in_{secrets.token_hex(6)}"
        for channel in (Delivery.Channel.EMAIL, Delivery.Channel.IN_APP):
            Delivery.objects.create(
                customer=customer,
                message="payment_received",
                category="confirmation",
                channel=channel,
                about=f"invoice:{invoice_id}",
                dedupe_key=f"{customer.pk}:invoice:{invoice_id}:paid:{channel}",
                context={"invoice": invoice_id, "number": "", "amount": 1900, "currency": "eur"},
                status=Delivery.Status.SENT,
            )


# --------------------------------------------------------------------------- "Stripe" that counts


class CallCounter:
    """A listening socket that counts every connection made to it and closes it at once: point
    STRIPE_API_BASE here and any Stripe call, however it is handled, is counted."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="stripe-call-counter", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.calls += 1
            conn.close()

    def __enter__(self) -> CallCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


@contextmanager
def stripe_counted(settings_fixture: Any) -> Iterator[CallCounter]:
    """Within the block the portal's "Stripe" is a CallCounter."""
    previous = settings_fixture.STRIPE_API_BASE
    with CallCounter() as counter:
        settings_fixture.STRIPE_API_BASE = counter.url
        try:
            yield counter
        finally:
            settings_fixture.STRIPE_API_BASE = previous


# --------------------------------------------------------------------------- threads that start together


def run_together(*calls: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Run the calls in threads released at the same moment; return their results in order.
    Each thread has its own database connection, closed when it ends."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = call()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return results
