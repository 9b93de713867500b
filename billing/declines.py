"""The decline playbook: what a declined card payment means for the customer, and for retries.

The seeds ask for two things every failed payment should get.  First, a message written for the
actual reason of the decline: "your card didn't have enough funds" tells the customer what to do,
"your payment failed" does not.  Second, a hard decline (a card that will never pay again: lost,
stolen, expired, closed, a number that doesn't exist) is not retried on the same card; only a new
card fixes it, so we ask for one instead of charging the old one again.  Card networks back the
second rule with fees: Visa charges for any retry after a "do not retry" decline and for the 16th
and later attempts on one card within 30 days (PRODUCT D11).

So every code Stripe documents maps to one of a few families, each with one thing that fixes it
(an `Action`) and plain words for the customer; a code also says whether it is hard and whether
the networks forbid retrying it.  Pure rules: no database, no Stripe; callers count attempts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
from collections.abc import Mapping, Sequence

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class Family(enum.StrEnum):
    """The reason behind a decline, as the customer needs to hear it."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    CARD_REPLACED = "card_replaced"
    AUTHENTICATION = "authentication"
    WRONG_DETAILS = "wrong_details"
    TRY_LATER = "try_later"
    LOST_STOLEN = "lost_stolen"
    GENERIC = "generic"


class Action(enum.StrEnum):
    """The one thing that fixes a decline."""

    UPDATE_CARD = "update_card"
    PAY_NOW = "pay_now"
    APPROVE = "approve"


@dataclasses.dataclass(frozen=True)
class Decline:
    code: str
    family: Family
    # Retrying the same card is pointless or forbidden: only a new card (or new details) helps.
    hard: bool
    # Visa/Mastercard "do not retry": one more attempt on this card costs a network fee.
    network_forbids_retry: bool

    @property
    def action(self) -> Action:
        """The family's action, except that a hard decline always asks for another card."""
        if self.hard:
            return Action.UPDATE_CARD
        return _ACTIONS[self.family]


@dataclasses.dataclass(frozen=True)
class Playbook:
    family: Family
    action: Action
    title: Promise
    explanation: Promise
    instruction: Promise
    button: Promise
    # Short enough for a text message.
    summary: Promise
    # Offer "add a card" beside the main button: a soft decline may be fixed either way.
    also_update_card: bool = False


# --------------------------------------------------------------------------- the codes

# Every card decline code on https://docs.stripe.com/declines/codes ("Card decline codes"), as of
# 2026.  do_not_try_again and try_again_later are marked deprecated there (their advice moved to
# `advice_code`) but older charges and webhooks still carry them.
DOCUMENTED_CODES: frozenset[str] = frozenset(
    {
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
    }
)

# Stripe's own refusal to send a retry the networks would charge for; not on the codes page.
PREVIOUSLY_DECLINED_DO_NOT_RETRY = "previously_declined_do_not_retry"

