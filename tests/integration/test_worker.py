"""The billing engine with its real moving parts: PostgreSQL, Redis and `celery worker`
processes that these tests start, kill and start again, talking to the Stripe emulator.

No beat process runs here, so whatever a test sees applied after a worker died was brought
back by the broker (or by a periodic task the test sends itself, and says so).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
from typing import Any

import pytest
import redis
import requests
from django.conf import settings
from django.db import DatabaseError, transaction
from django.test import Client
from django.utils import timezone

from billing import sync, tasks
from billing.models import BillingChange, Delivery, Invoice, PaymentMethod, StripeEvent
from stripe_emulator.app import Emulator
from tests.billing.support import card_added
from tests.integration.support import VISIBILITY_TIMEOUT_SECONDS, Worker, Workers, wait_until
from tests.portal_support import WEBHOOK_URL, emulator_events, make_customer, post_event, stripe_client

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

CARD_UPDATED = "payment_method.automatically_updated"


def _add_fault(emulator: Emulator, **fault: Any) -> None:
    requests.post(f"{emulator.url}/_emulator/faults", json=fault, timeout=5).raise_for_status()


def _faults_waiting(emulator: Emulator) -> int:
    """Faults not yet taken by a request (a taken delay fault is a request the emulator holds)."""
    with emulator.state.lock:
        return len(emulator.state.faults)


def _row_locked(change_id: Any) -> bool:
    """Whether some transaction (the worker's, applying the change) holds the change's row lock."""
    try:
        with transaction.atomic():
            list(BillingChange.objects.select_for_update(nowait=True).filter(pk=change_id))
    except DatabaseError:
        return True
    return False


def _task_ids(log: str, task: str, what: str) -> set[str]:
    return set(re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] {what}", log))


def _stripe_default_card(customer_stripe_id: str) -> str | None:
    invoice_settings = stripe_client().v1.customers.retrieve(customer_stripe_id).invoice_settings
    assert invoice_settings is not None
    return str(invoice_settings.default_payment_method or "") or None


def _second_card_setup(customer_stripe_id: str, card: str = "pm_card_visa") -> tuple[str, str]:
    """A card the customer confirmed in the browser: a succeeded SetupIntent and its card."""
    intent = stripe_client().v1.setup_intents.create(
        params={
            "customer": customer_stripe_id,
            "payment_method": card,
            "confirm": True,
            "usage": "off_session",
        }
    )
    assert intent.status == "succeeded"
    return intent.id, str(intent.payment_method)


# --------------------------------------------------------------------------- a worker killed mid-change


class CardAddScene:
    """A customer whose first payment failed adds a new card: the change, recorded but not yet
    applied, pays the open invoice.  Stripe holds that payment request for a while, as a slow
    bank would, which is when the test kills the worker."""

    def __init__(self, *, emulator: Emulator, email: str) -> None:
        self.customer = make_customer(email=email, card="pm_card_chargeCustomerFail")
        self.invoice = Invoice.objects.get(customer=self.customer, status=Invoice.Status.OPEN)
        assert self.customer.stripe_customer_id
        self.stripe_customer_id = self.customer.stripe_customer_id
        setup_intent, self.new_card = _second_card_setup(self.stripe_customer_id)
        # What the card form's "save" records, without the inline attempt: a worker does the work.
        self.change = BillingChange.objects.create(
            customer=self.customer,
            kind="card_add",
            params={"setup_intent": setup_intent},
            requested_by=self.customer.user,
            next_attempt_at=timezone.now(),
        )
        self.emulator = emulator
        _add_fault(
            emulator, path_prefix=f"/v1/invoices/{self.invoice.stripe_id}/pay", method="POST", delay_seconds=2
        )

    def wait_until_stripe_is_charging(self, *, worker: Worker) -> None:
        wait_until(
            lambda: _faults_waiting(self.emulator) == 0 and _row_locked(self.change.pk),
            timeout=20,
            what="the worker to be inside the change, waiting for Stripe to take the payment",
            workers=[worker],
        )

    def wait_until_stripe_has_charged(self) -> None:
        """The dangerous window: Stripe charged the card, our database knows nothing of it."""
        wait_until(
            lambda: stripe_client().v1.invoices.retrieve(self.invoice.stripe_id).status == "paid",
            timeout=10,
            what="Stripe to finish the payment it was holding",
        )
        self.change.refresh_from_db()
        assert self.change.status == BillingChange.Status.PENDING
        assert self.change.attempts == 0  # the killed transaction was rolled back
        assert not Delivery.objects.filter(change=self.change).exists()

    def wait_until_applied(self, *, worker: Worker, timeout: float) -> None:
        def applied() -> bool:
            self.change.refresh_from_db()
            return self.change.status == BillingChange.Status.APPLIED

        wait_until(applied, timeout=timeout, what="the change to be applied", workers=[worker])

    def assert_applied_once(self, *, worker: Worker) -> None:
        change, invoice, customer = self.change, self.invoice, self.customer
        assert card_added(change).payment_method == self.new_card
        assert card_added(change).payment.invoice == invoice.stripe_id
        assert card_added(change).payment.outcome == "paid"

        # Stripe: one successful charge (the retry was an idempotent replay), and the new default.
        api = stripe_client()
        charges = api.v1.charges.list(params={"customer": self.stripe_customer_id}).data
        succeeded = [(c.amount, c.payment_method) for c in charges if c.status == "succeeded"]
        assert succeeded == [(invoice.amount_remaining, self.new_card)]
        stripe_invoice = api.v1.invoices.retrieve(invoice.stripe_id)
        assert (stripe_invoice.status, stripe_invoice.amount_paid) == ("paid", invoice.amount_remaining)
        assert _stripe_default_card(self.stripe_customer_id) == self.new_card

        # The portal's mirror, and one confirmation, sent by the worker.
        invoice.refresh_from_db()
        customer.refresh_from_db()
        assert invoice.status == Invoice.Status.PAID
        assert customer.default_payment_method_id == self.new_card
        wait_until(
            lambda: Delivery.objects.filter(
                change=change, channel=Delivery.Channel.EMAIL, status=Delivery.Status.SENT
            ).exists(),
            timeout=15,
            what="the confirmation to be sent",
            workers=[worker],
        )
        emails = Delivery.objects.filter(customer=customer, channel=Delivery.Channel.EMAIL)
        assert [(e.message, e.change_id) for e in emails] == [("card_added_invoice_paid", change.pk)]


def test_change_survives_worker_killed_while_stripe_is_charging(
    catalog: None, workers: Workers, broker: redis.Redis, stripe_emulated: Emulator
) -> None:
    """The whole worker dies (SIGKILL to the main and the pool process: a machine lost, an OOM
    kill) while Stripe takes the payment.  The message was never acknowledged (late acks), so
    Redis gives it to the next worker after the visibility timeout; that worker finishes the
    change with the same idempotency keys: one charge, one confirmation, the change applied."""
    scene = CardAddScene(emulator=stripe_emulated, email="killed@example.com")
    first = workers.start()
    tasks.enqueue_change(change=scene.change)
    scene.wait_until_stripe_is_charging(worker=first)

    assert first.kill() == -signal.SIGKILL
    delivered = _task_ids(first.log(), "billing.tasks.apply_change", "received")
    assert len(delivered) == 1, first.describe()
    scene.wait_until_stripe_has_charged()
    # Not acknowledged: Redis keeps the message aside, not in the queue, until the timeout.
    assert broker.llen("celery") == 0
    unacked = [raw for raw in broker.hvals("unacked") if str(scene.change.pk).encode() in raw]
    assert len(unacked) == 1 and b"billing.tasks.apply_change" in unacked[0]

    # Redelivery, not the beat safety net (no beat runs): once the visibility timeout is over,
    # the new worker's sweep puts the same message back on the queue and takes it.
    second = workers.start()
    scene.wait_until_applied(worker=second, timeout=VISIBILITY_TIMEOUT_SECONDS + 20)
    [task_id] = delivered
    second.wait_for_log(rf"Task billing\.tasks\.apply_change\[{task_id}\] succeeded")
    assert scene.change.attempts == 1
    scene.assert_applied_once(worker=second)


def test_change_survives_pool_process_killed_while_stripe_is_charging(
    catalog: None, workers: Workers, stripe_emulated: Emulator
) -> None:
    """Only the pool process running the task dies.  The main process sees it lost and, because
    of `task_reject_on_worker_lost`, puts the message back at once instead of acknowledging it;
    the replacement pool process applies the change, Stripe replaying the payment it made."""
    from portal.celery import app

    scene = CardAddScene(emulator=stripe_emulated, email="pool-killed@example.com")
    worker = workers.start()
    [pool_process] = worker.pool_processes(app=app)
    tasks.enqueue_change(change=scene.change)
    scene.wait_until_stripe_is_charging(worker=worker)

    os.kill(pool_process, signal.SIGKILL)
    scene.wait_until_applied(worker=worker, timeout=25)
    assert worker.alive
    worker.wait_for_log(r"WorkerLostError")
    # The same message received again (requeued), then done.  When the requeue is quicker than
    # Stripe, the first request still holds the idempotency key: Stripe answers 409, the change
    # waits and the task retries, which makes a third delivery of the same task.
    [task_id] = _task_ids(worker.log(), "billing.tasks.apply_change", "received")
    worker.wait_for_log(rf"Task billing\.tasks\.apply_change\[{task_id}\] succeeded")
    assert worker.log().count(f"Task billing.tasks.apply_change[{task_id}] received") >= 2
    scene.assert_applied_once(worker=worker)


def test_change_waiting_for_stripe_is_retried_by_the_worker(
    catalog: None, workers: Workers, stoppable_emulator: Emulator
) -> None:
    """Stripe is unreachable when the worker tries a change: the change waits (the error kept
    for staff) and the task comes back on its own once the policy's delay is over."""
    customer = make_customer(email="waiting@example.com", price=None)
    assert customer.stripe_customer_id
    _setup, second_card = _second_card_setup(customer.stripe_customer_id, card="pm_card_mastercard")
    sync.reconcile_customer(customer_id=customer.pk)
    change = BillingChange.objects.create(
        customer=customer,
        kind="card_set_default",
        params={"payment_method": second_card},
        next_attempt_at=timezone.now(),
    )
    worker = workers.start()
    stoppable_emulator.stop()
    tasks.enqueue_change(change=change)

    def waiting() -> bool:
        change.refresh_from_db()
        return change.attempts == 1

    wait_until(waiting, timeout=20, what="the worker to try the change and fail", workers=[worker])
    assert change.status == BillingChange.Status.PENDING
    assert change.error_code == "connection_error"
    assert change.next_attempt_at is not None and change.next_attempt_at > timezone.now() - dt.timedelta(
        seconds=1
    )

    stoppable_emulator.start()

    def applied() -> bool:
        change.refresh_from_db()
        return change.status == BillingChange.Status.APPLIED

    wait_until(applied, timeout=20, what="the task's own retry to apply the change", workers=[worker])
    assert change.attempts == 2
    # The task's retry (no beat runs here), once.
    [task_id] = _task_ids(worker.log(), "billing.tasks.apply_change", r"retry: Retry in [\d.]+s")
    worker.wait_for_log(rf"Task billing\.tasks\.apply_change\[{task_id}\] succeeded")
    assert _task_ids(worker.log(), "billing.tasks.apply_change", "succeeded") == {task_id}
    assert _stripe_default_card(customer.stripe_customer_id) == second_card
    assert Delivery.objects.filter(change=change, channel=Delivery.Channel.EMAIL).count() == 1


# --------------------------------------------------------------------------- webhooks through the worker


def test_webhook_from_stripe_is_processed_by_the_worker(
    catalog: None, workers: Workers, stripe_emulated: Emulator, live_server: Any, settings: Any
) -> None:
    """Stripe (the emulator) posts a signed event to the running site; the view stores it and
    queues it; the worker re-reads the card from Stripe and updates the mirror."""
    customer = make_customer(email="webhook@example.com", price=None)
    card = PaymentMethod.objects.get(customer=customer)
    endpoint = stripe_client().v1.webhook_endpoints.create(
        params={"url": f"{live_server.url}{WEBHOOK_URL}", "enabled_events": ["*"]}
    )
    settings.STRIPE_WEBHOOK_SECRET = endpoint.secret
    workers.start()

    # The bank sends new card details: Stripe tells the portal only by webhook.
    requests.post(
        f"{stripe_emulated.url}/_emulator/payment_methods/{card.stripe_id}/update_card",
        json={"exp_month": 7, "exp_year": 2041, "last4": "1881"},
        timeout=5,
    ).raise_for_status()

    event = wait_until(
        lambda: StripeEvent.objects.filter(type=CARD_UPDATED, status=StripeEvent.Status.PROCESSED).first(),
        timeout=20,
        what="the worker to process the card update",
        workers=workers.started,
    )
    assert event.object_id == card.stripe_id
    assert event.attempts == 1 and event.last_error == ""
    card.refresh_from_db()
    assert (card.exp_month, card.exp_year, card.last4) == (7, 2041, "1881")
    deliveries = requests.get(f"{stripe_emulated.url}/_emulator/deliveries", timeout=5).json()["data"]
    assert [(d["type"], d["status"]) for d in deliveries if d["event"] == event.stripe_id] == [
        (CARD_UPDATED, 200)
    ]


def test_event_failing_while_stripe_is_down_is_retried_until_processed(
    catalog: None, workers: Workers, stoppable_emulator: Emulator
) -> None:
    """The worker can't reach Stripe to re-read the card: the event is marked failed with the
    reason for staff to see, retried with backoff, and processed once Stripe is back."""
    customer = make_customer(email="outage@example.com", price=None)
    card = PaymentMethod.objects.get(customer=customer)
    requests.post(
        f"{stoppable_emulator.url}/_emulator/payment_methods/{card.stripe_id}/update_card",
        json={"exp_month": 3, "exp_year": 2042},
        timeout=5,
    ).raise_for_status()
    [event] = emulator_events(types={CARD_UPDATED})
    worker = workers.start()

    stoppable_emulator.stop()
    response = post_event(Client(), event)
    assert response.status_code == 200  # stored: Stripe will not send it again

    failed = wait_until(
        lambda: StripeEvent.objects.filter(stripe_id=event["id"], status=StripeEvent.Status.RETRYING).first(),
        timeout=20,
        what="the worker to try the event and fail",
        workers=[worker],
    )
    assert failed.last_error.startswith("StripeUnavailable:"), failed.last_error
    assert failed.processed_at is None
    card.refresh_from_db()
    assert card.exp_year != 2042

    stoppable_emulator.start()
    processed = wait_until(
        lambda: StripeEvent.objects.filter(
            stripe_id=event["id"], status=StripeEvent.Status.PROCESSED
        ).first(),
        timeout=40,
        what="a retry to process the event once Stripe is back",
        workers=[worker],
    )
    assert processed.attempts >= 2
    assert processed.last_error == ""
    card.refresh_from_db()
    assert (card.exp_month, card.exp_year) == (3, 2042)
    # The retries were Celery's (autoretry with backoff), not a new delivery of the webhook.
    worker.wait_for_log(r"Task billing\.tasks\.process_event\[[0-9a-f-]+\] retry: Retry in [\d.]+s")


# --------------------------------------------------------------------------- the periodic safety nets


def test_periodic_tasks_pick_up_what_was_never_queued(catalog: None, workers: Workers) -> None:
    """A change and an event whose task was lost (never queued) are done by the periodic jobs
    beat would send; here the test sends them, and the worker runs them."""
    customer = make_customer(email="safety@example.com", price=None)
    assert customer.stripe_customer_id
    _setup, second_card = _second_card_setup(customer.stripe_customer_id, card="pm_card_mastercard")
    sync.reconcile_customer(customer_id=customer.pk)
    due = timezone.now() - dt.timedelta(minutes=5)
    change = BillingChange.objects.create(
        customer=customer,
        kind="card_set_default",
        params={"payment_method": second_card},
        next_attempt_at=due,
    )
    first_card = customer.default_payment_method_id
    requests.post(
        f"{settings.STRIPE_API_BASE}/_emulator/payment_methods/{first_card}/update_card",
        json={"exp_month": 11, "exp_year": 2043},
        timeout=5,
    ).raise_for_status()
    [event] = emulator_events(types={CARD_UPDATED})
    stored = StripeEvent.objects.create(
        stripe_id=event["id"],
        type=event["type"],
        object_id=first_card,
        customer_stripe_id=customer.stripe_customer_id,
        payload=event,
        stripe_created=dt.datetime.fromtimestamp(event["created"], tz=dt.UTC),
        received_at=due,
    )
    worker = workers.start()

    tasks.apply_pending_changes.delay()
    tasks.process_pending_events.delay()

    def done() -> bool:
        change.refresh_from_db()
        stored.refresh_from_db()
        return change.status == BillingChange.Status.APPLIED and stored.status == StripeEvent.Status.PROCESSED

    wait_until(
        done, timeout=20, what="the periodic jobs to apply the change and process the event", workers=[worker]
    )
    customer.refresh_from_db()
    assert customer.default_payment_method_id == second_card
    assert _stripe_default_card(customer.stripe_customer_id) == second_card
    assert PaymentMethod.objects.get(stripe_id=first_card).exp_year == 2043


# --------------------------------------------------------------------------- how the worker is configured


def test_running_worker_acks_late_and_knows_every_scheduled_task(workers: Workers) -> None:
    """What the worker process itself reports: late acks (a task whose worker dies is delivered
    again), one task at a time, and a registered task behind every beat schedule entry."""
    from portal.celery import app

    worker = workers.start()
    inspect = app.control.inspect(destination=[worker.hostname], timeout=5)
    # The worker's configuration as it reports it (Celery keeps the Django setting names).
    conf = (inspect.conf() or {})[worker.hostname]
    assert conf["CELERY_TASK_ACKS_LATE"] is True
    assert conf["CELERY_TASK_REJECT_ON_WORKER_LOST"] is True
    assert conf["CELERY_WORKER_PREFETCH_MULTIPLIER"] == 1
    assert conf["CELERY_TASK_ALWAYS_EAGER"] is False
    assert conf["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == VISIBILITY_TIMEOUT_SECONDS

    registered = set((inspect.registered() or {})[worker.hostname])
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert {entry["task"] for entry in schedule.values()} <= registered, json.dumps(sorted(registered))
    assert {
        "billing.tasks.apply_pending_changes",
        "billing.tasks.process_pending_events",
        "billing.tasks.send_pending_deliveries",
        "billing.tasks.reconcile_all_customers",
    } <= {entry["task"] for entry in schedule.values()}
    # Beat in this process reads the same schedule from the same settings.
    assert app.conf.beat_schedule == schedule
