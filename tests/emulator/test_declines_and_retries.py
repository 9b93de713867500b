"""What a payment-recovery engine reads from Stripe after a failed payment: the decline code and
its advice on the PaymentIntent and on one Charge per attempt, a card told to start declining,
and `next_payment_attempt` telling when the next retry really runs (and that `auto_advance`
stops and resumes retries), all through the official client on test clocks."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from stripe_emulator.app import Emulator

from .support import (
    DAY,
    JAN_1,
    advance,
    catalog,
    customer_on_clock,
    emulator_post,
    event_types,
    raw,
    subscribe,
)

FEB_1 = JAN_1 + 31 * DAY
HOUR = 3600
#: The renewal on Feb 1 is finalized and charged an hour after it is made.
FIRST_ATTEMPT = FEB_1 + HOUR

#: Every card decline code of docs.stripe.com/declines/codes.
DOCUMENTED_CODES = [
    "approve_with_id",
    "authentication_not_handled",
    "authentication_required",
    "call_issuer",
    "card_not_supported",
    "card_velocity_exceeded",
    "currency_not_supported",
    "do_not_honor",
    "do_not_try_again",
    "duplicate_transaction",
    "expired_card",
    "fraudulent",
    "generic_decline",
    "incorrect_cvc",
    "incorrect_number",
    "incorrect_address",
    "incorrect_pin",
    "incorrect_zip",
    "insufficient_funds",
    "invalid_account",
    "invalid_amount",
    "invalid_cvc",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "invalid_number",
    "invalid_pin",
    "issuer_not_available",
    "lost_card",
    "merchant_blacklist",
    "mobile_device_authentication_required",
    "new_account_information_available",
    "no_action_taken",
    "not_permitted",
    "offline_pin_required",
    "online_or_offline_pin_required",
    "pickup_card",
    "pin_try_exceeded",
    "processing_error",
    "reenter_transaction",
    "restricted_card",
    "revocation_of_all_authorizations",
    "revocation_of_authorization",
    "security_violation",
    "service_not_allowed",
    "stolen_card",
    "stop_payment_order",
    "testmode_decline",
    "transaction_not_allowed",
    "try_again_later",
    "withdrawal_count_limit_exceeded",
]

#: Stripe's error code where it isn't card_declined, and the advice code per Stripe's rules.
EXPECTED = {
    "insufficient_funds": ("card_declined", "try_again_later"),
    "generic_decline": ("card_declined", None),
    "lost_card": ("card_declined", "do_not_try_again"),
    "stolen_card": ("card_declined", "do_not_try_again"),
    "pickup_card": ("card_declined", "do_not_try_again"),
    "fraudulent": ("card_declined", "do_not_try_again"),
    "do_not_try_again": ("card_declined", "do_not_try_again"),
    "revocation_of_authorization": ("card_declined", "do_not_try_again"),
    "revocation_of_all_authorizations": ("card_declined", "do_not_try_again"),
    "issuer_not_available": ("card_declined", "try_again_later"),
    "try_again_later": ("card_declined", "try_again_later"),
    "card_velocity_exceeded": ("card_declined", "try_again_later"),
    "processing_error": ("processing_error", "try_again_later"),
    "expired_card": ("expired_card", "confirm_card_data"),
    "incorrect_cvc": ("incorrect_cvc", "confirm_card_data"),
    "incorrect_number": ("incorrect_number", "confirm_card_data"),
    "incorrect_zip": ("incorrect_zip", "confirm_card_data"),
    "authentication_required": ("authentication_required", None),
}


def _decline(base: str, pm: str, code: str | None) -> Any:
    return emulator_post(base, f"/_emulator/payment_methods/{pm}/decline", {"decline_code": code})


def _renewal(client: stripe.StripeClient, sub: str) -> stripe.Invoice:
    return client.v1.invoices.list(params={"subscription": sub, "limit": 1}).data[0]


def _intent(client: stripe.StripeClient, invoice: str) -> stripe.PaymentIntent:
    expanded = client.v1.invoices.retrieve(
        invoice, params={"expand": ["payments.data.payment.payment_intent"]}
    )
    intent = expanded.payments.data[0].payment.payment_intent
    assert isinstance(intent, stripe.PaymentIntent)
    return intent


def _charges(client: stripe.StripeClient, intent: str) -> list[stripe.Charge]:
    return client.v1.charges.list(params={"payment_intent": intent, "limit": 100}).data


def _failing_renewal(
    client: stripe.StripeClient, base: str, code: str = "insufficient_funds"
) -> tuple[str, str, str, stripe.Invoice]:
    """A customer whose card was fine when saved and declines with ``code`` at the Feb 1 renewal,
    after its first attempt: (clock, subscription, card, invoice)."""
    prices = catalog(client)
    customer, clock, pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    _decline(base, pm, code)
    advance(client, clock.id, FIRST_ATTEMPT)
    return clock.id, sub.id, pm, _renewal(client, sub.id)


# decline codes on failed renewals and retries -------------------------------------------------


def test_each_attempt_is_a_charge_and_the_intent_carries_the_latest_decline(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    clock, sub, pm, invoice = _failing_renewal(client, fresh_emulator.url)
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == (
        "open",
        1,
        FIRST_ATTEMPT + DAY,
    )

    intent = _intent(client, invoice.id)
    error = intent.last_payment_error
    assert (error.type, error.code, error.decline_code, error.advice_code) == (
        "card_error",
        "card_declined",
        "insufficient_funds",
        "try_again_later",
    )
    assert error.message == "Your card has insufficient funds."
    assert error.payment_method.id == pm
    [first] = _charges(client, intent.id)
    assert (error.charge, intent.latest_charge) == (first.id, first.id)
    assert (first.status, first.payment_method, first.created, first.failure_code) == (
        "failed",
        pm,
        FIRST_ATTEMPT,
        "card_declined",
    )
    assert (first.outcome.reason, first.outcome.advice_code, first.outcome.type) == (
        "insufficient_funds",
        "try_again_later",
        "issuer_declined",
    )

    # The automatic retry runs exactly when next_payment_attempt said, and is a charge of its own.
    advance(client, clock, FIRST_ATTEMPT + DAY)
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.attempt_count, invoice.next_payment_attempt) == (2, FIRST_ATTEMPT + 3 * DAY)
    charges = _charges(client, intent.id)
    assert [(c.created, c.status) for c in charges] == [
        (FIRST_ATTEMPT + DAY, "failed"),
        (FIRST_ATTEMPT, "failed"),
    ]

    # The customer pays by hand with another card that declines differently: a third charge, and
    # the intent now tells that decline; the schedule is not moved by it.
    other = client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": invoice.customer}
    )
    with pytest.raises(stripe.CardError) as caught:
        client.v1.invoices.pay(invoice.id, params={"payment_method": other.id})
    assert (caught.value.code, caught.value.error.decline_code, caught.value.error.advice_code) == (
        "card_declined",
        "generic_decline",
        None,
    )
    intent = _intent(client, invoice.id)
    charges = _charges(client, intent.id)
    assert [c.payment_method for c in charges] == [other.id, pm, pm]
    assert intent.last_payment_error.decline_code == "generic_decline"
    assert intent.last_payment_error.payment_method.id == other.id
    assert intent.last_payment_error.charge == charges[0].id == intent.latest_charge
    assert charges[0].outcome.reason == "generic_decline" and charges[0].failure_code == "card_declined"
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.attempt_count, invoice.next_payment_attempt) == (2, FIRST_ATTEMPT + 3 * DAY)

    # Healed, the saved card pays at the next retry: a fourth charge, succeeded, and no next attempt.
    _decline(fresh_emulator.url, pm, None)
    advance(client, clock, FIRST_ATTEMPT + 3 * DAY)
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == ("paid", 3, None)
    charges = _charges(client, intent.id)
    assert [(c.status, c.payment_method) for c in charges] == [
        ("succeeded", pm),
        ("failed", other.id),
        ("failed", pm),
        ("failed", pm),
    ]
    assert charges[0].outcome.advice_code is None and charges[0].outcome.type == "authorized"
    assert client.v1.subscriptions.retrieve(sub).status == "active"


@pytest.mark.parametrize("code", DOCUMENTED_CODES)
def test_every_documented_decline_code_reaches_the_error_the_intent_and_the_charge(
    client: stripe.StripeClient, fresh_emulator: Emulator, code: str
) -> None:
    customer = client.v1.customers.create()
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    _decline(fresh_emulator.url, pm.id, code)
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "eur",
                "customer": customer.id,
                "payment_method": pm.id,
                "confirm": True,
                "off_session": True,
            }
        )
    error = caught.value.error
    assert error.decline_code == code
    if code in EXPECTED:
        assert (error.code, error.advice_code) == EXPECTED[code]
    assert error.advice_code in (None, "do_not_try_again", "try_again_later", "confirm_card_data")
    assert error.message
    intent = error.payment_intent
    assert intent.status == "requires_payment_method"
    last = intent.last_payment_error
    assert (last.code, last.decline_code, last.advice_code, last.message) == (
        error.code,
        code,
        error.advice_code,
        error.message,
    )
    charge = client.v1.charges.retrieve(last.charge)
    assert (charge.status, charge.payment_method, charge.failure_code, charge.failure_message) == (
        "failed",
        pm.id,
        error.code,
        error.message,
    )
    assert (charge.outcome.reason, charge.outcome.advice_code) == (code, error.advice_code)


def test_the_emulator_knows_no_decline_code_stripe_does_not_document(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    from stripe_emulator.resources.payment_methods import DECLINES

    assert sorted(DECLINES) == sorted(DOCUMENTED_CODES)
    pm = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040}}
    )
    status, _headers, body = raw(
        fresh_emulator.url,
        "POST",
        f"/_emulator/payment_methods/{pm.id}/decline",
        {"decline_code": "card_is_sad"},
    )
    assert (status, body["error"]["param"]) == (400, "decline_code")
    status, _headers, body = raw(
        fresh_emulator.url,
        "POST",
        "/_emulator/payment_methods/pm_missing/decline",
        {"decline_code": "lost_card"},
    )
    assert status == 404


def test_a_card_told_to_require_authentication_behaves_like_the_always_3ds_card(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    _clock, sub, pm, invoice = _failing_renewal(client, fresh_emulator.url, "authentication_required")
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == (
        "open",
        1,
        FIRST_ATTEMPT + DAY,
    )
    intent = _intent(client, invoice.id)
    assert intent.status == "requires_action"
    error = intent.last_payment_error
    assert (error.code, error.decline_code, error.payment_method.id) == (
        "authentication_required",
        "authentication_required",
        pm,
    )
    [charge] = _charges(client, intent.id)
    assert (error.charge, charge.status, charge.outcome.reason) == (
        charge.id,
        "failed",
        "authentication_required",
    )
    assert "invoice.payment_action_required" in event_types(client)
    assert client.v1.subscriptions.retrieve(sub).status == "past_due"

    emulator_post(fresh_emulator.url, f"/_emulator/intents/{intent.id}/authenticate", {"outcome": "approve"})
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert [c.status for c in _charges(client, intent.id)] == ["succeeded", "failed"]
    assert client.v1.subscriptions.retrieve(sub).status == "active"


def test_stripes_decline_test_cards_that_attach_or_not(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    # Radar blocks every payment on 4100 0000 0000 0019, which attaches fine.
    for test_id in ("pm_card_radarBlock", "pm_card_chargeDeclinedFraudulent"):
        blocked = client.v1.payment_methods.attach(test_id, params={"customer": customer.id})
        assert blocked.card.last4 == "0019"
        with pytest.raises(stripe.CardError) as caught:
            client.v1.payment_intents.create(
                params={
                    "amount": 1000,
                    "currency": "eur",
                    "customer": customer.id,
                    "payment_method": blocked.id,
                    "confirm": True,
                    "off_session": True,
                }
            )
        assert (caught.value.code, caught.value.error.decline_code) == ("card_declined", "fraudulent")
        charge = client.v1.charges.retrieve(caught.value.error.payment_intent.latest_charge)
        assert (charge.outcome.type, charge.outcome.reason, charge.outcome.network_status) == (
            "blocked",
            "highest_risk_level",
            "not_sent_to_network",
        )
    # The velocity-limit card declines when the issuer checks it on attach, as the other decline cards.
    with pytest.raises(stripe.CardError) as refused:
        client.v1.payment_methods.attach(
            "pm_card_visa_chargeDeclinedVelocityLimitExceeded", params={"customer": customer.id}
        )
    assert (refused.value.code, refused.value.error.decline_code, refused.value.error.advice_code) == (
        "card_declined",
        "card_velocity_exceeded",
        "try_again_later",
    )


# next_payment_attempt and auto_advance -----------------------------------------------------------


def _failed_and_updated(client: stripe.StripeClient, invoice: str) -> list[stripe.Event]:
    events = client.v1.events.list(params={"limit": 100}).data
    return [
        e
        for e in reversed(events)
        if e.type in ("invoice.payment_failed", "invoice.updated") and e.data.object.id == invoice
    ]


def test_next_payment_attempt_is_when_the_next_attempt_runs_and_null_after_the_last(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    emulator_post(
        fresh_emulator.url,
        "/_emulator/settings",
        {"retry_schedule_days": [1, 3, 4], "after_final_failure": "past_due"},
    )
    clock, _sub, _pm, invoice = _failing_renewal(client, fresh_emulator.url, "lost_card")
    advance(client, clock, FIRST_ATTEMPT + 30 * DAY)
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == ("open", 4, None)

    attempts = sorted(c.created for c in _charges(client, _intent(client, invoice.id).id))
    assert attempts == [FIRST_ATTEMPT, FIRST_ATTEMPT + DAY, FIRST_ATTEMPT + 3 * DAY, FIRST_ATTEMPT + 4 * DAY]
    failures = [e for e in _failed_and_updated(client, invoice.id) if e.type == "invoice.payment_failed"]
    # Each failure names the moment of the attempt that followed it; the last names none.
    assert [e.data.object.next_payment_attempt for e in failures] == [*attempts[1:], None]
    assert [e.data.object.attempt_count for e in failures] == [1, 2, 3, 4]


@pytest.mark.parametrize("ending", ["void", "mark_uncollectible", "pay"])
def test_next_payment_attempt_is_null_once_the_invoice_is_settled(
    client: stripe.StripeClient, fresh_emulator: Emulator, ending: str
) -> None:
    clock, _sub, _pm, invoice = _failing_renewal(client, fresh_emulator.url)
    assert invoice.next_payment_attempt == FIRST_ATTEMPT + DAY
    if ending == "void":
        settled = client.v1.invoices.void_invoice(invoice.id)
    elif ending == "mark_uncollectible":
        settled = client.v1.invoices.mark_uncollectible(invoice.id)
    else:
        good = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": invoice.customer})
        settled = client.v1.invoices.pay(invoice.id, params={"payment_method": good.id})
    assert settled.next_payment_attempt is None
    advance(client, clock, FIRST_ATTEMPT + 20 * DAY)
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.attempt_count, after.next_payment_attempt) == (1, None)
    assert len(_charges(client, _intent(client, invoice.id).id)) == (2 if ending == "pay" else 1)


def test_auto_advance_off_stops_retries_and_a_hand_payment_still_works(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    clock, sub, _pm, invoice = _failing_renewal(client, fresh_emulator.url)
    stopped = client.v1.invoices.update(invoice.id, params={"auto_advance": False})
    assert (stopped.auto_advance, stopped.next_payment_attempt, stopped.status) == (False, None, "open")
    [updated] = [e for e in _failed_and_updated(client, invoice.id) if e.type == "invoice.updated"]
    assert updated.data.object.next_payment_attempt is None
    assert updated.data.previous_attributes.auto_advance is True
    assert updated.data.previous_attributes.next_payment_attempt == FIRST_ATTEMPT + DAY

    advance(client, clock, FIRST_ATTEMPT + 20 * DAY)
    later = client.v1.invoices.retrieve(invoice.id)
    assert (later.status, later.attempt_count, later.next_payment_attempt) == ("open", 1, None)
    intent = _intent(client, invoice.id)
    assert len(_charges(client, intent.id)) == 1  # the scheduled retries never ran

    good = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": invoice.customer})
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": good.id})
    assert (paid.status, paid.amount_paid, paid.next_payment_attempt) == ("paid", 3000, None)
    assert _charges(client, intent.id)[0].payment_method == good.id
    assert client.v1.subscriptions.retrieve(sub).status == "active"


def test_auto_advance_on_again_resumes_the_schedule_never_in_the_past(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    clock, _sub, _pm, invoice = _failing_renewal(client, fresh_emulator.url)
    client.v1.invoices.update(invoice.id, params={"auto_advance": False})
    # Turned back on before the first retry was due: that retry, at its time.
    resumed = client.v1.invoices.update(invoice.id, params={"auto_advance": True})
    assert (resumed.auto_advance, resumed.next_payment_attempt) == (True, FIRST_ATTEMPT + DAY)
    client.v1.invoices.update(invoice.id, params={"auto_advance": False})

    # Off while the first and second retries were due; on again five days later.
    off_until = FIRST_ATTEMPT + 5 * DAY
    advance(client, clock, off_until)
    assert client.v1.invoices.retrieve(invoice.id).attempt_count == 1
    resumed = client.v1.invoices.update(invoice.id, params={"auto_advance": True})
    due = resumed.next_payment_attempt
    assert due == off_until + 60  # a minute from now, not in the past
    events = [e for e in _failed_and_updated(client, invoice.id) if e.type == "invoice.updated"]
    assert [e.data.object.next_payment_attempt for e in events] == [None, FIRST_ATTEMPT + DAY, None, due]
    assert [e.data.object.auto_advance for e in events] == [False, True, False, True]

    advance(client, clock, due)  # exactly then, the retry runs
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert invoice.attempt_count == 2
    # The next retry keeps the schedule's spacing (retries 1 and 3 days after the first failure).
    assert invoice.next_payment_attempt == due + 2 * DAY
    assert sorted(c.created for c in _charges(client, _intent(client, invoice.id).id)) == [FIRST_ATTEMPT, due]


def test_what_follows_the_last_retry_happens_once(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    emulator_post(
        fresh_emulator.url,
        "/_emulator/settings",
        {"retry_schedule_days": [1], "after_final_failure": "cancel"},
    )
    clock, sub, _pm, invoice = _failing_renewal(client, fresh_emulator.url)
    advance(client, clock, FIRST_ATTEMPT + 2 * DAY)
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == ("open", 2, None)
    assert client.v1.subscriptions.retrieve(sub).status == "canceled"

    # A declined hand payment afterwards, and auto_advance set again, plan nothing and cancel nothing again.
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(invoice.id)
    client.v1.invoices.update(invoice.id, params={"auto_advance": False})
    resumed = client.v1.invoices.update(invoice.id, params={"auto_advance": True})
    assert resumed.next_payment_attempt is None
    advance(client, clock, FIRST_ATTEMPT + 20 * DAY)
    assert client.v1.invoices.retrieve(invoice.id).attempt_count == 2
    assert event_types(client, type="customer.subscription.deleted") == ["customer.subscription.deleted"]
