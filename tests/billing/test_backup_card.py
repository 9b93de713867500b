"""The backup card (D7): a renewal declined on the default card is paid by the backup card the
customer chose with their consent, at the next attempt, once per invoice; the customer is told
which card paid and asked to fix the default one, instead of the plain thank-you.  Never without
the consent, never on the card that failed, never twice; a declined backup leaves the case going
on as before; with Stripe down, the charge waits and is made once when it is back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from billing.models import BillingChange, BillingCustomer, Delivery, Invoice, PaymentAttempt, PaymentMethod
from billing.services import backup, cards, recovery
from tests.billing.conftest import StripeSwitch
from tests.billing.recovery_support import Renewal, emails_to, links_in, set_decline
from tests.portal_support import emulator_events, logged_in, post_event, shown_day, stripe_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _setup(settings: Any, catalog: None) -> None:
    settings.BILLING_POLICY = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}


def _deliver_all(committed: Callable[[], Any], *, times: int = 1) -> None:
    client = Client()
    for event in emulator_events() * times:
        with committed():
            assert post_event(client, event).status_code == 200


def _backup_card(renewal: Renewal, card: str = "pm_card_mastercard") -> PaymentMethod:
    """The customer saves a second card and makes it the backup, agreeing that it may be charged."""
    attached = stripe_client().v1.payment_methods.attach(
        card, params={"customer": renewal.customer.stripe_customer_id}
    )
    from billing import sync

    sync.reconcile_customer(customer_id=renewal.customer.pk)
    saved = PaymentMethod.objects.get(stripe_id=attached.id)
    change = cards.card_set_backup(
        customer=BillingCustomer.objects.get(pk=renewal.customer.pk),
        card=saved,
        consent=True,
        requested_by=None,
    )
    assert change.status == BillingChange.Status.APPLIED, change.error_message
    return saved


def _charges_on(renewal: Renewal, card: str) -> list[Any]:
    page = stripe_client().v1.charges.list(
        params={"customer": renewal.customer.stripe_customer_id, "limit": 100}
    )
    return [c for c in page.data if c.payment_method == card]


def _run_job(committed: Callable[[], Any], *, now: dt.datetime) -> int:
    with committed():
        return backup.backup_due(now=now, limit=100)


def test_with_consent_the_next_attempt_charges_the_backup_card_and_one_message_names_it(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="backed@example.com")
    saved = _backup_card(renewal)
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    invoice = Invoice.objects.get(stripe_id=case.invoice_stripe_id)
    # Planned just before Stripe's next retry of the default card: the backup is the next attempt.
    assert invoice.next_payment_attempt is not None and case.backup_due_at is not None
    assert case.backup_due_at == invoice.next_payment_attempt - dt.timedelta(minutes=15)
    assert case.backup_payment_method_id == saved.stripe_id
    # The fix page says so, with the date in the customer's zone.
    page = logged_in(renewal.customer).get(f"/fix/{case.pk}/").content.decode()
    assert f"We'll try your backup card Mastercard •••• 4444 on {shown_day(case.backup_due_at)}" in page

    # Not due yet: nothing is charged.
    assert _run_job(committed, now=case.backup_due_at - dt.timedelta(minutes=1)) == 0
    assert _charges_on(renewal, saved.stripe_id) == []
    assert _run_job(committed, now=case.backup_due_at) == 1
    _deliver_all(committed)  # invoice.paid and the rest, as Stripe sends them

    case.refresh_from_db()
    assert (case.status, case.outcome) == ("recovered", "backup_card")
    assert stripe_client().v1.invoices.retrieve(case.invoice_stripe_id).status == "paid"
    (charge,) = _charges_on(renewal, saved.stripe_id)
    assert charge.status == "succeeded"
    attempt = PaymentAttempt.objects.get(case=case, stripe_id__startswith="change:")
    assert (attempt.payment_method_id, attempt.succeeded) == (saved.stripe_id, True)
    change = BillingChange.objects.get(customer=renewal.customer, kind="backup_charge")
    assert (change.status, change.result["outcome"]) == ("applied", "paid")
    # One message, naming the backup card, with a link to replace the default; no thank-you.
    closing = Delivery.objects.filter(
        customer=renewal.customer, case=case, message__in=("backup_card_paid", "payment_recovered")
    )
    assert sorted((d.message, d.channel) for d in closing) == [
        ("backup_card_paid", "email"),
        ("backup_card_paid", "in_app"),
    ]
    (email,) = [m for m in emails_to("backed@example.com") if "backup card" in m.subject]
    assert "Mastercard •••• 4444" in email.subject and "19.00" in email.subject
    assert "Visa •••• 4242" in email.body  # the default card to fix
    assert not any("Thank you: your payment went through" in m.subject for m in mail.outbox)
    (link,) = links_in(email.body)
    # The link still works after the case closed: it opens the card form, and nothing else.
    anonymous = Client()
    opened = anonymous.get(link)
    assert opened.status_code == 200 and "Your backup card paid" in opened.content.decode()
    with committed():
        posted = anonymous.post(link)
    assert posted.status_code == 302 and posted["Location"] == "/cards/add/"
    assert anonymous.get("/cards/add/").status_code == 200
    # The Messages page shows it as it shows the others.
    messages_page = logged_in(renewal.customer).get("/messages/").content.decode()
    assert "Your backup card Mastercard •••• 4444 paid" in messages_page


def test_without_consent_the_backup_card_is_never_charged(committed: Callable[[], Any]) -> None:
    renewal = Renewal(email="no-consent@example.com")
    api = stripe_client()
    other = api.v1.payment_methods.attach(
        "pm_card_mastercard", params={"customer": renewal.customer.stripe_customer_id}
    )
    # A backup named at Stripe (by staff in the dashboard, say), but the customer never agreed.
    api.v1.customers.update(
        renewal.customer.stripe_customer_id, params={"metadata": {"backup_payment_method": other.id}}
    )
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    assert BillingCustomer.objects.get(pk=renewal.customer.pk).backup_payment_method_id == other.id
    assert case.backup_due_at is None
    assert backup.charge_backup(case=case, now=renewal.at(33)) is None
    _run_job(committed, now=renewal.at(40))
    assert _charges_on(renewal, other.id) == []
    assert not BillingChange.objects.filter(kind="backup_charge").exists()


def test_consent_withdrawn_after_the_plan_means_no_charge(committed: Callable[[], Any]) -> None:
    renewal = Renewal(email="withdrawn@example.com")
    saved = _backup_card(renewal)
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    assert case.backup_due_at is not None
    BillingCustomer.objects.filter(pk=renewal.customer.pk).update(backup_consent_at=None)
    _run_job(committed, now=renewal.at(40))
    assert _charges_on(renewal, saved.stripe_id) == []
    case.refresh_from_db()
    assert (case.status, case.backup_due_at, case.backup_tried_at) == ("open", None, None)


def test_a_backup_that_is_the_card_that_failed_is_not_charged(committed: Callable[[], Any]) -> None:
    renewal = Renewal(email="same-card@example.com")
    renewal.fail()
    # The backup names the very card that was declined (kept from before it became the default).
    BillingCustomer.objects.filter(pk=renewal.customer.pk).update(
        backup_payment_method_id=renewal.card, backup_consent_at=renewal.at(1)
    )
    _deliver_all(committed)
    case = renewal.case
    assert case.backup_due_at is None
    before = len(_charges_on(renewal, renewal.card))
    assert backup.charge_backup(case=case, now=renewal.at(33)) is None
    assert len(_charges_on(renewal, renewal.card)) == before


def test_a_declined_backup_is_recorded_the_case_goes_on_and_it_is_not_tried_again(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="backup-declines@example.com")
    saved = _backup_card(renewal)
    set_decline(payment_method=saved.stripe_id, code="stolen_card")
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    due = case.backup_due_at
    assert due is not None
    assert _run_job(committed, now=due) == 1
    assert _run_job(committed, now=due + dt.timedelta(days=1)) == 0
    _deliver_all(committed, times=2)  # the failure's webhooks, twice
    case.refresh_from_db()
    (charge,) = _charges_on(renewal, saved.stripe_id)
    assert charge.status == "failed"
    assert PaymentAttempt.objects.filter(payment_method_id=saved.stripe_id, succeeded=False).exists()
    # The case is still about the default card: its decline, and Stripe's retries of it, go on
    # (a hard decline of the backup does not stop them).
    assert (case.status, case.family, case.payment_method_id) == ("open", "insufficient_funds", renewal.card)
    assert case.retries_stopped_at is None and case.backup_tried_at is not None
    invoice = stripe_client().v1.invoices.retrieve(case.invoice_stripe_id)
    assert invoice.auto_advance is True and invoice.next_payment_attempt is not None
    change = BillingChange.objects.get(customer=renewal.customer, kind="backup_charge")
    assert (change.result["outcome"], change.result["decline_code"]) == ("declined", "stolen_card")
    # No message for the failed backup; the reminders go on on their days.
    assert not Delivery.objects.filter(customer=renewal.customer, change=change).exists()
    renewal.move(days=32 + 3.5)
    _deliver_all(committed)
    with committed():
        recovery.send_due_steps(now=renewal.at(32 + 3.5), limit=100)
        backup.backup_due(now=renewal.at(32 + 3.5), limit=100)
    assert Delivery.objects.filter(customer=renewal.customer, message="payment_failed_reminder").exists()
    assert len(_charges_on(renewal, saved.stripe_id)) == 1
    case.refresh_from_db()
    assert case.status == "open" and case.backup_due_at is None


def test_duplicate_webhooks_and_the_job_twice_make_one_charge(committed: Callable[[], Any]) -> None:
    renewal = Renewal(email="once@example.com")
    saved = _backup_card(renewal)
    renewal.fail()
    _deliver_all(committed, times=3)
    case = renewal.case
    assert case.backup_due_at is not None
    at = case.backup_due_at
    _run_job(committed, now=at)
    _run_job(committed, now=at)
    _deliver_all(committed, times=3)
    _run_job(committed, now=at + dt.timedelta(hours=1))
    assert backup.charge_backup(case=case, now=at) is None
    assert len(_charges_on(renewal, saved.stripe_id)) == 1
    assert BillingChange.objects.filter(kind="backup_charge").count() == 1
    assert (
        Delivery.objects.filter(
            customer=renewal.customer, message="backup_card_paid", channel="email"
        ).count()
        == 1
    )
    assert not Delivery.objects.filter(customer=renewal.customer, message="payment_recovered").exists()


def test_a_hard_decline_uses_the_backup_promptly(committed: Callable[[], Any]) -> None:
    renewal = Renewal(email="lost-default@example.com", decline="lost_card")
    _backup_card(renewal)
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    assert case.retries_stopped_at is not None
    assert case.backup_due_at is not None and case.backup_due_at - case.opened_at <= dt.timedelta(hours=1)
    _run_job(committed, now=case.backup_due_at)
    _deliver_all(committed)
    case.refresh_from_db()
    assert (case.status, case.outcome) == ("recovered", "backup_card")


def test_with_stripe_down_the_backup_charge_waits_and_is_made_once_when_it_is_back(
    committed: Callable[[], Any], stripe_down: StripeSwitch
) -> None:
    import time_machine

    from billing import tasks

    renewal = Renewal(email="outage@example.com")
    saved = _backup_card(renewal)
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    due = case.backup_due_at
    assert due is not None
    stripe_down()
    _run_job(committed, now=due)
    change = BillingChange.objects.get(customer=renewal.customer, kind="backup_charge")
    assert (change.status, change.error_code) == ("pending", "connection_error")
    case.refresh_from_db()
    assert case.status == "open" and case.backup_tried_at is not None
    _run_job(committed, now=due + dt.timedelta(minutes=5))  # the job again: nothing new
    assert BillingChange.objects.filter(kind="backup_charge").count() == 1
    stripe_down.back()
    assert _charges_on(renewal, saved.stripe_id) == []
    assert change.next_attempt_at is not None
    with time_machine.travel(change.next_attempt_at + dt.timedelta(seconds=1)), committed():
        assert tasks.apply_pending_changes() == 1
    with committed():
        assert tasks.apply_pending_changes() == 0
    _deliver_all(committed)
    change.refresh_from_db()
    case.refresh_from_db()
    assert change.status == "applied" and change.result["outcome"] == "paid"
    assert (case.status, case.outcome) == ("recovered", "backup_card")
    assert len(_charges_on(renewal, saved.stripe_id)) == 1
    assert (
        Delivery.objects.filter(
            customer=renewal.customer, message="backup_card_paid", channel="email"
        ).count()
        == 1
    )