_F = Family
FAMILIES: Mapping[str, Family] = types.MappingProxyType(
    {
        "insufficient_funds": _F.INSUFFICIENT_FUNDS,
        # The card itself is gone: expired, reissued, or its account closed.  Stripe describes
        # new_account_information_available and invalid_account in the same words.
        "expired_card": _F.CARD_REPLACED,
        "new_account_information_available": _F.CARD_REPLACED,
        "invalid_account": _F.CARD_REPLACED,
        # The customer has to confirm, not replace, the card.  The PIN codes only come from card
        # readers; the nearest thing online is the bank's own approval.
        "authentication_required": _F.AUTHENTICATION,
        "authentication_not_handled": _F.AUTHENTICATION,
        "mobile_device_authentication_required": _F.AUTHENTICATION,
        "offline_pin_required": _F.AUTHENTICATION,
        "online_or_offline_pin_required": _F.AUTHENTICATION,
        "incorrect_number": _F.WRONG_DETAILS,
        "invalid_number": _F.WRONG_DETAILS,
        "incorrect_cvc": _F.WRONG_DETAILS,
        "invalid_cvc": _F.WRONG_DETAILS,
        "incorrect_zip": _F.WRONG_DETAILS,
        "incorrect_address": _F.WRONG_DETAILS,
        "invalid_expiry_month": _F.WRONG_DETAILS,
        "invalid_expiry_year": _F.WRONG_DETAILS,
        "incorrect_pin": _F.WRONG_DETAILS,
        "invalid_pin": _F.WRONG_DETAILS,
        "pin_try_exceeded": _F.WRONG_DETAILS,
        # Nothing the customer did: the bank was busy or a limit resets with time.
        "issuer_not_available": _F.TRY_LATER,
        "processing_error": _F.TRY_LATER,
        "reenter_transaction": _F.TRY_LATER,
        "try_again_later": _F.TRY_LATER,
        "approve_with_id": _F.TRY_LATER,
        "card_velocity_exceeded": _F.TRY_LATER,
        "withdrawal_count_limit_exceeded": _F.TRY_LATER,
        # Cards that will not pay us again.  Stripe asks that lost, stolen, fraudulent and block
        # list declines be shown like a generic decline, so this family's words never say why;
        # that also makes them right for the other permanent refusals gathered here (the card
        # type or currency not supported, the customer or bank stopping payments to us), which
        # would otherwise fall into `generic` and be offered a retry that cannot succeed.
        "lost_card": _F.LOST_STOLEN,
        "stolen_card": _F.LOST_STOLEN,
        "pickup_card": _F.LOST_STOLEN,
        "restricted_card": _F.LOST_STOLEN,
        "fraudulent": _F.LOST_STOLEN,
        "merchant_blacklist": _F.LOST_STOLEN,
        "security_violation": _F.LOST_STOLEN,
        "do_not_try_again": _F.LOST_STOLEN,
        "revocation_of_authorization": _F.LOST_STOLEN,
        "revocation_of_all_authorizations": _F.LOST_STOLEN,
        "stop_payment_order": _F.LOST_STOLEN,
        "card_not_supported": _F.LOST_STOLEN,
        "currency_not_supported": _F.LOST_STOLEN,
        "testmode_decline": _F.LOST_STOLEN,
        PREVIOUSLY_DECLINED_DO_NOT_RETRY: _F.LOST_STOLEN,
        # The bank said no without saying why; it may well say yes tomorrow.
        "generic_decline": _F.GENERIC,
        "do_not_honor": _F.GENERIC,
        "call_issuer": _F.GENERIC,
        "no_action_taken": _F.GENERIC,
        "not_permitted": _F.GENERIC,
        "service_not_allowed": _F.GENERIC,
        "transaction_not_allowed": _F.GENERIC,
        "invalid_amount": _F.GENERIC,
        "duplicate_transaction": _F.GENERIC,
    }
)

# A decline is hard exactly when its family can only be fixed with another card (or the card's
# details entered again): retrying the stored card would be declined the same way.
_HARD_FAMILIES = frozenset({Family.CARD_REPLACED, Family.WRONG_DETAILS, Family.LOST_STOLEN})

# Visa's category 1, "issuer will never approve" (pick up, lost, stolen, invalid card number,
# closed account, stop payment and revocation orders), in Stripe's words, plus what Stripe names
# "do not try again" and fraud.  Restricted cards (Visa 62) are category 2 for Visa, but Stripe
# says they may be lost or stolen, and a card's network is not known here: the stricter reading.
_NETWORK_FORBIDS_RETRY = frozenset(
    {
        "lost_card",
        "stolen_card",
        "pickup_card",
        "fraudulent",
        "do_not_try_again",
        "invalid_account",
        "incorrect_number",
        "invalid_number",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "stop_payment_order",
        "restricted_card",
        PREVIOUSLY_DECLINED_DO_NOT_RETRY,
    }
)

# Stripe's charge.outcome.advice_code, which carries the networks' advice (Mastercard's merchant
# advice codes among it) on top of the decline code.
ADVICE_DO_NOT_TRY_AGAIN = "do_not_try_again"
ADVICE_TRY_AGAIN_LATER = "try_again_later"
ADVICE_CONFIRM_CARD_DATA = "confirm_card_data"


