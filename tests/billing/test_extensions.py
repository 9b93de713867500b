"""More time to pay, through the emulator: a declined customer picks a date, the policy approves it
at once (or staff do, with a reason), Stripe's retries and our reminders wait while access stays
full, and on the date the charge is tried once: paid closes the case with one thank-you, declined
resumes the recovery.  Before a renewal, the renewal's charge moves to the date and is made once,
never early."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client

from billing import access, channels, gateway
from billing.errors import Refused
from billing.models import BillingChange, Delivery, Extension, RecoveryCase, Subscription
from billing.recovery import Level
from billing.services import extensions, recovery
from tests.billing.recovery_support import Renewal, emails_to, extend_links_in, set_decline
from tests.portal_support import emulator_events, post_event, stripe_client

pytestmark = pytest.mark.django_db

QUIET_OFF = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}


@pytest.fixture(autouse=True)
def _no_quiet_hours(settings: Any, catalog: None) -> None:
    settings.BILLING_POLICY = QUIET_OFF
    channels.LocmemSmsBackend.outbox.clear()


def _deliver_all(committed: Callable[[], Any]) -> None:
    client = Client()
    for event in emulator_events():
        with committed():
            assert post_event(client, event).status_code == 200


def _charges(customer_id: str) -> list[Any]:
    return list(stripe_client().v1.charges.list(params={"customer": customer_id, "limit": 100}).data)


def _failed(committed: Callable[[], Any], email: str, **kwargs: Any) -> Renewal:
    renewal = Renewal(email=email, **kwargs)
    renewal.fail()
    _deliver_all(committed)
    assert renewal.case.status == "open"
    return renewal


def _local_day(renewal: Renewal, days_after_due: int) -> dt.date:
    from billing.money import customer_zone

    zone = customer_zone(renewal.customer.time_zone)
    return renewal.case.opened_at.astimezone(zone).date() + dt.timedelta(days=days_after_due)


def test_asked_for_five_days_the_customer_keeps_access_hears_nothing_and_is_charged_once_on_the_date(
    committed: Callable[[], Any],
) -> None:
    renewal = _failed(committed, "later@example.com")
    customer = renewal.customer
    stripe_customer = customer.stripe_customer_id
    assert stripe_customer is not None
    before = len(_charges(stripe_customer))
    sent_before = Delivery.objects.filter(customer=customer, case__isnull=False).count()
    with committed():
        extension = extensions.request(
            customer=customer,
            until=_local_day(renewal, 5),
            reason="paid on the 25th",
            requested_by=customer.user,
        )
    assert extension.status == "approved" and extension.decided_by is None
    # The agreed charge is at ten in the morning, the customer's time, on that day.
    assert extension.charge_at.astimezone(dt.UTC).hour in (8, 9)
    case = renewal.case
    assert case.extended_until == extension.charge_at and case.held_since is not None
    # Stripe no longer retries the invoice by itself.
    invoice = stripe_client().v1.invoices.retrieve(case.invoice_stripe_id)
    assert invoice.auto_advance is False and invoice.next_payment_attempt is None
    # The customer is told the date, once.
    (granted,) = [m for m in emails_to("later@example.com") if "until" in m.subject]
    assert "€19.00" in granted.body
    # Access stays full past the end of grace, "extended until" the date.
    seen = access.access_of(customer=customer, now=case.grace_ends_at + dt.timedelta(days=1))
    assert seen.level == Level.FULL and seen.extended_until == extension.charge_at
    # The emulator's clock passes the old retry dates: no charge, no reminder.
    for day in (35, 37, 39.5):
        renewal.move(days=day)
        _deliver_all(committed)
        with committed():
            recovery.send_due_steps(now=renewal.at(day), limit=100)
            recovery.end_due(now=renewal.at(day), limit=100)
    assert len(_charges(stripe_customer)) == before
    assert (
        Delivery.objects.filter(customer=customer, case__isnull=False)
        .exclude(message="extension_granted")
        .count()
        == sent_before
    )
    assert renewal.case.ended_at is None
    # On the date the card works again, and the charge is tried once, however often the job runs.
    set_decline(payment_method=renewal.card, code=None)
    for _run in range(3):
        with committed():
            extensions.charge_due(now=extension.charge_at, limit=100)
    _deliver_all(committed)
    assert len(_charges(stripe_customer)) == before + 1
    case = renewal.case
    assert (case.status, case.outcome, case.extended_until) == ("recovered", "extension", None)
    extension.refresh_from_db()
    assert extension.status == "paid"
    thanks = Delivery.objects.filter(customer=customer, message="payment_recovered", channel="email")
    assert thanks.count() == 1
    assert access.access_of(customer=customer).level == Level.FULL


def test_declined_on_the_date_the_recovery_goes_on_where_it_stood(committed: Callable[[], Any]) -> None:
    renewal = _failed(committed, "still-short@example.com")
    customer = renewal.customer
    with committed():
        extension = extensions.request(
            customer=customer, until=_local_day(renewal, 3), reason="", requested_by=customer.user
        )
    held = renewal.case
    steps_before = held.next_step
    with committed():
        extensions.charge_due(now=extension.charge_at, limit=100)
    extension.refresh_from_db()
    assert extension.status == "failed"
    case = renewal.case
    assert case.status == "open" and case.held_since is None and case.extended_until is None
    assert case.grace_ends_at >= held.grace_ends_at
    # Stripe retries the invoice again, and the next reminder goes at once.
    invoice = stripe_client().v1.invoices.retrieve(case.invoice_stripe_id)
    assert invoice.auto_advance is True
    # (A day later than now: the day-0 message went a moment ago, and one a day is the cap.)
    with committed():
        recovery.send_due_steps(now=dt.datetime.now(tz=dt.UTC) + dt.timedelta(hours=25), limit=100)
    assert renewal.case.next_step == steps_before + 1
    assert access.access_of(customer=customer).extended_until is None


def test_the_backup_card_pays_on_the_date_when_the_default_is_declined_and_only_with_consent(
    committed: Callable[[], Any],
) -> None:
    renewal = _failed(committed, "backup-ext@example.com")
    customer = renewal.customer
    api = stripe_client()
    backup = api.v1.payment_methods.attach(
        "pm_card_mastercard", params={"customer": customer.stripe_customer_id}
    ).id
    from billing import sync

    sync.reconcile_customer(customer_id=customer.pk)
    customer.refresh_from_db()
    # Saved but without consent: never charged.
    customer.backup_payment_method_id = backup
    customer.save(update_fields=["backup_payment_method_id"])
    with committed():
        first = extensions.request(
            customer=customer, until=_local_day(renewal, 2), reason="", requested_by=None
        )
        extensions.charge_due(now=first.charge_at, limit=100)
    first.refresh_from_db()
    assert first.status == "failed"
    assert not [c for c in _charges(customer.stripe_customer_id or "") if c.payment_method == backup]
    # With consent, the next agreed date charges the backup after the default is declined.
    customer.backup_consent_at = dt.datetime.now(tz=dt.UTC)
    customer.save(update_fields=["backup_consent_at"])
    with committed():
        second = extensions.request(
            customer=customer, until=_local_day(renewal, 4), reason="", requested_by=None
        )
    assert second.status == "requested"  # a second request in 12 months goes to staff
    staff = get_user_model().objects.create_user(
        "staff@example.com", "staff@example.com", "pw", is_staff=True
    )
    with committed():
        extensions.decide(
            extension_id=second.pk, approve=True, reason="long-standing customer", decided_by=staff
        )
        extensions.charge_due(now=second.charge_at, limit=100)
    second.refresh_from_db()
    assert second.status == "paid"
    charges = _charges(customer.stripe_customer_id or "")
    assert len([c for c in charges if c.paid and c.payment_method == backup]) == 1
    assert stripe_client().v1.invoices.retrieve(renewal.case.invoice_stripe_id).status == "paid"
    assert renewal.case.status == "recovered"


def test_a_request_beyond_the_policy_waits_for_staff_who_decide_with_a_reason_and_the_customer_is_told(
    committed: Callable[[], Any], admin_client: Client
) -> None:
    renewal = _failed(committed, "queue@example.com")
    customer = renewal.customer
    with committed():
        extension = extensions.request(
            customer=customer, until=_local_day(renewal, 10), reason="salary on the 28th", requested_by=None
        )
    assert (extension.status, extension.review) == ("requested", ["long"])
    # Nothing is held while it waits: the recovery goes on as before.
    assert renewal.case.held_since is None
    queue = admin_client.get("/admin/billing/extension/?status__exact=requested").content.decode()
    assert "queue@example.com" in queue and "Decide" in queue
    url = f"/admin/billing/extension/{extension.pk}/decide/"
    page = admin_client.get(url).content.decode()
    assert "salary on the 28th" in page and "more days than are approved at once" in page
    # No reason, no decision.
    refused = admin_client.post(url, {"decision": "approve", "reason": ""})
    assert refused.status_code == 200
    extension.refresh_from_db()
    assert extension.status == "requested"
    with committed():
        done = admin_client.post(url, {"decision": "approve", "reason": "paid on time for two years"})
    assert done.status_code == 302
    extension.refresh_from_db()
    assert extension.status == "approved"
    assert (extension.decision_reason, extension.decided_by.email if extension.decided_by else "") == (
        "paid on time for two years",
        "admin@example.com",
    )
    assert renewal.case.extended_until == extension.charge_at
    (told,) = [m for m in emails_to("queue@example.com") if "until" in m.subject]
    assert "€19.00" in told.body
    # Decided once: a second decision is refused.
    with pytest.raises(Refused):
        extensions.decide(
            extension_id=extension.pk,
            approve=False,
            reason="again",
            decided_by=get_user_model().objects.get(email="admin@example.com"),
        )


def test_a_denied_request_is_told_in_the_customers_language(committed: Callable[[], Any]) -> None:
    renewal = _failed(committed, "nee@example.com", language="nl")
    customer = renewal.customer
    with committed():
        extension = extensions.request(
            customer=customer, until=_local_day(renewal, 12), reason="", requested_by=None
        )
    staff = get_user_model().objects.create_user("s2@example.com", "s2@example.com", "pw", is_staff=True)
    with committed():
        extensions.decide(
            extension_id=extension.pk, approve=False, reason="third time this year", decided_by=staff
        )
    extension.refresh_from_db()
    assert extension.status == "denied" and extension.decided_by == staff
    (denied,) = [m for m in emails_to("nee@example.com") if m.subject and "meer tijd" in m.subject.lower()]
    assert "third time" not in denied.body  # the staff's reason is theirs, not the customer's
    assert renewal.case.held_since is None


def test_the_policy_limits_are_enforced_when_asking(committed: Callable[[], Any]) -> None:
    renewal = _failed(committed, "limits@example.com")
    customer = renewal.customer
    with pytest.raises(Refused, match="Please pick a date from"):
        extensions.request(customer=customer, until=_local_day(renewal, 15), reason="", requested_by=None)
    with pytest.raises(Refused, match="Please pick a date from"):
        extensions.request(customer=customer, until=_local_day(renewal, 0), reason="", requested_by=None)
    with committed():
        extensions.request(customer=customer, until=_local_day(renewal, 2), reason="", requested_by=None)
    with pytest.raises(Refused, match="You already have until"):
        extensions.request(customer=customer, until=_local_day(renewal, 3), reason="", requested_by=None)
    assert Extension.objects.filter(customer=customer).count() == 1


def test_with_stripe_down_the_hold_waits_and_is_made_once_when_stripe_is_back(
    committed: Callable[[], Any], stripe_down: Any
) -> None:
    renewal = _failed(committed, "outage-ext@example.com")
    customer = renewal.customer
    stripe_down()
    with committed():
        extension = extensions.request(
            customer=customer, until=_local_day(renewal, 4), reason="", requested_by=None
        )
    # Approved and held here at once (access, reminders); Stripe's side waits, pending.
    assert extension.status == "approved" and renewal.case.held_since is not None
    grant = BillingChange.objects.get(kind="extension_grant")
    assert grant.status == "pending"
    stripe_down.back()
    from billing import changes

    for _run in range(2):
        with committed():
            BillingChange.objects.filter(pk=grant.pk).update(next_attempt_at=dt.datetime.now(tz=dt.UTC))
            changes.apply_due()
    grant.refresh_from_db()
    assert grant.status == "applied"
    assert stripe_client().v1.invoices.retrieve(renewal.case.invoice_stripe_id).auto_advance is False
    assert (
        Delivery.objects.filter(customer=customer, message="extension_granted", channel="email").count() == 1
    )


def test_the_reminders_carry_an_ask_for_more_time_link_that_opens_the_page_without_a_login(
    committed: Callable[[], Any],
) -> None:
    renewal = _failed(committed, "linked@example.com")
    (email,) = [m for m in emails_to("linked@example.com") if extend_links_in(m.body)]
    (link,) = extend_links_in(email.body)
    anonymous = Client()
    assert "Ask for more time" in anonymous.get(link).content.decode()
    with committed():
        opened = anonymous.post(link, {"next": "extend"})
    assert opened.status_code == 302 and opened["Location"] == "/extend/"
    page = anonymous.get("/extend/").content.decode()
    assert 'type="date"' in page
    until = _local_day(renewal, 3)
    with committed():
        asked = anonymous.post("/extend/", {"until": until.isoformat(), "reason": ""})
    assert asked.status_code == 302
    assert Extension.objects.get(customer=renewal.customer).status == "approved"
    # Another customer's page is not opened by it.
    other = Renewal(email="other-ext@example.com")
    assert other.customer.pk != renewal.customer.pk
    assert anonymous.get("/cards/").status_code == 302


def test_before_a_renewal_the_charge_moves_to_the_date_and_is_made_once_never_early(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="renewing@example.com")
    customer = renewal.customer
    sub = Subscription.objects.get(customer=customer)
    assert sub.current_period_end is not None
    due = sub.current_period_end
    stripe_customer = customer.stripe_customer_id or ""
    assert len(_charges(stripe_customer)) == 1
    from billing.money import customer_zone

    until = due.astimezone(customer_zone("")).date() + dt.timedelta(days=5)
    with time_machine.travel(due - dt.timedelta(days=5), tick=True), committed():
        page = extensions.offer(customer=customer)
        assert page is not None and page.kind == "before_renewal"
        extension = extensions.request(customer=customer, until=until, reason="", requested_by=None)
    assert extension.status == "approved"
    assert stripe_client().v1.subscriptions.retrieve(sub.stripe_id).pause_collection is not None
    # The renewal comes: its period starts on its date, its invoice waits as a draft, uncharged.
    renewal.move(days=33)
    _deliver_all(committed)
    latest = gateway.subscription_retrieve(subscription_id=sub.stripe_id)
    held = stripe_client().v1.invoices.retrieve(latest.latest_invoice_id)
    assert held.status == "draft" and held.billing_reason == "subscription_cycle"
    assert len(_charges(stripe_customer)) == 1
    # The dashboard says the payment moved, and when.
    sub.refresh_from_db()
    from billing.state import subscription_state

    state = subscription_state(subscription=sub, now=renewal.at(33))
    assert state.next_charge is not None and state.next_charge.moved and state.phase == "active"
    # On the date: charged once, however often the job runs, and then never again for it.
    for _run in range(3):
        with committed():
            extensions.charge_due(now=extension.charge_at, limit=100)
    renewal.move(days=40)
    _deliver_all(committed)
    assert len(_charges(stripe_customer)) == 2
    assert stripe_client().v1.invoices.retrieve(held.id).status == "paid"
    extension.refresh_from_db()
    assert extension.status == "paid"
    assert not RecoveryCase.objects.filter(customer=customer).exists()
    assert Delivery.objects.filter(customer=customer, message="extension_paid", channel="email").count() == 1


def test_with_stripe_down_on_the_date_the_charge_waits_and_is_made_once_when_stripe_is_back(
    committed: Callable[[], Any], stripe_down: Any
) -> None:
    renewal = _failed(committed, "outage-date@example.com")
    customer = renewal.customer
    with committed():
        extension = extensions.request(
            customer=customer, until=_local_day(renewal, 3), reason="", requested_by=None
        )
    set_decline(payment_method=renewal.card, code=None)
    stripe_customer = customer.stripe_customer_id or ""
    before = len(_charges(stripe_customer))
    stripe_down()
    with committed():
        extensions.charge_due(now=extension.charge_at, limit=100)
    charge = BillingChange.objects.get(kind="extension_charge")
    assert charge.status == "pending"
    extension.refresh_from_db()
    assert extension.status == "approved" and renewal.case.status == "open"
    stripe_down.back()
    from billing import changes

    # The job runs again and the engine's sweep too, as both would once Stripe answers.
    for _run in range(2):
        with committed():
            extensions.charge_due(now=extension.charge_at, limit=100)
            BillingChange.objects.filter(pk=charge.pk).update(next_attempt_at=dt.datetime.now(tz=dt.UTC))
            changes.apply_due()
    assert BillingChange.objects.filter(kind="extension_charge").count() == 1
    assert len(_charges(stripe_customer)) == before + 1
    extension.refresh_from_db()
    assert extension.status == "paid" and renewal.case.outcome == "extension"


def test_a_due_date_job_that_dies_halfway_charges_the_rest_when_run_again_and_nobody_twice(
    committed: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    renewals = [_failed(committed, f"batch{n}@example.com") for n in range(3)]
    found = []
    for renewal in renewals:
        set_decline(payment_method=renewal.card, code=None)
        with committed():
            found.append(
                extensions.request(
                    customer=renewal.customer, until=_local_day(renewal, 2), reason="", requested_by=None
                )
            )
    due = max(e.charge_at for e in found)
    # The worker dies after the first charge of the batch (the process is gone: nothing after it runs).
    real = extensions._each
    calls = {"n": 0}

    class Killed(BaseException):
        pass

    def dying(pk: int, *, charge: bool) -> None:
        if charge and calls["n"] == 1:
            raise Killed
        calls["n"] += charge
        real(pk, charge=charge)

    monkeypatch.setattr(extensions, "_each", dying)
    with pytest.raises(Killed), committed():
        extensions.charge_due(now=due, limit=100)
    monkeypatch.setattr(extensions, "_each", real)
    assert Extension.objects.filter(status="paid").count() == 1
    with committed():
        extensions.charge_due(now=due, limit=100)
    with committed():
        extensions.charge_due(now=due, limit=100)
    assert Extension.objects.filter(status="paid").count() == 3
    for renewal in renewals:
        stripe_customer = renewal.customer.stripe_customer_id or ""
        paid = [c for c in _charges(stripe_customer) if c.paid]
        assert len(paid) == 2, renewal.customer.email  # the first month, and the agreed date once
    assert BillingChange.objects.filter(kind="extension_charge").count() == 3


def test_a_renewal_request_that_waited_for_staff_past_a_failed_renewal_holds_the_failed_invoice(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="late-decision@example.com")
    customer = renewal.customer
    sub = Subscription.objects.get(customer=customer)
    assert sub.current_period_end is not None
    from billing.money import customer_zone

    until = sub.current_period_end.astimezone(customer_zone("")).date() + dt.timedelta(days=10)
    with time_machine.travel(sub.current_period_end - dt.timedelta(days=2), tick=True), committed():
        extension = extensions.request(customer=customer, until=until, reason="", requested_by=None)
    assert (extension.status, extension.kind, extension.review) == ("requested", "before_renewal", ["long"])
    # Staff decide only after the renewal, which was declined meanwhile.
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    staff = get_user_model().objects.create_user("s3@example.com", "s3@example.com", "pw", is_staff=True)
    with committed():
        extensions.decide(extension_id=extension.pk, approve=True, reason="known customer", decided_by=staff)
    extension.refresh_from_db()
    assert (extension.status, extension.kind, extension.case_id, extension.invoice_stripe_id) == (
        "approved",
        "after_failure",
        case.pk,
        case.invoice_stripe_id,
    )
    case.refresh_from_db()
    assert case.held_since is not None and case.extended_until == extension.charge_at
    assert stripe_client().v1.invoices.retrieve(case.invoice_stripe_id).auto_advance is False
