"""The decline playbook on its own (billing/declines.py): a decline code in, its family, hardness
and retry rule out, and words for the customer; no database, no Stripe."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from billing.declines import (
    ATTEMPT_WINDOW,
    DOCUMENTED_CODES,
    FAMILIES,
    MAX_ATTEMPTS_PER_CARD,
    Action,
    Decline,
    Family,
    decline_for,
    playbook_for,
    playbook_for_decline,
    retry_refusal,
)

# Copied by hand from https://docs.stripe.com/declines/codes ("Card decline codes"), not from the
# module, so that a code the module forgets fails here.
STRIPE_CARD_DECLINE_CODES = (
    "authentication_required",
    "authentication_not_handled",
    "approve_with_id",
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
    "incorrect_address",
    "incorrect_cvc",
    "incorrect_number",
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
    "mobile_device_authentication_required",
)

TEXT_FIELDS = ("title", "explanation", "instruction", "button", "summary")


@pytest.fixture(autouse=True)
def english() -> None:
    translation.activate("en")


def test_the_module_knows_exactly_the_codes_stripe_documents() -> None:
    assert len(set(STRIPE_CARD_DECLINE_CODES)) == len(STRIPE_CARD_DECLINE_CODES) == 50
    assert set(STRIPE_CARD_DECLINE_CODES) == DOCUMENTED_CODES


@pytest.mark.parametrize("code", STRIPE_CARD_DECLINE_CODES)
def test_every_documented_code_has_its_own_family_and_a_playbook_with_words(code: str) -> None:
    # Mapped on purpose, not caught by the fallback for unknown codes.
    assert code in FAMILIES
    decline = decline_for(code=code)
    assert decline.family is FAMILIES[code]
    playbook = playbook_for_decline(decline=decline)
    for field in TEXT_FIELDS:
        assert str(getattr(playbook, field)).strip(), (code, field)


@pytest.mark.parametrize("code", STRIPE_CARD_DECLINE_CODES)
def test_a_hard_decline_always_asks_for_another_card(code: str) -> None:
    decline = decline_for(code=code)
    if decline.hard:
        assert decline.action is Action.UPDATE_CARD
        assert playbook_for_decline(decline=decline).action is Action.UPDATE_CARD
    if decline.network_forbids_retry:
        assert decline.hard


@pytest.mark.parametrize("code", ["", "   ", "card_declined", "something_stripe_adds_next_year"])
def test_an_unknown_or_empty_code_is_a_soft_generic_decline(code: str) -> None:
    decline = decline_for(code=code)
    assert decline.family is Family.GENERIC
    assert not decline.hard
    assert not decline.network_forbids_retry
    assert decline.action is Action.PAY_NOW


def test_codes_are_read_whatever_their_case_and_spaces() -> None:
    assert decline_for(code=" Lost_Card ") == decline_for(code="lost_card")


@pytest.mark.parametrize(
    ("code", "family"),
    [
        ("lost_card", Family.LOST_STOLEN),
        ("stolen_card", Family.LOST_STOLEN),
        ("pickup_card", Family.LOST_STOLEN),
        ("fraudulent", Family.LOST_STOLEN),
        ("expired_card", Family.CARD_REPLACED),
        ("new_account_information_available", Family.CARD_REPLACED),
        ("incorrect_number", Family.WRONG_DETAILS),
        ("do_not_try_again", Family.LOST_STOLEN),
        ("stop_payment_order", Family.LOST_STOLEN),
        ("card_not_supported", Family.LOST_STOLEN),
    ],
)
def test_hard_declines(code: str, family: Family) -> None:
    decline = decline_for(code=code)
    assert decline.hard
    assert decline.family is family


@pytest.mark.parametrize(
    ("code", "family", "action"),
    [
        ("insufficient_funds", Family.INSUFFICIENT_FUNDS, Action.PAY_NOW),
        ("generic_decline", Family.GENERIC, Action.PAY_NOW),
        ("do_not_honor", Family.GENERIC, Action.PAY_NOW),
        ("processing_error", Family.TRY_LATER, Action.PAY_NOW),
        ("issuer_not_available", Family.TRY_LATER, Action.PAY_NOW),
        ("card_velocity_exceeded", Family.TRY_LATER, Action.PAY_NOW),
        ("authentication_required", Family.AUTHENTICATION, Action.APPROVE),
    ],
)
def test_soft_declines(code: str, family: Family, action: Action) -> None:
    decline = decline_for(code=code)
    assert decline == Decline(code=code, family=family, hard=False, network_forbids_retry=False)
    assert decline.action is action


def test_a_soft_decline_paid_again_also_offers_another_card() -> None:
    assert playbook_for(family=Family.INSUFFICIENT_FUNDS).also_update_card
    assert playbook_for(family=Family.GENERIC).also_update_card
    assert not playbook_for(family=Family.AUTHENTICATION).also_update_card
    assert not playbook_for(family=Family.LOST_STOLEN).also_update_card


def test_the_button_says_the_action() -> None:
    buttons = {
        Action.UPDATE_CARD: "Add a new card",
        Action.PAY_NOW: "Try the payment again",
        Action.APPROVE: "Approve the payment",
    }
    for family in Family:
        playbook = playbook_for(family=family)
        assert str(playbook.button) == buttons[playbook.action]


def test_insufficient_funds_is_told_as_such() -> None:
    playbook = playbook_for_decline(decline=decline_for(code="insufficient_funds"))
    assert str(playbook.title) == "Your card didn't have enough funds"
    assert str(playbook.summary) == "your bank declined it for lack of funds"


def test_lost_stolen_and_fraud_are_not_named_to_the_customer() -> None:
    # Stripe asks that these be presented like a generic decline.
    playbook = playbook_for(family=Family.LOST_STOLEN)
    words = " ".join(str(getattr(playbook, field)) for field in TEXT_FIELDS).lower()
    for secret in ("lost", "stolen", "fraud", "block"):
        assert secret not in words


def test_each_familys_words_are_its_own() -> None:
    for field in ("title", "explanation", "instruction", "summary"):
        texts = [str(getattr(playbook_for(family=family), field)) for family in Family]
        assert len(set(texts)) == len(Family), field


def test_every_summary_fits_a_text_message() -> None:
    for family in Family:
        summary = str(playbook_for(family=family).summary)
        assert 0 < len(summary) <= 70, summary


# --------------------------------------------------------------------------- advice codes


def test_advice_do_not_try_again_makes_a_soft_decline_hard_and_forbidden() -> None:
    decline = decline_for(code="insufficient_funds", advice_code="do_not_try_again")
    assert decline.family is Family.INSUFFICIENT_FUNDS
    assert decline.hard
    assert decline.network_forbids_retry
    playbook = playbook_for_decline(decline=decline)
    # Still the true reason, but no "try again" button.
    assert str(playbook.title) == "Your card didn't have enough funds"
    assert playbook.action is Action.UPDATE_CARD
    assert str(playbook.button) == "Add a new card"
    assert str(playbook.instruction) == (
        "Please add a different card. Your bank has asked us not to charge this card again."
    )
    assert not playbook.also_update_card


def test_advice_confirm_card_data_asks_for_the_details_again_without_forbidding_a_retry() -> None:
    decline = decline_for(code="generic_decline", advice_code="confirm_card_data")
    assert decline.hard
    assert not decline.network_forbids_retry
    assert decline.action is Action.UPDATE_CARD
    playbook = playbook_for_decline(decline=decline)
    assert str(playbook.title) == "Your bank declined the payment"
    assert (
        str(playbook.instruction)
        == "Enter your card details again, checking each one, or use a different card."
    )


@pytest.mark.parametrize("advice", ["", "try_again_later", "unknown_advice"])
def test_other_advice_changes_nothing(advice: str) -> None:
    assert decline_for(code="insufficient_funds", advice_code=advice) == decline_for(
        code="insufficient_funds"
    )
    assert decline_for(code="lost_card", advice_code=advice).hard


# --------------------------------------------------------------------------- the guardrail


def test_the_window_and_limit_are_visas() -> None:
    assert dt.timedelta(days=30) == ATTEMPT_WINDOW
    assert MAX_ATTEMPTS_PER_CARD == 15


@pytest.mark.parametrize(
    "code",
    [
        "lost_card",
        "stolen_card",
        "pickup_card",
        "do_not_try_again",
        "invalid_account",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "stop_payment_order",
        "fraudulent",
        "previously_declined_do_not_retry",
    ],
)
def test_no_retry_after_a_decline_the_networks_forbid_retrying(code: str) -> None:
    assert decline_for(code=code).network_forbids_retry
    refusal = retry_refusal(decline_codes_on_card=["insufficient_funds", code], attempts_in_window=2)
    assert refusal == "network_forbids_retry"


def test_no_retry_after_advice_not_to() -> None:
    refusal = retry_refusal(
        decline_codes_on_card=["insufficient_funds"], advice_codes=["do_not_try_again"], attempts_in_window=1
    )
    assert refusal == "network_forbids_retry"


def test_soft_declines_may_be_retried() -> None:
    codes = ["insufficient_funds", "do_not_honor", "processing_error", "authentication_required", ""]
    assert (
        retry_refusal(decline_codes_on_card=codes, advice_codes=["try_again_later"], attempts_in_window=5)
        is None
    )
    assert retry_refusal(decline_codes_on_card=[], attempts_in_window=0) is None


def test_at_most_fifteen_attempts_on_a_card_in_the_window() -> None:
    assert retry_refusal(decline_codes_on_card=["insufficient_funds"], attempts_in_window=14) is None
    assert (
        retry_refusal(decline_codes_on_card=["insufficient_funds"], attempts_in_window=15) == "attempt_limit"
    )
    assert retry_refusal(decline_codes_on_card=[], attempts_in_window=40) == "attempt_limit"
    assert retry_refusal(decline_codes_on_card=[], attempts_in_window=5, max_attempts=5) == "attempt_limit"


def test_a_forbidden_retry_is_refused_as_such_even_over_the_limit() -> None:
    assert (
        retry_refusal(decline_codes_on_card=["stolen_card"], attempts_in_window=20) == "network_forbids_retry"
    )


@pytest.mark.parametrize("language", ["sv", "nl"])
@pytest.mark.parametrize("family", list(Family))
def test_every_familys_words_are_translated(family: Family, language: str) -> None:
    """What the customer reads about their decline, in Swedish and Dutch, not English left over."""
    playbook = playbook_for(family=family)
    english = {field: str(getattr(playbook, field)) for field in TEXT_FIELDS}
    with translation.override(language):
        translated = {field: str(getattr(playbook, field)) for field in TEXT_FIELDS}
    for field in TEXT_FIELDS:
        assert translated[field] and translated[field] != english[field], (field, english[field])


def test_the_emulator_declines_with_every_code_the_playbook_knows() -> None:
    """Offline, every documented decline can be made to happen (the emulator's decline control)
    and the portal has words for it: the two lists are the same list."""
    from stripe_emulator.resources.payment_methods import DECLINES

    assert set(DECLINES) == DOCUMENTED_CODES