def _normal(code: str) -> str:
    return code.strip().lower()


def decline_for(*, code: str, advice_code: str = "") -> Decline:
    """The decline behind Stripe's `decline_code`; an unknown or empty one is generic and soft.

    `advice_code` can only make a decline stricter: "do not try again" forbids any retry on the
    card, and "confirm card data" needs the details entered again before the card can pay."""
    code = _normal(code)
    advice = _normal(advice_code)
    family = FAMILIES.get(code, Family.GENERIC)
    forbids = code in _NETWORK_FORBIDS_RETRY or advice == ADVICE_DO_NOT_TRY_AGAIN
    hard = family in _HARD_FAMILIES or forbids or advice == ADVICE_CONFIRM_CARD_DATA
    return Decline(code=code, family=family, hard=hard, network_forbids_retry=forbids)


# --------------------------------------------------------------------------- the words


@dataclasses.dataclass(frozen=True)
class _Texts:
    title: Promise
    explanation: Promise
    instruction: Promise
    summary: Promise


_ACTIONS: Mapping[Family, Action] = types.MappingProxyType(
    {
        Family.INSUFFICIENT_FUNDS: Action.PAY_NOW,
        Family.CARD_REPLACED: Action.UPDATE_CARD,
        Family.AUTHENTICATION: Action.APPROVE,
        Family.WRONG_DETAILS: Action.UPDATE_CARD,
        Family.TRY_LATER: Action.PAY_NOW,
        Family.LOST_STOLEN: Action.UPDATE_CARD,
        Family.GENERIC: Action.PAY_NOW,
    }
)

# One label per action, so the same thing to do reads the same in every page and message.
_BUTTONS: Mapping[Action, Promise] = types.MappingProxyType(
    {
        Action.UPDATE_CARD: _("Add a new card"),
        Action.PAY_NOW: _("Try the payment again"),
        Action.APPROVE: _("Approve the payment"),
    }
)

_TEXTS: Mapping[Family, _Texts] = types.MappingProxyType(
    {
        Family.INSUFFICIENT_FUNDS: _Texts(
            title=_("Your card didn't have enough funds"),
            explanation=_(
                "Your bank turned down the payment because there wasn't enough money or credit "
                "on the card at the time."
            ),
            instruction=_(
                "When there is enough on the card, try the payment again. You can also pay with a "
                "different card."
            ),
            summary=_("your bank declined it for lack of funds"),
        ),
        Family.CARD_REPLACED: _Texts(
            title=_("Your card has expired or been replaced"),
            explanation=_(
                "The card we have for you can't be charged any more. This usually happens when a "
                "card expires or your bank sends you a new one."
            ),
            instruction=_("Add your new card, or another card, and we'll take the payment with it."),
            summary=_("the card we have has expired or was replaced"),
        ),
        Family.AUTHENTICATION: _Texts(
            title=_("Your bank wants you to approve this payment"),
            explanation=_(
                "For your security, your bank asks you to confirm this payment yourself before it "
                "goes through."
            ),
            instruction=_(
                "Approve the payment in the next step. Your bank may send you a code or ask you to "
                "confirm in its app."
            ),
            summary=_("your bank needs you to approve it"),
        ),
        Family.WRONG_DETAILS: _Texts(
            title=_("Some of your card details didn't match"),
            explanation=_(
                "Your bank couldn't match the card details we have, such as the card number, "
                "expiry date, security code or postcode, with its own records."
            ),
            instruction=_("Enter your card details again, checking each one, or use a different card."),
            summary=_("some card details didn't match your bank's"),
        ),
        Family.TRY_LATER: _Texts(
            title=_("Your bank couldn't take the payment just now"),
            explanation=_(
                "Your bank couldn't complete the payment this time, because of a passing problem "
                "or a spending limit that resets. It usually sorts itself out soon."
            ),
            instruction=_(
                "Try the payment again in a little while. If it still doesn't work, your bank can "
                "tell you more, or you can use a different card."
            ),
            summary=_("your bank couldn't take it just now"),
        ),
        # Deliberately silent on the reason (Stripe's advice for lost, stolen and fraud).
        Family.LOST_STOLEN: _Texts(
            title=_("This card can't be used for the payment"),
            explanation=_("The payment was declined, and this card can't be charged for it again."),
            instruction=_("Please add a different card. Your bank can tell you more about this card."),
            summary=_("this card can't be used for it"),
        ),
        Family.GENERIC: _Texts(
            title=_("Your bank declined the payment"),
            explanation=_("Your bank didn't approve the payment, and it didn't tell us why."),
            instruction=_(
                "Try the payment again. If it's declined again, your bank can tell you why, or "
                "you can use a different card."
            ),
            summary=_("your bank declined it"),
        ),
    }
)

