"""The billing flows the portal relies on, driven through the official client."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator.app import Emulator

from .support import DAY, JAN_1, advance, catalog, customer_on_clock, emulator_post, event_types, subscribe

FEB_1 = JAN_1 + 31 * DAY
MAR_1 = FEB_1 + 28 * DAY
HOUR = 3600


def test_good_card_makes_an_active_paid_subscription(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, _clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id, expand=["latest_invoice.payments"])
    assert sub.status == "active"
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
        "paid",
        3000,
        "subscription_create",
    )
    intent = client.v1.payment_intents.retrieve(invoice.payments.data[0].payment.payment_intent)
    assert intent.status == "succeeded" and intent.amount == 3000
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (JAN_1, FEB_1)
    assert sub.billing_mode.type == "flexible"


def test_renewal_charges_the_next_period_when_the_clock_passes_it(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    advance(client, clock.id, FEB_1 + 2 * HOUR)
    invoices = client.v1.invoices.list(params={"subscription": sub.id}).data
    assert [(i.billing_reason, i.status, i.amount_paid) for i in invoices] == [
        ("subscription_cycle", "paid", 3000),
        ("subscription_create", "paid", 3000),
    ]
    item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (FEB_1, MAR_1)
    types = event_types(client)
    assert types.index("invoice.upcoming") < types.index("invoice.finalized", types.index("invoice.upcoming"))


def _fail_next_renewal(client: stripe.StripeClient, customer: str, sub: str) -> str:
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer})
    client.v1.subscriptions.update(sub, params={"default_payment_method": failing.id})
    return failing.id


def test_failed_renewal_goes_past_due_retries_on_schedule_then_cancels(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    _fail_next_renewal(client, customer.id, sub.id)

    first_attempt = FEB_1 + HOUR  # renewal invoices are charged an hour after they are made
    advance(client, clock.id, first_attempt + 60)
    invoice = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert (invoice.status, invoice.attempt_count) == ("open", 1)
    assert invoice.next_payment_attempt == first_attempt + 1 * DAY
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    intent = client.v1.payment_intents.retrieve(invoice.payments.data[0].payment.payment_intent)
    assert intent.last_payment_error.decline_code == "generic_decline"
    assert "invoice.payment_failed" in event_types(client)

    # Default schedule: retries 1, 3, 7 and 14 days after the first failure.
    for attempt_number, day in [(2, 1), (3, 3), (4, 7)]:
        advance(client, clock.id, first_attempt + day * DAY + 60)
        invoice = client.v1.invoices.retrieve(invoice.id)
        assert invoice.attempt_count == attempt_number
        assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert invoice.next_payment_attempt == first_attempt + 14 * DAY

    advance(client, clock.id, first_attempt + 14 * DAY + 60)
    invoice = client.v1.invoices.retrieve(invoice.id)
    final = client.v1.subscriptions.retrieve(sub.id)
    assert (invoice.attempt_count, invoice.next_payment_attempt) == (5, None)
    assert final.status == "canceled"
    assert final.cancellation_details.reason == "payment_failed"
    assert event_types(client, type="invoice.payment_failed").count("invoice.payment_failed") == 5


@pytest.mark.parametrize(("setting", "status"), [("unpaid", "unpaid"), ("past_due", "past_due")])
def test_what_follows_the_last_failed_retry_is_a_setting(
    client: stripe.StripeClient, fresh_emulator: Emulator, setting: str, status: str
) -> None:
    emulator_post(
        fresh_emulator.url,
        "/_emulator/settings",
        {
            "retry_schedule_days": [1, 2],
            "after_final_failure": setting,
            "invoice_after_final_failure": "mark_uncollectible",
        },
    )
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    _fail_next_renewal(client, customer.id, sub.id)
    advance(client, clock.id, FEB_1 + HOUR + 2 * DAY + 60)
    invoice = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert (invoice.attempt_count, invoice.status) == (3, "uncollectible")
    assert client.v1.subscriptions.retrieve(sub.id).status == status


def test_paying_with_a_good_card_recovers_and_stops_retries(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    _fail_next_renewal(client, customer.id, sub.id)
    advance(client, clock.id, FEB_1 + HOUR + 60)
    invoice = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert client.v1.customers.retrieve(customer.id).delinquent is True

    good = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer.id})
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": good.id})
    assert (paid.status, paid.amount_paid, paid.next_payment_attempt) == ("paid", 3000, None)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert client.v1.customers.retrieve(customer.id).delinquent is False

    advance(client, clock.id, FEB_1 + 5 * DAY)  # past the first scheduled retry
    after = client.v1.invoices.retrieve(invoice.id)
    assert after.attempt_count == 1  # Stripe counts a hand payment in no retry schedule
    intent_id = after.payments.data[0].payment.payment_intent
    charges = client.v1.charges.list(params={"payment_intent": intent_id}).data
    assert sorted(c.status for c in charges) == ["failed", "succeeded"]  # no charge after the payment
    assert "invoice.paid" in event_types(client, type="invoice.paid")


def test_a_declining_card_is_refused_when_attached(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "b@example.com"})
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_methods.attach(
            "pm_card_chargeDeclinedInsufficientFunds", params={"customer": customer.id}
        )
    assert caught.value.code == "card_declined"
    assert caught.value.error.decline_code == "insufficient_funds"
    assert caught.value.http_status == 402
    assert client.v1.customers.payment_methods.list(customer.id).data == []


def test_three_d_secure_on_setup_then_off_session_renewals_pass(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    prices = catalog(client)
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": JAN_1})
    customer = client.v1.customers.create(params={"email": "c@example.com", "test_clock": clock.id})
    intent = client.v1.setup_intents.create(
        params={"customer": customer.id, "allowed_payment_method_types": ["card"], "usage": "off_session"}
    )
    intent = client.v1.setup_intents.confirm(
        intent.id, params={"payment_method": "pm_card_authenticationRequiredOnSetup"}
    )
    assert intent.status == "requires_action"
    assert intent.next_action.type == "use_stripe_sdk"
    emulator_post(fresh_emulator.url, f"/_emulator/intents/{intent.id}/authenticate", {"outcome": "approve"})
    intent = client.v1.setup_intents.retrieve(intent.id)
    assert intent.status == "succeeded"
    pm = client.v1.payment_methods.retrieve(intent.payment_method)
    assert pm.customer == customer.id
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})

    sub = subscribe(client, customer.id, prices.monthly.id, off_session=True)
    assert sub.status == "active"
    advance(client, clock.id, FEB_1 + 2 * HOUR)
    latest = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert (latest.billing_reason, latest.status) == ("subscription_cycle", "paid")


def test_three_d_secure_failed_on_setup_leaves_no_card(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    customer = client.v1.customers.create(params={"email": "d@example.com"})
    intent = client.v1.setup_intents.create(
        params={"customer": customer.id, "confirm": True, "payment_method": "pm_card_authenticationRequired"}
    )
    assert intent.status == "requires_action"
    emulator_post(fresh_emulator.url, f"/_emulator/intents/{intent.id}/authenticate", {"outcome": "fail"})
    intent = client.v1.setup_intents.retrieve(intent.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_setup_error.code == "setup_intent_authentication_failure"
    assert client.v1.customers.payment_methods.list(customer.id).data == []


def test_three_d_secure_on_payment_keeps_the_subscription_incomplete_until_approved(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client, card="pm_card_authenticationRequired")
    sub = subscribe(client, customer.id, prices.monthly.id, expand=["latest_invoice"])
    assert sub.status == "incomplete"
    invoice = sub.latest_invoice
    intent = client.v1.payment_intents.retrieve(invoice.payments.data[0].payment.payment_intent)
    assert intent.status == "requires_action"
    assert invoice.confirmation_secret.client_secret == intent.client_secret
    assert "invoice.payment_action_required" in event_types(client)

    emulator_post(fresh_emulator.url, f"/_emulator/intents/{intent.id}/authenticate", {"outcome": "approve"})
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"

    # Off-session, at renewal, the same card needs the customer again: action required, past due.
    advance(client, clock.id, FEB_1 + HOUR + 60)
    renewal = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    renewal_intent = client.v1.payment_intents.retrieve(renewal.payments.data[0].payment.payment_intent)
    assert renewal_intent.status == "requires_action"
    assert renewal_intent.last_payment_error.code == "authentication_required"
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    emulator_post(
        fresh_emulator.url, f"/_emulator/intents/{renewal_intent.id}/authenticate", {"outcome": "approve"}
    )
    assert client.v1.invoices.retrieve(renewal.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_interval_swap_prorates_to_the_second_and_matches_the_preview(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    jan_11 = JAN_1 + 10 * DAY
    advance(client, clock.id, jan_11)
    item = sub["items"].data[0]
    change = {
        "items": [{"id": item.id, "price": prices.yearly.id}],
        "proration_date": jan_11,
        "proration_behavior": "create_prorations",
    }
    preview = client.v1.invoices.create_preview(
        params={"customer": customer.id, "subscription": sub.id, "subscription_details": change}
    )
    updated = client.v1.subscriptions.update(sub.id, params={**change, "expand": ["latest_invoice"]})
    invoice = updated.latest_invoice

    unused = round(3000 * (FEB_1 - jan_11) / (FEB_1 - JAN_1))  # 21 of 31 days: 2032
    assert sorted(line.amount for line in invoice.lines.data) == [-unused, 30000]
    assert invoice.amount_due == preview.amount_due == 30000 - unused
    assert sorted(line.amount for line in preview.lines.data) == sorted(
        line.amount for line in invoice.lines.data
    )
    assert (invoice.billing_reason, invoice.status) == ("subscription_update", "paid")
    new_item = updated["items"].data[0]
    assert new_item.id == item.id and new_item.price.id == prices.yearly.id
    assert (new_item.current_period_start, new_item.current_period_end) == (jan_11, jan_11 + 365 * DAY)
    proration = next(line for line in invoice.lines.data if line.amount < 0)
    assert proration.parent.subscription_item_details.proration is True


def test_same_interval_upgrade_invoiced_now_matches_the_preview(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.basic_monthly.id)
    moment = JAN_1 + 10 * DAY + 12345  # not on a day boundary: proration is to the second
    advance(client, clock.id, moment)
    change = {
        "items": [{"id": sub["items"].data[0].id, "price": prices.monthly.id}],
        "proration_behavior": "always_invoice",
        "proration_date": moment,
    }
    preview = client.v1.invoices.create_preview(
        params={"subscription": sub.id, "subscription_details": change}
    )
    updated = client.v1.subscriptions.update(sub.id, params={**change, "expand": ["latest_invoice"]})
    share = (FEB_1 - moment) / (FEB_1 - JAN_1)
    expected = [-round(1000 * share), round(3000 * share)]
    assert sorted(line.amount for line in updated.latest_invoice.lines.data) == sorted(expected)
    assert updated.latest_invoice.amount_paid == preview.amount_due == sum(expected)
    # The period does not move for a same-interval change.
    assert updated["items"].data[0].current_period_end == FEB_1


def test_create_prorations_waits_for_the_next_renewal_invoice(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.basic_monthly.id)
    advance(client, clock.id, JAN_1 + 10 * DAY)
    change = {
        "items": [{"id": sub["items"].data[0].id, "price": prices.monthly.id}],
        "proration_date": JAN_1 + 10 * DAY,
    }
    preview = client.v1.invoices.create_preview(
        params={"subscription": sub.id, "subscription_details": change}
    )
    client.v1.subscriptions.update(sub.id, params=change)
    assert len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 1
    advance(client, clock.id, FEB_1 + 2 * HOUR)
    renewal = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert renewal.amount_paid == preview.amount_due == 3000 + round(2000 * 21 / 31)


def test_an_open_invoice_no_longer_auto_advancing_is_never_retried(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    _fail_next_renewal(client, customer.id, sub.id)
    advance(client, clock.id, FEB_1 + HOUR + 60)
    invoice = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == (
        "open",
        1,
        FEB_1 + HOUR + DAY,
    )

    stopped = client.v1.invoices.update(invoice.id, params={"auto_advance": False})
    assert (stopped.auto_advance, stopped.next_payment_attempt) == (False, None)
    advance(client, clock.id, FEB_1 + 20 * DAY)
    later = client.v1.invoices.retrieve(invoice.id)
    assert (later.status, later.attempt_count) == ("open", 1)  # still owed, never tried again


def test_pending_if_incomplete_applies_the_change_only_once_paid(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.basic_monthly.id)
    _fail_next_renewal(client, customer.id, sub.id)
    advance(client, clock.id, JAN_1 + 10 * DAY)
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": prices.monthly.id}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    assert updated["items"].data[0].price.id == prices.basic_monthly.id
    assert updated.pending_update.subscription_items[0].price.id == prices.monthly.id
    # The declined payment is the update's alone: the subscription cycles on as if none was asked for.
    assert (updated.status, client.v1.invoices.retrieve(updated.latest_invoice).status) == ("active", "open")
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.invoices.pay(updated.latest_invoice, params={"payment_method": good.id})
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None
    assert after["items"].data[0].price.id == prices.monthly.id


def test_error_if_incomplete_refuses_and_changes_nothing(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, _clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.basic_monthly.id)
    _fail_next_renewal(client, customer.id, sub.id)
    with pytest.raises(stripe.CardError):
        client.v1.subscriptions.update(
            sub.id,
            params={
                "items": [{"id": sub["items"].data[0].id, "price": prices.yearly.id}],
                "payment_behavior": "error_if_incomplete",
            },
        )
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after["items"].data[0].price.id == prices.basic_monthly.id
    assert len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 1


def test_downgrade_scheduled_at_period_end_applies_when_the_clock_passes(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    phase = schedule.phases[0]
    schedule = client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "end_behavior": "release",
            "phases": [
                {
                    "items": [{"price": prices.monthly.id}],
                    "start_date": phase.start_date,
                    "end_date": phase.end_date,
                },
                {"items": [{"price": prices.basic_monthly.id}]},
            ],
        },
    )
    assert [p.end_date for p in schedule.phases] == [FEB_1, MAR_1]
    assert client.v1.invoices.create_preview(params={"subscription": sub.id}).amount_due == 1000
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == prices.monthly.id

    advance(client, clock.id, FEB_1 + 2 * HOUR)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after["items"].data[0].price.id == prices.basic_monthly.id
    renewal = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert (renewal.amount_paid, [line.amount for line in renewal.lines.data]) == (1000, [1000])
    assert client.v1.subscription_schedules.retrieve(schedule.id).status == "active"

    advance(client, clock.id, MAR_1 + 2 * HOUR)
    assert client.v1.subscription_schedules.retrieve(schedule.id).status == "released"
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None
    assert client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0].amount_paid == 1000


def _billed(invoice: stripe.Invoice) -> tuple[object, ...]:
    """What an invoice charges, to the minor unit, and for which periods, prices and items."""
    lines = sorted(
        (
            line.amount,
            line.pricing.price_details.price,
            line.period.start,
            line.period.end,
            line.parent.subscription_item_details.proration,
            line.parent.subscription_item_details.subscription_item,
        )
        for line in invoice.lines.data
    )
    return invoice.amount_due, invoice.total, invoice.period_start, invoice.period_end, lines


@pytest.mark.parametrize(
    ("old", "new", "period_end", "next_end"),
    [
        ("monthly", "yearly", FEB_1, FEB_1 + 365 * DAY),
        ("monthly", "quarterly", FEB_1, FEB_1 + (28 + 31 + 30) * DAY),
        ("yearly", "basic_monthly", JAN_1 + 365 * DAY, JAN_1 + (365 + 31) * DAY),
    ],
)
def test_schedule_preview_of_a_change_at_period_end_is_the_renewal_it_makes(
    client: stripe.StripeClient, old: str, new: str, period_end: int, next_end: int
) -> None:
    prices = catalog(client)
    old_price, new_price = getattr(prices, old), getattr(prices, new)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, old_price.id)
    item = sub["items"].data[0]
    advance(client, clock.id, JAN_1 + 10 * DAY)
    phases = [
        {
            "items": [{"price": old_price.id, "quantity": 1}],
            "start_date": item.current_period_start,
            "end_date": item.current_period_end,
            "proration_behavior": "none",
        },
        {"items": [{"price": new_price.id, "quantity": 1}], "start_date": item.current_period_end},
    ]
    # Before the subscription is on a schedule, Stripe refuses schedule_details with it; what the
    # renewal will bill is previewed as a new schedule of the new price from the period's end.
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.invoices.create_preview(
            params={"customer": customer.id, "subscription": sub.id, "schedule_details": {"phases": phases}}
        )
    assert refused.value.param == "subscription"
    ahead = client.v1.invoices.create_preview(
        params={
            "customer": customer.id,
            "schedule_details": {"phases": [phases[1]], "end_behavior": "release"},
        }
    )
    new_amount = new_price.unit_amount
    assert (ahead.amount_due, ahead.total) == (
        new_amount,
        new_amount,
    )  # the new price's full amount, no prorations
    assert [
        (line.amount, line.pricing.price_details.price, line.period.start, line.period.end)
        for line in ahead.lines.data
    ] == [(new_amount, new_price.id, period_end, next_end)]
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None  # a preview changes nothing
    assert len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 1

    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    schedule = client.v1.subscription_schedules.update(
        schedule.id, params={"phases": phases, "proration_behavior": "none"}
    )
    assert [(p.start_date, p.end_date) for p in schedule.phases] == [
        (JAN_1, period_end),
        (period_end, next_end),
    ]
    assert len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 1  # nothing charged now
    by_id = client.v1.invoices.create_preview(params={"schedule": schedule.id})
    by_details = client.v1.invoices.create_preview(
        params={"customer": customer.id, "schedule": schedule.id, "schedule_details": {"phases": phases}}
    )
    by_subscription = client.v1.invoices.create_preview(params={"subscription": sub.id})

    advance(client, clock.id, period_end + 2 * HOUR)
    renewal = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert (renewal.billing_reason, renewal.status) == ("subscription_cycle", "paid")
    assert _billed(renewal) == _billed(by_id) == _billed(by_details) == _billed(by_subscription)
    assert renewal.amount_due == ahead.amount_due
    after = client.v1.subscriptions.retrieve(sub.id)
    assert (after["items"].data[0].id, after["items"].data[0].price.id) == (item.id, new_price.id)
    assert (after["items"].data[0].current_period_start, after["items"].data[0].current_period_end) == (
        period_end,
        next_end,
    )


def test_schedule_preview_by_id_of_a_downgrade_is_the_renewal_it_makes(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    phase = schedule.phases[0]
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "end_behavior": "release",
            "phases": [
                {
                    "items": [{"price": prices.monthly.id}],
                    "start_date": phase.start_date,
                    "end_date": phase.end_date,
                },
                {
                    "items": [{"price": prices.basic_monthly.id, "quantity": 2}],
                    "duration": {"interval": "month"},
                },
            ],
        },
    )
    advance(client, clock.id, JAN_1 + 20 * DAY + 5 * HOUR)
    preview = client.v1.invoices.create_preview(params={"customer": customer.id, "schedule": schedule.id})
    assert [
        (line.amount, line.quantity, line.pricing.price_details.price) for line in preview.lines.data
    ] == [(2000, 2, prices.basic_monthly.id)]
    assert preview.parent.subscription_details.subscription == sub.id

    advance(client, clock.id, FEB_1 + 2 * HOUR)
    renewal = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert renewal.amount_paid == 2000
    assert _billed(renewal) == _billed(preview)


def test_schedule_preview_of_a_phase_change_within_the_period_is_the_invoice_it_makes(
    client: stripe.StripeClient,
) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    middle = JAN_1 + 15 * DAY + 777  # another interval from here: credit, and a year billed then
    phases = [
        {"items": [{"price": prices.monthly.id}], "start_date": JAN_1, "end_date": middle},
        {"items": [{"price": prices.yearly.id}], "proration_behavior": "create_prorations"},
    ]
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    ahead = client.v1.invoices.create_preview(
        params={"schedule": schedule.id, "schedule_details": {"phases": phases}}
    )
    client.v1.subscription_schedules.update(schedule.id, params={"phases": phases})
    advance(client, clock.id, middle + 60)
    changed = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert (changed.billing_reason, changed.created, ahead.created) == ("subscription_update", middle, middle)
    assert _billed(changed) == _billed(ahead)
    assert changed.amount_paid == 30000 - round(3000 * (FEB_1 - middle) / (FEB_1 - JAN_1))


def test_schedule_preview_refuses_what_stripe_refuses(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    dollars = catalog(client, currency="usd")
    customer, _clock, _pm = customer_on_clock(client)
    other, _other_clock, _other_pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    item = sub["items"].data[0]
    this_period = {
        "items": [{"price": prices.monthly.id}],
        "start_date": item.current_period_start,
        "end_date": item.current_period_end,
    }
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})

    def refused(params: dict[str, object]) -> stripe.InvalidRequestError:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.invoices.create_preview(params=params)  # type: ignore[arg-type]
        assert caught.value.http_status == 400
        return caught.value

    in_dollars = refused(
        {
            "schedule": schedule.id,
            "schedule_details": {"phases": [this_period, {"items": [{"price": dollars.yearly.id}]}]},
        }
    )
    assert in_dollars.param == "schedule_details[phases][1][items][0][price]"
    assert refused({"customer": other.id, "schedule": schedule.id}).param == "schedule"
    assert refused({"schedule": schedule.id, "subscription": sub.id}).param == "subscription"
    both = refused(
        {"schedule": schedule.id, "subscription_details": {"items": [{"price": prices.yearly.id}]}}
    )
    assert both.param == "subscription_details"
    mixed = refused(
        {
            "subscription": sub.id,
            "subscription_details": {"proration_behavior": "none"},
            "schedule_details": {"phases": [this_period]},
        }
    )
    assert mixed.param == "subscription_details"
    assert (
        refused({"subscription": sub.id, "schedule_details": {"phases": [this_period]}}).param
        == "subscription"
    )
    unknown = refused(
        {"schedule": schedule.id, "schedule_details": {"phases": [{**this_period, "plan": "x"}]}}
    )
    assert (unknown.code, unknown.param) == ("parameter_unknown", "schedule_details[phases][0][plan]")
    # The last phase ends with this period and the schedule then cancels the subscription: nothing comes next.
    ending = refused(
        {"schedule": schedule.id, "schedule_details": {"phases": [this_period], "end_behavior": "cancel"}}
    )
    assert ending.code == "invoice_upcoming_none"
    assert client.v1.subscription_schedules.retrieve(schedule.id).end_behavior == "release"


def test_a_released_schedule_cancels_the_downgrade(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    phase = schedule.phases[0]
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {
                    "items": [{"price": prices.monthly.id}],
                    "start_date": phase.start_date,
                    "end_date": phase.end_date,
                },
                {"items": [{"price": prices.basic_monthly.id}]},
            ]
        },
    )
    client.v1.subscription_schedules.release(schedule.id)
    advance(client, clock.id, FEB_1 + 2 * HOUR)
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == prices.monthly.id


def test_pause_and_resume(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    jan_11 = JAN_1 + 10 * DAY
    advance(client, clock.id, jan_11)
    paused = client.v1.subscriptions.pause(sub.id)
    assert paused.status == "paused"
    assert paused.status_details.paused.subscription.type == "pause_requested"

    advance(client, clock.id, FEB_1 + 14 * DAY)
    assert (
        len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 1
    )  # nothing billed while paused

    resumed = client.v1.subscriptions.resume(
        sub.id, params={"billing_cycle_anchor": {"type": "now"}, "expand": ["latest_invoice"]}
    )
    credit = round(3000 * 21 / 31)  # the unused part of January was credited at pause
    assert resumed.status == "active"
    assert resumed.latest_invoice.amount_paid == 3000 - credit
    assert resumed["items"].data[0].current_period_start == FEB_1 + 14 * DAY
    types = event_types(client)
    assert "customer.subscription.paused" in types and "customer.subscription.resumed" in types


def test_pause_collection_voids_invoices_until_it_resumes(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    client.v1.subscriptions.update(
        sub.id, params={"pause_collection": {"behavior": "void", "resumes_at": FEB_1 + 10 * DAY}}
    )
    advance(client, clock.id, FEB_1 + 2 * HOUR)
    february = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert february.status == "void"
    advance(client, clock.id, MAR_1 + 2 * HOUR)
    assert client.v1.subscriptions.retrieve(sub.id).pause_collection is None
    march = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert (march.status, march.amount_paid) == ("paid", 3000)


def test_cancel_at_period_end_and_undo(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    ending = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert (ending.cancel_at_period_end, ending.cancel_at) == (True, FEB_1)
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    advance(client, clock.id, FEB_1 + 2 * HOUR)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    advance(client, clock.id, MAR_1 + 2 * HOUR)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", MAR_1)
    assert len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 2


def test_a_card_that_expires_before_renewal_declines_as_expired(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": JAN_1})
    customer = client.v1.customers.create(params={"test_clock": clock.id})
    card = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2026, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(card.id, params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": card.id}})
    sub = subscribe(client, customer.id, prices.monthly.id)
    assert sub.status == "active"  # still valid in January
    advance(client, clock.id, FEB_1 + HOUR + 60)
    invoice = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    intent = client.v1.payment_intents.retrieve(invoice.payments.data[0].payment.payment_intent)
    assert intent.last_payment_error.decline_code == "expired_card"
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"


def test_trial_then_first_charge(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id, trial_period_days=14, expand=["latest_invoice"])
    assert (sub.status, sub.latest_invoice.amount_due) == ("trialing", 0)
    advance(client, clock.id, JAN_1 + 14 * DAY + 2 * HOUR)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.status == "active"
    assert after["items"].data[0].current_period_end == FEB_1 + 14 * DAY
    assert client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0].amount_paid == 3000


def test_pause_credits_unused_time_as_pending_invoice_items_and_ends_the_period(
    client: stripe.StripeClient,
) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    jan_11 = JAN_1 + 10 * DAY
    advance(client, clock.id, jan_11)
    paused = client.v1.subscriptions.pause(sub.id)
    assert paused["items"].data[0].current_period_end == jan_11  # as Stripe: the period ends at the pause
    (item,) = client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data
    assert item.amount == -round(3000 * 21 / 31) and item.proration
    assert item.parent.subscription_details.subscription == sub.id
    resumed = client.v1.subscriptions.resume(sub.id, params={"expand": ["latest_invoice"]})
    assert resumed.latest_invoice.amount_paid == 3000 + item.amount
    assert client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data == []


def test_a_subscription_with_a_schedule_cannot_be_paused(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, _clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError, match="attached schedules"):
        client.v1.subscriptions.pause(sub.id)
    client.v1.subscription_schedules.release(schedule.id)
    assert client.v1.subscriptions.pause(sub.id).status == "paused"


def test_resume_on_payment_success_stays_paused_until_a_retry_pays(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    client.v1.subscriptions.pause(sub.id, params={"bill_for": {"unused_time_from": {"type": "none"}}})
    _fail_next_renewal(client, customer.id, sub.id)
    advance(client, clock.id, MAR_1)
    resuming = client.v1.subscriptions.resume(
        sub.id, params={"payment_behavior": "resume_on_payment_success", "expand": ["latest_invoice"]}
    )
    assert resuming.status == "paused"  # not past_due: the charge failed and Stripe retries it
    invoice = resuming.latest_invoice
    assert (invoice.status, invoice.attempt_count, invoice.amount_due) == ("open", 1, 3000)
    assert invoice.next_payment_attempt is not None
    with pytest.raises(stripe.InvalidRequestError, match="already resuming"):
        client.v1.subscriptions.resume(sub.id, params={"payment_behavior": "resume_on_payment_success"})
    assert "customer.subscription.resumed" not in event_types(client)

    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": good.id})
    advance(client, clock.id, invoice.next_payment_attempt + 60)
    resumed = client.v1.subscriptions.retrieve(sub.id)
    assert resumed.status == "active"
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert event_types(client).count("customer.subscription.resumed") == 1
    assert resumed["items"].data[0].current_period_start == MAR_1


def test_resume_on_payment_success_with_a_good_card_is_active_at_once(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    client.v1.subscriptions.pause(sub.id)
    advance(client, clock.id, MAR_1)
    resumed = client.v1.subscriptions.resume(
        sub.id,
        params={"payment_behavior": "resume_on_payment_success", "expand": ["latest_invoice"]},
        options={"idempotency_key": "resume-once"},
    )
    assert resumed.status == "active" and resumed.latest_invoice.status == "paid"
    again = client.v1.subscriptions.resume(
        sub.id,
        params={"payment_behavior": "resume_on_payment_success", "expand": ["latest_invoice"]},
        options={"idempotency_key": "resume-once"},
    )
    assert again.latest_invoice.id == resumed.latest_invoice.id  # a replay, not a second resume
    assert len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 2
