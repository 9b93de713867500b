"""Plan changes from the preview to Stripe and back: the amount shown is the amount charged, a
change at the renewal is scheduled (and can be dropped), a stale preview is refused rather than
charged, an outage leaves the change pending and applied once, and one customer can't touch
another's subscription."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.conf import settings
from django.core import mail
from django.utils import translation

from billing import sync, tasks
from billing.errors import Refused
from billing.models import BillingChange, BillingCustomer, Delivery, Invoice, Price, Subscription
from billing.plans import When
from billing.services import approvals, plans
from tests.billing.conftest import StripeSwitch
from tests.portal_support import deliver_events, logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")

Status = BillingChange.Status


def _sub(customer: BillingCustomer) -> Subscription:
    return Subscription.objects.select_related("price__tier").get(customer=customer)


def _price(key: str) -> Price:
    return Price.objects.select_related("tier").get(lookup_key=key)


def _preview(customer: BillingCustomer, key: str, when: When) -> plans.Preview:
    return plans.preview(customer=customer, subscription=_sub(customer), target=_price(key), when=when)


def _stripe_sub(customer: BillingCustomer) -> Any:
    return stripe_client().v1.subscriptions.retrieve(_sub(customer).stripe_id)


def test_an_upgrade_charges_exactly_the_preview_and_changes_the_plan(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="up@example.com", price="standard_month_eur")
    shown = _preview(customer, "pro_month_eur", When.NOW)
    assert shown.charge_now > 0 and shown.credit > 0
    assert shown.next_amount == 4900

    with committed():
        change = plans.plan_change(customer=customer, shown=shown, requested_by=customer.user)
    assert change.status == Status.APPLIED, change.error_message
    result = plans.PlanChangeResult.model_validate(change.result)
    invoice = stripe_client().v1.invoices.retrieve(result.invoice)
    assert (invoice.status, invoice.amount_paid) == ("paid", shown.charge_now)
    assert result.charged == shown.charge_now
    assert _stripe_sub(customer)["items"].data[0].price.id == _price("pro_month_eur").stripe_price_id
    assert _sub(customer).price == _price("pro_month_eur")
    [message] = [m for m in mail.outbox if "Pro" in m.subject]
    assert message.subject == "Your plan is now Pro (monthly)"
    assert "€" in message.body


def test_a_new_interval_now_starts_a_new_period_and_charges_the_preview(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="yearly@example.com", price="standard_month_eur")
    previewed = time.time()
    shown = _preview(customer, "standard_year_eur", When.NOW)
    assert shown.charge_now == 19000 - shown.credit
    assert (shown.next_at - shown.effective_at).days in (365, 366)

    with committed():
        change = plans.plan_change(customer=customer, shown=shown, requested_by=customer.user)
    result = plans.PlanChangeResult.model_validate(change.result)
    assert stripe_client().v1.invoices.retrieve(result.invoice).amount_paid == shown.charge_now
    sub = _sub(customer)
    assert sub.price == _price("standard_year_eur")
    # Stripe starts the new period when the change is made ("billing_cycle_anchor": "now" is all
    # an update takes), which is the preview's moment or the seconds after it, never before.
    drift = (sub.current_period_end - shown.next_at).total_seconds()
    assert 0 <= drift <= time.time() - previewed + 1


def test_a_downgrade_is_scheduled_for_the_renewal_shown_and_can_be_dropped(
    committed: Callable[[], Any],
) -> None:
    customer = make_customer(email="down@example.com", price="pro_month_eur")
    period_end = _sub(customer).current_period_end
    shown = _preview(customer, "basic_month_eur", When.RENEWAL)
    assert (shown.charge_now, shown.next_amount, shown.effective_at) == (0, 900, period_end)
    with pytest.raises(Refused):
        _preview(customer, "basic_month_eur", When.NOW)

    with committed():
        change = plans.plan_change(customer=customer, shown=shown, requested_by=customer.user)
    assert change.status == Status.APPLIED, change.error_message
    sub = _sub(customer)
    # Nothing changes today; the mirror knows what comes, and when.
    assert sub.price == _price("pro_month_eur")
    assert (sub.scheduled_price, sub.scheduled_at) == (_price("basic_month_eur"), period_end)
    schedule = stripe_client().v1.subscription_schedules.retrieve(sub.schedule_id)
    assert [p["items"][0].price for p in schedule.phases] == [
        _price("pro_month_eur").stripe_price_id,
        _price("basic_month_eur").stripe_price_id,
    ]
    assert any("changes to Basic (monthly)" in m.subject for m in mail.outbox)
    # On a schedule now, another choice for the renewal is previewed through that schedule.
    other = _preview(customer, "standard_month_eur", When.RENEWAL)
    assert (other.charge_now, other.next_amount, other.effective_at) == (0, 1900, period_end)

    with committed():
        dropped = plans.plan_schedule_cancel(customer=customer, subscription=sub, requested_by=customer.user)
    assert dropped.status == Status.APPLIED, dropped.error_message
    sub = _sub(customer)
    assert (sub.scheduled_price, sub.schedule_id) == (None, "")
    assert _stripe_sub(customer).schedule is None
    assert any(m.subject == "You stay on Pro (monthly)" for m in mail.outbox)


def test_a_change_now_replaces_one_scheduled_for_the_renewal(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="replace@example.com", price="standard_month_eur")
    plans.plan_change(
        customer=customer,
        shown=_preview(customer, "basic_month_eur", When.RENEWAL),
        requested_by=customer.user,
    )
    assert _sub(customer).scheduled_price == _price("basic_month_eur")
    change = plans.plan_change(
        customer=customer, shown=_preview(customer, "pro_month_eur", When.NOW), requested_by=customer.user
    )
    result = plans.PlanChangeResult.model_validate(change.result)
    assert result.replaced_scheduled == "Basic (monthly)"
    sub = _sub(customer)
    assert (sub.price, sub.scheduled_price) == (_price("pro_month_eur"), None)
    assert _stripe_sub(customer).schedule is None


def test_a_preview_made_stale_is_refused_not_charged() -> None:
    customer = make_customer(email="stale@example.com", price="standard_month_eur")
    shown = _preview(customer, "pro_month_eur", When.NOW)
    # Another tab changes the plan after the preview was shown.
    other = _preview(customer, "standard_year_eur", When.NOW)
    plans.plan_change(customer=customer, shown=other, requested_by=customer.user)
    invoices_before = len(
        stripe_client().v1.invoices.list(params={"customer": customer.stripe_customer_id}).data
    )

    change = plans.plan_change(customer=customer, shown=shown, requested_by=customer.user)
    assert (change.status, change.error_code) == (Status.FAILED, "preview_stale")
    after = stripe_client().v1.invoices.list(params={"customer": customer.stripe_customer_id}).data
    assert len(after) == invoices_before
    assert _sub(customer).price == _price("standard_year_eur")


def test_a_double_submit_makes_one_change() -> None:
    customer = make_customer(email="twice@example.com", price="standard_month_eur")
    shown = _preview(customer, "pro_month_eur", When.NOW)
    first = plans.plan_change(customer=customer, shown=shown, requested_by=customer.user, key="form-1")
    second = plans.plan_change(customer=customer, shown=shown, requested_by=customer.user, key="form-1")
    assert first.pk == second.pk
    assert BillingChange.objects.filter(customer=customer, kind="plan_change").count() == 1


def test_a_change_confirmed_while_stripe_is_down_is_applied_once_when_it_is_back(
    stripe_down: StripeSwitch, committed: Callable[[], Any]
) -> None:
    customer = make_customer(email="outage@example.com", price="standard_month_eur")
    shown = _preview(customer, "pro_month_eur", When.NOW)
    stripe_down()
    change = plans.plan_change(customer=customer, shown=shown, requested_by=customer.user)
    assert change.status == Status.PENDING
    stripe_down.back()
    with committed():
        tasks.apply_change(change_id=change.pk)
        tasks.apply_change(change_id=change.pk)
    change.refresh_from_db()
    assert change.status == Status.APPLIED
    paid = [
        i
        for i in stripe_client().v1.invoices.list(params={"customer": customer.stripe_customer_id}).data
        if i.billing_reason == "subscription_update"
    ]
    assert [i.amount_paid for i in paid] == [shown.charge_now]
    assert Delivery.objects.filter(customer=customer, message="plan_changed").count() == 2  # email + in-app


def test_when_stripe_cant_preview_nothing_can_be_confirmed_from_it(stripe_down: StripeSwitch) -> None:
    customer = make_customer(email="nopreview@example.com", price="standard_month_eur")
    stripe_down()
    from billing.errors import StripeUnavailable

    with pytest.raises(StripeUnavailable):
        _preview(customer, "pro_month_eur", When.NOW)


def test_one_customer_cant_change_anothers_subscription() -> None:
    mine = make_customer(email="mine-plan@example.com", price="standard_month_eur")
    theirs = make_customer(email="theirs-plan@example.com", price="standard_month_eur")
    shown = _preview(theirs, "pro_month_eur", When.NOW)
    with pytest.raises(Exception) as refused:
        plans.plan_change(customer=mine, shown=shown, requested_by=mine.user)
    assert "not the customer's" in str(refused.value)
    assert _sub(theirs).price == _price("standard_month_eur")


# --------------------------------------------------------------------------- the bank's approval


def _upgrade_the_bank_wants_approved(email: str) -> tuple[BillingCustomer, plans.Preview, BillingChange]:
    """Standard monthly, paid; then a card whose bank asks for 3-D Secure on every payment becomes
    the default, and the customer upgrades to Pro now."""
    customer = make_customer(email=email, price="standard_month_eur")
    api = stripe_client()
    card = api.v1.payment_methods.attach(
        "pm_card_authenticationRequired", params={"customer": customer.stripe_customer_id}
    )
    api.v1.customers.update(
        customer.stripe_customer_id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    shown = _preview(customer, "pro_month_eur", When.NOW)
    change = plans.plan_change(customer=customer, shown=shown, requested_by=customer.user)
    return customer, shown, change


def _bank_answers(change: BillingChange, outcome: str) -> None:
    secret = approvals.payment_secret(change=change)
    intent = secret.split("_secret_")[0]
    requests.post(
        f"{settings.STRIPE_API_BASE}/_emulator/intents/{intent}/authenticate",
        json={"outcome": outcome},
        timeout=10,
    ).raise_for_status()


def test_an_upgrade_the_bank_wants_approved_changes_the_plan_only_once_approved(
    committed: Callable[[], Any],
) -> None:
    customer, shown, change = _upgrade_the_bank_wants_approved("approve-up@example.com")
    result = plans.PlanChangeResult.model_validate(change.result)
    assert (change.status, result.outcome, result.charged) == (
        Status.APPLIED,
        "action_required",
        shown.charge_now,
    )
    # Stripe keeps the upgrade pending: the customer is still on Standard, and the page says so.
    sub = _sub(customer)
    assert (sub.price, sub.pending_price) == (_price("standard_month_eur"), _price("pro_month_eur"))
    assert [m.subject for m in mail.outbox if "Pro" in m.subject] == []

    _bank_answers(change, "approve")
    with committed():
        approvals.payment_recheck(change=change)
    result = plans.PlanChangeResult.model_validate(change.result)
    assert (result.outcome, result.charged) == ("paid", shown.charge_now)
    sub = _sub(customer)
    assert (sub.price, sub.pending_price) == (_price("pro_month_eur"), None)
    assert [m.subject for m in mail.outbox if "Pro" in m.subject] == ["Your plan is now Pro (monthly)"]
    # The webhooks that follow settle nothing twice.
    with committed():
        deliver_events()
    assert Delivery.objects.filter(customer=customer, message="plan_changed").count() == 2  # email + in-app


def test_an_upgrade_approved_in_a_tab_then_closed_is_settled_by_stripes_webhook(
    committed: Callable[[], Any],
) -> None:
    customer, shown, change = _upgrade_the_bank_wants_approved("approve-closed@example.com")
    _bank_answers(change, "approve")
    # No recheck from the page: only Stripe's events tell the portal.
    with committed():
        deliver_events(types={"invoice.paid", "customer.subscription.updated"})
    change.refresh_from_db()
    result = plans.PlanChangeResult.model_validate(change.result)
    assert (result.outcome, result.charged) == ("paid", shown.charge_now)
    assert _sub(customer).price == _price("pro_month_eur")
    assert [m.subject for m in mail.outbox if "Pro" in m.subject] == ["Your plan is now Pro (monthly)"]


def test_an_upgrade_whose_approval_fails_leaves_the_plan_as_it_was(committed: Callable[[], Any]) -> None:
    customer, _shown, change = _upgrade_the_bank_wants_approved("approve-fail@example.com")
    _bank_answers(change, "fail")
    with committed():
        approvals.payment_recheck(change=change)
        deliver_events()
    result = plans.PlanChangeResult.model_validate(change.result)
    assert result.outcome == "action_required"
    assert _sub(customer).price == _price("standard_month_eur")
    assert _stripe_sub(customer)["items"].data[0].price.id == _price("standard_month_eur").stripe_price_id
    assert not Delivery.objects.filter(customer=customer, message="plan_changed").exists()


def test_reconciling_a_customer_keeps_the_change_scheduled_for_the_renewal() -> None:
    customer = make_customer(email="reconcile-sched@example.com", price="pro_month_eur")
    plans.plan_change(
        customer=customer,
        shown=_preview(customer, "basic_month_eur", When.RENEWAL),
        requested_by=customer.user,
    )
    # The mirror forgets it all (a new database, or webhooks lost); reconciling brings it back.
    Subscription.objects.filter(customer=customer).delete()
    sync.reconcile_customer(customer_id=customer.pk)
    sub = _sub(customer)
    assert (sub.price, sub.scheduled_price) == (_price("pro_month_eur"), _price("basic_month_eur"))


def test_a_preview_older_than_its_time_is_refused_not_charged() -> None:
    customer = make_customer(email="old-preview@example.com", price="standard_month_eur")
    shown = _preview(customer, "pro_month_eur", When.NOW)
    old = dataclasses.replace(shown, proration_date=shown.proration_date - plans.PREVIEW_SECONDS - 1)
    with pytest.raises(Refused, match="This preview is out of date"):
        plans.plan_change(customer=customer, shown=old, requested_by=customer.user)
    assert not BillingChange.objects.filter(customer=customer).exists()
    # One just within its time is taken.
    fresh = dataclasses.replace(shown, proration_date=shown.proration_date - plans.PREVIEW_SECONDS + 30)
    change = plans.plan_change(customer=customer, shown=fresh, requested_by=customer.user)
    assert change.status == Status.APPLIED, change.error_message


def test_an_upgrade_left_unapproved_lapses_and_nothing_is_owed_for_it(committed: Callable[[], Any]) -> None:
    """Stripe keeps a pending update 23 hours: then it expires and its invoice is voided, and the
    customer is on the plan they had, with nothing to pay and nothing said to be pending."""
    api = stripe_client()
    customer = make_customer(email="lapsed-up@example.com", card=None, price=None)
    clock = api.v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())})
    on_clock = api.v1.customers.create(params={"email": customer.email, "test_clock": clock.id})
    BillingCustomer.objects.filter(pk=customer.pk).update(stripe_customer_id=on_clock.id)
    visa = api.v1.payment_methods.attach("pm_card_visa", params={"customer": on_clock.id})
    api.v1.customers.update(on_clock.id, params={"invoice_settings": {"default_payment_method": visa.id}})
    api.v1.subscriptions.create(
        params={"customer": on_clock.id, "items": [{"price": _price("standard_month_eur").stripe_price_id}]}
    )
    three_d = api.v1.payment_methods.attach(
        "pm_card_authenticationRequired", params={"customer": on_clock.id}
    )
    api.v1.customers.update(on_clock.id, params={"invoice_settings": {"default_payment_method": three_d.id}})
    sync.reconcile_customer(customer_id=customer.pk)
    customer.refresh_from_db()
    change = plans.plan_change(
        customer=customer, shown=_preview(customer, "pro_month_eur", When.NOW), requested_by=customer.user
    )
    invoice = plans.PlanChangeResult.model_validate(change.result).invoice
    assert "Your change to Pro is waiting for its payment." in logged_in(customer).get("/").content.decode()

    api.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": int(time.time()) + 24 * 3600})
    requests.post(
        f"{settings.STRIPE_API_BASE}/_emulator/test_clocks/{clock.id}/wait", json={"timeout": 30}, timeout=35
    ).raise_for_status()
    with committed():
        deliver_events()
    sub = _sub(customer)
    assert (sub.price, sub.pending_price) == (_price("standard_month_eur"), None)
    assert Invoice.objects.get(stripe_id=invoice).status == Invoice.Status.VOID
    page = logged_in(customer).get("/").content.decode()
    assert "waiting for its payment" not in page and "banner-invoice_open" not in page
    assert not Delivery.objects.filter(customer=customer, message="plan_changed").exists()


def test_a_change_a_worker_applies_is_written_in_the_customers_language(
    stripe_down: StripeSwitch, committed: Callable[[], Any]
) -> None:
    """A worker has no customer's language of its own (or the last one it served): the change's
    words (the plan's name and interval) are in this customer's, in its result and its message."""
    customer = make_customer(email="worker-lang@example.com", price="standard_month_eur")
    shown = _preview(customer, "pro_month_eur", When.NOW)
    stripe_down()
    change = plans.plan_change(customer=customer, shown=shown, requested_by=customer.user)
    stripe_down.back()
    with translation.override("sv"), committed():
        tasks.apply_change(change_id=change.pk)
    change.refresh_from_db()
    assert plans.PlanChangeResult.model_validate(change.result).to_plan == "Pro (monthly)"
    assert [m.subject for m in mail.outbox if "Pro" in m.subject] == ["Your plan is now Pro (monthly)"]