# What a soft family says instead once the card must not be charged again (an advice code).
_DIFFERENT_CARD_INSTRUCTION = _(
    "Please add a different card. Your bank has asked us not to charge this card again."
)


def button_for(*, action: Action) -> Promise:
    """The words on the button that takes `action`, wherever it is shown."""
    return _BUTTONS[action]


def playbook_for(*, family: Family) -> Playbook:
    texts = _TEXTS[family]
    action = _ACTIONS[family]
    return Playbook(
        family=family,
        action=action,
        title=texts.title,
        explanation=texts.explanation,
        instruction=texts.instruction,
        button=_BUTTONS[action],
        summary=texts.summary,
        also_update_card=action is Action.PAY_NOW,
    )


def playbook_for_decline(*, decline: Decline) -> Playbook:
    """The family's playbook, but asking for another card whenever the decline is hard.

    Only an advice code makes a soft family hard; the reason stays true (the funds were short),
    the way out changes, so the title, explanation and summary stay and the rest is replaced."""
    playbook = playbook_for(family=decline.family)
    if decline.action is playbook.action:
        return playbook
    # Entering the same card again would only repeat a forbidden attempt; otherwise (the bank
    # wants the details confirmed) entering them again is exactly the fix.
    instruction: Promise
    if decline.network_forbids_retry:
        instruction = _DIFFERENT_CARD_INSTRUCTION
    else:
        instruction = _TEXTS[Family.WRONG_DETAILS].instruction
    return dataclasses.replace(
        playbook,
        action=decline.action,
        instruction=instruction,
        button=_BUTTONS[decline.action],
        also_update_card=False,
    )


# --------------------------------------------------------------------------- the guardrail

ATTEMPT_WINDOW = dt.timedelta(days=30)
MAX_ATTEMPTS_PER_CARD = 15

REFUSAL_NETWORK_FORBIDS_RETRY = "network_forbids_retry"
REFUSAL_ATTEMPT_LIMIT = "attempt_limit"


def retry_refusal(
    *,
    decline_codes_on_card: Sequence[str],
    attempts_in_window: int,
    max_attempts: int = MAX_ATTEMPTS_PER_CARD,
    advice_codes: Sequence[str] = (),
) -> str | None:
    """Why one more attempt on this card must not be made, or None (PRODUCT D11).

    `decline_codes_on_card` and `advice_codes` are every decline (ours and Stripe's retries) seen
    on the card; `attempts_in_window` counts its attempts in the last `ATTEMPT_WINDOW`.  A "do not
    retry" decline forbids retries for good, not just for the window: the networks never expire
    it.  A machine reason, not a sentence: for logs and counts, not for the customer."""
    if any(decline_for(code=code).network_forbids_retry for code in decline_codes_on_card) or any(
        _normal(advice) == ADVICE_DO_NOT_TRY_AGAIN for advice in advice_codes
    ):
        return REFUSAL_NETWORK_FORBIDS_RETRY
    # The networks charge from the 16th attempt: with 15 made, the next one would cost.
    if attempts_in_window >= max_attempts:
        return REFUSAL_ATTEMPT_LIMIT
    return None
