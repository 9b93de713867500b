"""Pausing and resuming against the emulator: a pause is Stripe's pause with the resume date ours,
a pending plan change is dropped by it, the date resumes it exactly once (however often the job
runs, whatever webhooks come twice), the reminder goes once, an early resume charges what the page
showed, an outage leaves either pending and applies it once, and one customer can't touch
another's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from billing import tasks
from billing.errors import Refused
from billing.models import BillingChange, BillingCustomer, Delivery, Subscription
from billing.money import customer_zone
from billing.plans import When
from billing.services import pauses, plans
from tests.billing.conftest import StripeSwitch
from tests.portal_support import deliver_events, logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")

Status = BillingChange.Status


def _sub(customer: BillingCustomer) -> Subscription:
    return Subscription.objects.select_related("price__tier", "scheduled_price__tier").get(customer=customer)


def _pause(customer: BillingCustomer, months: int = 2, key: str = "") -> BillingChange:
    return pauses.subscription_pause(
        customer=customer, subscription=_sub(customer), months=months, requested_by=customer.user, key=key
    )


def _charges(customer: BillingCustomer) -> list[int]:
    invoices = stripe_client().v1.invoices.list(params={"customer": customer.stripe_customer_id}).data
    return [i.amount_paid for i in invoices if i.billing_reason == "subscription_update"]


def test_a_pause_is_stripes_pause_until_the_date_shown(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="pause@example.com", price="standard_month_eur")
    shown = pauses.pause_preview(subscription=_sub(customer), now=timezone.now())
    two = next(option for option in shown.options if option.months == 2)
    with committed():
        change = _pause(customer)
    assert change.status == Status.APPLIED, change.error_message
    result = pauses.PauseResult.model_validate(change.result)
    live = stripe_client().v1.subscriptions.retrieve(_sub(customer).stripe_id)
    assert live.status == "paused"
    assert int(live.metadata["pause_resumes_at"]) == int(result.resumes_at.timestamp())
    assert result.resumes_at.date() == two.resumes_at.date()
    # Stripe's credit for the unused month is what the page showed (to the minor unit, or one off
    # for the seconds between the page and the click).
    assert abs(result.credit - shown.credit) <= 1 and result.credit > 1800
    assert result.next_amount == 1900 - result.credit
    sub = _sub(customer)
    assert (sub.status, sub.pause_resumes_at) == (Subscription.Status.PAUSED, result.resumes_at)
    page = logged_in(customer).get("/").content.decode()
    shown_day = timezone.localtime(
        result.resumes_at, customer_zone(customer.time_zone)
    ).day  # the page's zone
    assert f"Paused until {shown_day} " in page
    [message] = [m for m in mail.outbox if m.subject.startswith("Your subscription is paused until")]
    assert "Nothing is charged while it is paused" in message.body
    assert Delivery.objects.filter(change=change, channel=Delivery.Channel.IN_APP).count() == 1


def test_a_pause_drops_a_change_scheduled_for_the_renewal(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="pause-sched@example.com", price="standard_month_eur")
    shown = plans.preview(
        customer=customer,
        subscription=_sub(customer),
        target=_sub(customer).price.__class__.objects.get(lookup_key="basic_month_eur"),
        when=When.RENEWAL,
    )
    with committed():
        plans.plan_change(customer=customer, shown=shown, requested_by=customer.user)
    assert _sub(customer).scheduled_price_id is not None
    page = logged_in(customer).get("/pause/").content.decode()
    assert "will be cancelled: a paused subscription has no renewal to make it at." in page
    with committed():
        change = _pause(customer)
    assert change.status == Status.APPLIED, change.error_message
    assert pauses.PauseResult.model_validate(change.result).dropped_plan == "Basic (monthly)"
    live = stripe_client().v1.subscriptions.retrieve(_sub(customer).stripe_id)
    assert (live.status, live.schedule) == ("paused", None)
    assert _sub(customer).scheduled_price_id is None


def test_the_date_resumes_it_once_whatever_the_job_and_the_webhooks_do(
    committed: Callable[[], Any], settings: Any
) -> None:
    # The reminder is a message quiet hours hold back; this test is about once, at any hour it runs.
    settings.BILLING_POLICY = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}
    customer = make_customer(email="resume-date@example.com", price="standard_month_eur")
    with committed():
        pause = _pause(customer, months=1)
    resumes_at = pauses.PauseResult.model_validate(pause.result).resumes_at
    credit = pauses.PauseResult.model_validate(pause.result).credit

    # Four days before: nothing.  Three days before: the reminder, once however often the job runs.
    with committed():
        assert pauses.resume_due(now=resumes_at - dt.timedelta(days=4)) == 0
    assert not Delivery.objects.filter(message="pause_ending_soon").exists()
    with committed():
        for _ in range(3):
            assert pauses.resume_due(now=resumes_at - dt.timedelta(days=2)) == 0
    reminders = [m for m in mail.outbox if m.subject.startswith("Your subscription resumes on")]
    assert len(reminders) == 1
    assert f"we charge €{(1900 - credit) / 100:.2f}" in reminders[0].body
    assert Delivery.objects.filter(message="pause_ending_soon", channel="in_app").count() == 1

    # The date: the job, run again and again, and the same webhooks delivered twice.
    with committed():
        for _ in range(3):
            pauses.resume_due(now=resumes_at + dt.timedelta(minutes=1))
            tasks.apply_pending_changes()
        deliver_events()
        deliver_events()
    resumes = BillingChange.objects.filter(customer=customer, kind="subscription_resume")
    assert resumes.count() == 1
    assert resumes.get().status == Status.APPLIED
    assert _charges(customer) == [1900 - credit]
    assert _sub(customer).status == Subscription.Status.ACTIVE
    resumed_mail = [m for m in mail.outbox if m.subject == "Your subscription is active again"]
    assert len(resumed_mail) == 1
    assert "Your pause has ended" in resumed_mail[0].body
    with committed():
        assert pauses.resume_due(now=resumes_at + dt.timedelta(days=1)) == 0


def test_an_early_resume_charges_what_the_page_showed_and_the_date_then_does_nothing(
    committed: Callable[[], Any],
) -> None:
    customer = make_customer(email="resume-early@example.com", price="standard_month_eur")
    with committed():
        pause = _pause(customer, months=3)
    resumes_at = pauses.PauseResult.model_validate(pause.result).resumes_at
    client = logged_in(customer)
    page = client.get("/pause/").content.decode()
    shown = pauses.resume_preview(subscription=_sub(customer), pause=pause, now=timezone.now())
    assert f"Resume now and pay €{shown.charge / 100:.2f}" in page
    with committed():
        response = client.post("/pause/resume/", {"token": "resume-early-1"}, follow=True)
    assert "Done: your subscription to Standard (monthly) is active again." in response.content.decode()
    assert _charges(customer) == [shown.charge]
    with committed():
        assert pauses.resume_due(now=resumes_at + dt.timedelta(minutes=1)) == 0
    assert _charges(customer) == [shown.charge]
    [message] = [m for m in mail.outbox if m.subject == "Your subscription is active again"]
    assert "You resumed your subscription" in message.body


def test_the_job_and_an_early_resume_meeting_charge_once(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="resume-race@example.com", price="standard_month_eur")
    with committed():
        pause = _pause(customer, months=1)
    resumes_at = pauses.PauseResult.model_validate(pause.result).resumes_at
    sub = _sub(customer)
    with committed():
        early = pauses.subscription_resume(customer=customer, subscription=sub, requested_by=customer.user)
        # The job had read the mirror before the early resume was applied.
        Subscription.objects.filter(pk=sub.pk).update(
            status=Subscription.Status.PAUSED, pause_resumes_at=resumes_at
        )
        pauses.resume_due(now=resumes_at + dt.timedelta(minutes=1))
    job = (
        BillingChange.objects.filter(customer=customer, kind="subscription_resume").exclude(pk=early.pk).get()
    )
    assert job.status == Status.APPLIED
    assert pauses.ResumeResult.model_validate(job.result).outcome == "already_resumed"
    assert len(_charges(customer)) == 1
    assert len([m for m in mail.outbox if m.subject == "Your subscription is active again"]) == 1


def test_a_pause_and_a_resume_made_while_stripe_is_down_are_applied_once_when_it_is_back(
    stripe_down: StripeSwitch, committed: Callable[[], Any]
) -> None:
    customer = make_customer(email="pause-outage@example.com", price="standard_month_eur")
    stripe_down()
    change = _pause(customer)
    assert change.status == Status.PENDING
    stripe_down.back()
    with committed():
        tasks.apply_change(change_id=change.pk)
        tasks.apply_change(change_id=change.pk)
    change.refresh_from_db()
    assert change.status == Status.APPLIED
    assert stripe_client().v1.subscriptions.retrieve(_sub(customer).stripe_id).status == "paused"
    assert Delivery.objects.filter(customer=customer, message="subscription_paused").count() == 2

    stripe_down()
    resume = pauses.subscription_resume(customer=customer, subscription=_sub(customer), requested_by=None)
    assert resume.status == Status.PENDING
    stripe_down.back()
    with committed():
        tasks.apply_change(change_id=resume.pk)
        tasks.apply_change(change_id=resume.pk)
    resume.refresh_from_db()
    assert resume.status == Status.APPLIED
    assert len(_charges(customer)) == 1
    assert Delivery.objects.filter(customer=customer, message="subscription_resumed").count() == 2


def test_refusals_reach_the_customer_and_nothing_reaches_stripe(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="pause-limit@example.com", price="standard_month_eur")
    with pytest.raises(Refused, match=r"A pause lasts one of these numbers of months: 1, 2, 3\."):
        _pause(customer, months=5)
    with pytest.raises(Refused, match=r"Your subscription is not paused\."):
        pauses.subscription_resume(customer=customer, subscription=_sub(customer), requested_by=None)
    with committed():
        _pause(customer, months=1)
    with pytest.raises(Refused, match="already paused"):
        _pause(customer, months=1)
    response = logged_in(customer).post(
        "/pause/confirm/", {"months": "1", "token": "again-token-1"}, follow=True
    )
    assert "Your subscription is already paused." in response.content.decode()


def test_one_customer_cant_pause_or_resume_anothers_subscription(committed: Callable[[], Any]) -> None:
    mine = make_customer(email="mine-pause@example.com", price="standard_month_eur")
    theirs = make_customer(email="theirs-pause@example.com", price="standard_month_eur")
    with committed():
        change = pauses.subscription_pause(
            customer=mine, subscription=_sub(theirs), months=1, requested_by=mine.user
        )
    assert (change.status, change.error_code) == (Status.FAILED, "subscription_foreign")
    # Through the portal: the pause page and the forms only ever see the customer's own subscription.
    client = logged_in(mine)
    with committed():
        client.post("/pause/confirm/", {"months": "1", "token": "mine-token-1"})
    assert _sub(mine).status == Subscription.Status.PAUSED
    assert client.get(f"/changes/{change.pk}/").status_code == 200  # their own failed change
    assert logged_in(theirs).get(f"/changes/{change.pk}/").status_code == 404
    assert stripe_client().v1.subscriptions.retrieve(_sub(theirs).stripe_id).status == "active"
    assert _sub(theirs).status == Subscription.Status.ACTIVE
