"""Rows written before the engine was reshaped keep their meaning after migration 0002: each email
confirmation also becomes a line in the portal's list, results and message contexts take their
typed shapes, and the client secrets that used to be copied into them are gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from billing import changes
from billing.messages import MESSAGES, facts_of

BEFORE = [("billing", "0001_initial")]
AFTER = [("billing", "0002_engine")]
SECRET = "pi_3Abc_secret_XyZ"


def _migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def _latest_schema_afterwards() -> Iterator[None]:
    """The tests after this one find every migration applied, whatever this one migrated to."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_old_confirmations_and_results_are_carried_over_without_secrets() -> None:
    old = _migrate(BEFORE)
    user = old.get_model("auth", "User").objects.create(username="old", email="old@example.com")
    customer = old.get_model("billing", "BillingCustomer").objects.create(user=user, email=user.email)
    Change = old.get_model("billing", "BillingChange")
    Notification = old.get_model("billing", "Notification")
    now = timezone.now()
    card_result = {"payment_method": "pm_1", "subscriptions": ["sub_1"], "brand": "visa", "last4": "3184"}
    waiting = Change.objects.create(
        id=uuid.uuid4(),
        customer=customer,
        kind="card_add",
        status="applied",
        params={"setup_intent": "seti_1234567890"},
        result={
            **card_result,
            "invoice": "in_1",
            "invoice_amount": 1900,
            "invoice_currency": "eur",
            "invoice_status": "action_required",
            "client_secret": SECRET,
        },
    )
    declined = Change.objects.create(
        id=uuid.uuid4(),
        customer=customer,
        kind="card_set_default",
        status="failed",
        error_code="card_declined",
        params={"payment_method": "pm_1"},
        result={"decline_code": "insufficient_funds"},
    )
    Notification.objects.create(
        customer=customer,
        template="card_added",
        dedupe_key=f"change:{waiting.pk}",
        context={"kind": "card_add", **waiting.result},
        change=waiting,
        status="sent",
        sent_at=now,
    )
    Notification.objects.create(
        customer=customer,
        template="payment_received",
        dedupe_key="invoice-paid:in_2",
        context={"invoice": "in_2", "number": "N-2", "amount": 4900, "currency": "eur"},
        status="sent",
        sent_at=now,
    )

    new = _migrate(AFTER)
    Delivery = new.get_model("billing", "Delivery")
    rows = {(d.message, d.channel): d for d in Delivery.objects.all()}
    assert set(rows) == {
        ("card_added_payment_needs_approval", "email"),
        ("card_added_payment_needs_approval", "in_app"),
        ("payment_received", "email"),
        ("payment_received", "in_app"),
    }
    for delivery in rows.values():
        assert SECRET not in str(delivery.context)
        facts_of(message=MESSAGES[delivery.message], context=delivery.context)  # valid facts now
    assert rows[("payment_received", "in_app")].about == "invoice:in_2"
    assert rows[("card_added_payment_needs_approval", "email")].category == "payment_critical"
    assert rows[("payment_received", "email")].dedupe_key == f"{customer.pk}:invoice:in_2:paid:email"

    NewChange = new.get_model("billing", "BillingChange")
    migrated = NewChange.objects.get(pk=waiting.pk)
    assert SECRET not in str(migrated.result)
    result = changes.KINDS["card_add"].Result.model_validate(migrated.result)
    assert (result.last4, result.payment.outcome, result.payment.amount) == ("3184", "action_required", 1900)
    failed = NewChange.objects.get(pk=declined.pk)
    assert (failed.result, failed.decline_code) == ({}, "insufficient_funds")
