"""Payment methods and Stripe's test cards, with the behaviour Stripe gives them."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from ..errors import CardError, InvalidRequestError
from ..routing import ListResult, paginate, render, route, where
from ..shapes import blank
from ..state import State
from .catalog import merge_metadata
from .events import emit, render_before


@dataclass(frozen=True)
class Card:
    brand: str
    #: decline code when the card is attached or set up (Stripe checks the card then).
    setup_decline: str | None = None
    #: decline code on every charge.
    charge_decline: str | None = None
    #: 3-D Secure on SetupIntents; afterwards off-session charges pass.
    setup_3ds: bool = False
    #: 3-D Secure on every payment, off-session ones fail with authentication_required.
    always_3ds: bool = False
    #: Radar blocks every charge (outcome ``blocked``, never sent to the issuer).
    radar_block: bool = False
    funding: str = "credit"
    country: str = "US"


CARDS: dict[str, Card] = {
    "4242424242424242": Card("visa"),
    "4000056655665556": Card("visa", funding="debit"),
    "5555555555554444": Card("mastercard"),
    "2223003122003222": Card("mastercard"),
    "378282246310005": Card("amex"),
    "4000000000000341": Card("visa", charge_decline="generic_decline"),
    "4000000000000002": Card("visa", setup_decline="generic_decline", charge_decline="generic_decline"),
    "4000000000009995": Card("visa", setup_decline="insufficient_funds", charge_decline="insufficient_funds"),
    "4000000000009987": Card("visa", setup_decline="lost_card", charge_decline="lost_card"),
    "4000000000009979": Card("visa", setup_decline="stolen_card", charge_decline="stolen_card"),
    "4000000000000069": Card("visa", setup_decline="expired_card", charge_decline="expired_card"),
    "4000000000000127": Card("visa", setup_decline="incorrect_cvc", charge_decline="incorrect_cvc"),
    "4000000000000119": Card("visa", setup_decline="processing_error", charge_decline="processing_error"),
    "4000000000006975": Card("visa", setup_decline="card_velocity_exceeded", charge_decline="card_velocity_exceeded"),
    "4100000000000019": Card("visa", charge_decline="fraudulent", radar_block=True),
    "4000002500003155": Card("visa", setup_3ds=True),
    "4000002760003184": Card("visa", setup_3ds=True, always_3ds=True),
    "4000003800000446": Card("visa", setup_3ds=True),
}

TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "pm_card_radarBlock": "4100000000000019",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredSetupForOffSession": "4000002500003155",
}

@dataclass(frozen=True)
class Decline:
    """What Stripe answers for a decline code: the error ``code`` (``card_declined`` unless Stripe
    has a code of its own for the reason), the ``message`` shown to the customer, and the
    ``advice`` (``outcome.advice_code``, ``last_payment_error.advice_code``): ``do_not_try_again``
    when the issuer will never approve this card, ``try_again_later`` when a later retry may pass,
    ``confirm_card_data`` when the customer must correct or replace the card's details, None when
    the issuer gives no advice."""

    code: str
    message: str
    advice: str | None


_DECLINED = "Your card was declined."
_NEVER, _LATER, _DETAILS = "do_not_try_again", "try_again_later", "confirm_card_data"

#: Every card decline code Stripe documents (docs.stripe.com/declines/codes).
DECLINES: dict[str, Decline] = {
    "approve_with_id": Decline("card_declined", _DECLINED, _LATER),
    "authentication_required": Decline(
        "authentication_required", "Your card was declined. This transaction requires authentication.", None),
    "authentication_not_handled": Decline("card_declined", _DECLINED, None),
    "call_issuer": Decline("card_declined", _DECLINED, None),
    "card_not_supported": Decline("card_declined", "Your card does not support this type of purchase.", _NEVER),
    "card_velocity_exceeded": Decline(
        "card_declined", "Your card was declined for making repeated attempts too frequently or exceeding its "
        "amount limit.", _LATER),
    "currency_not_supported": Decline("card_declined", "Your card does not support this currency.", _NEVER),
    "do_not_honor": Decline("card_declined", _DECLINED, None),
    "do_not_try_again": Decline("card_declined", _DECLINED, _NEVER),
    "duplicate_transaction": Decline("card_declined", _DECLINED, None),
    "expired_card": Decline("expired_card", "Your card has expired.", _DETAILS),
    "fraudulent": Decline("card_declined", _DECLINED, _NEVER),
    "generic_decline": Decline("card_declined", _DECLINED, None),
    "incorrect_cvc": Decline("incorrect_cvc", "Your card's security code is incorrect.", _DETAILS),
    "incorrect_number": Decline("incorrect_number", "Your card number is incorrect.", _DETAILS),
    "incorrect_pin": Decline("card_declined", "Your card's PIN is incorrect.", _DETAILS),
    "incorrect_address": Decline("incorrect_address", "Your card's address is incorrect.", _DETAILS),
    "incorrect_zip": Decline("incorrect_zip", "Your card's postal code is incorrect.", _DETAILS),
    "insufficient_funds": Decline("card_declined", "Your card has insufficient funds.", _LATER),
    "invalid_account": Decline("card_declined", _DECLINED, _NEVER),
    "invalid_amount": Decline("card_declined", _DECLINED, None),
    "invalid_cvc": Decline("invalid_cvc", "Your card's security code is invalid.", _DETAILS),
    "invalid_expiry_month": Decline("invalid_expiry_month", "Your card's expiration month is invalid.", _DETAILS),
    "invalid_expiry_year": Decline("invalid_expiry_year", "Your card's expiration year is invalid.", _DETAILS),
    "invalid_number": Decline("invalid_number", "Your card number is invalid.", _DETAILS),
    "invalid_pin": Decline("card_declined", "Your card's PIN is invalid.", _DETAILS),
    "issuer_not_available": Decline("card_declined", _DECLINED, _LATER),
    "lost_card": Decline("card_declined", _DECLINED, _NEVER),
    "merchant_blacklist": Decline("card_declined", _DECLINED, _NEVER),
    "mobile_device_authentication_required": Decline("card_declined", _DECLINED, None),
    "new_account_information_available": Decline("card_declined", _DECLINED, _DETAILS),
    "no_action_taken": Decline("card_declined", _DECLINED, None),
    "not_permitted": Decline("card_declined", _DECLINED, _NEVER),
    "offline_pin_required": Decline("card_declined", _DECLINED, _DETAILS),
    "online_or_offline_pin_required": Decline("card_declined", _DECLINED, _DETAILS),
    "pickup_card": Decline("card_declined", _DECLINED, _NEVER),
    "pin_try_exceeded": Decline("card_declined", _DECLINED, _NEVER),
    "processing_error": Decline(
        "processing_error", "An error occurred while processing your card. Try again in a little bit.", _LATER),
    "reenter_transaction": Decline("card_declined", _DECLINED, _LATER),
    "restricted_card": Decline("card_declined", _DECLINED, _NEVER),
    "revocation_of_all_authorizations": Decline("card_declined", _DECLINED, _NEVER),
    "revocation_of_authorization": Decline("card_declined", _DECLINED, _NEVER),
    "security_violation": Decline("card_declined", _DECLINED, _NEVER),
    "service_not_allowed": Decline("card_declined", _DECLINED, _NEVER),
    "stolen_card": Decline("card_declined", _DECLINED, _NEVER),
    "stop_payment_order": Decline("card_declined", _DECLINED, _NEVER),
    "testmode_decline": Decline(
        "card_declined", "Your card was declined. Your request was in live mode, but used a known test card.",
        _NEVER),
    "transaction_not_allowed": Decline("card_declined", _DECLINED, _NEVER),
    "try_again_later": Decline("card_declined", _DECLINED, _LATER),
    "withdrawal_count_limit_exceeded": Decline("card_declined", _DECLINED, _LATER),
}


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number]
    checksum = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        checksum += digit
    return checksum % 10 == 0


def _brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"34", "37"}:
        return "amex"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    return "unknown"


def card_of(pm: dict[str, Any]) -> Card:
    return CARDS.get(pm.get("_number", ""), Card(pm["card"]["brand"]))


def decline_error(decline_code: str, **extra: Any) -> CardError:
    decline = DECLINES[decline_code]
    return CardError(decline.message, code=decline.code, decline_code=decline_code,
                     extra={"advice_code": decline.advice, **extra})


def charge_decline(pm: dict[str, Any], now: int) -> str | None:
    """The decline code a charge on ``pm`` gets at ``now`` before any 3-D Secure: an expired card,
    a card told to decline (``/_emulator/payment_methods/{id}/decline``), or a declining test card."""
    if now > expires_at(pm):
        return "expired_card"
    told = pm.get("_decline")
    if told is not None and told != "authentication_required":
        return str(told)
    return card_of(pm).charge_decline


def always_3ds(pm: dict[str, Any]) -> bool:
    """Every payment asks for 3-D Secure (off-session ones fail with authentication_required)."""
    return card_of(pm).always_3ds or pm.get("_decline") == "authentication_required"


def set_decline(state: State, *, pm_id: str, decline_code: str | None) -> dict[str, Any]:
    """From now on charges on the card decline with ``decline_code`` (None: they pass again)."""
    pm = state.get("payment_method", pm_id, label="PaymentMethod")
    if decline_code is not None and decline_code not in DECLINES:
        raise InvalidRequestError(f"Unknown decline_code {decline_code!r}; Stripe documents: "
                                  f"{', '.join(sorted(DECLINES))}.", param="decline_code")
    pm["_decline"] = decline_code
    return pm


def expires_at(pm: dict[str, Any]) -> int:
    """The last second of the card's expiry month, when charges start failing."""
    year, month = int(pm["card"]["exp_year"]), int(pm["card"]["exp_month"])
    last_day = calendar.monthrange(year, month)[1]
    return int(dt.datetime(year, month, last_day, 23, 59, 59, tzinfo=dt.UTC).timestamp())


def new_card(state: State, *, number: str, exp_month: int, exp_year: int, cvc: str | None,
             billing_details: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
             created: int | None = None) -> dict[str, Any]:
    number = number.replace(" ", "")
    if not number.isdigit() or not 13 <= len(number) <= 19 or not luhn_ok(number):
        raise CardError("Your card number is incorrect.", code="incorrect_number", param="card[number]")
    if not 1 <= exp_month <= 12:
        raise CardError("Your card's expiration month is invalid.", code="invalid_expiry_month",
                        param="card[exp_month]")
    if exp_year < 100:
        exp_year += 2000
    card = CARDS.get(number, Card(_brand(number)))
    pm = blank("payment_method")
    details: dict[str, Any] = {"address": {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None,
                           "state": None}, "email": None, "name": None, "phone": None, "tax_id": None}
    for key, value in (billing_details or {}).items():
        if key == "address" and isinstance(value, dict):
            details["address"].update(value)
        elif key in details:
            details[key] = value or None
    pm["billing_details"] = details
    pm["card"].update(
        brand=card.brand,
        display_brand=card.brand,
        country=card.country,
        exp_month=exp_month,
        exp_year=exp_year,
        funding=card.funding,
        last4=number[-4:],
        fingerprint=hashlib.sha256(number.encode()).hexdigest()[:16],
    )
    pm["card"]["checks"] = {"address_line1_check": None, "address_postal_code_check": None,
                            "cvc_check": "unchecked" if cvc else None}
    pm["card"]["networks"] = {"available": [card.brand], "preferred": None}
    pm.update(
        id=state.new_id("pm"),
        created=created if created is not None else state.now(),
        customer=None,
        type="card",
        metadata=metadata or {},
        _number=number,
        _setup_authenticated=False,
        _seq=next(state.counters),
    )
    return state.add(pm)


def resolve(state: State, pm_id: str, *, param: str = "payment_method") -> dict[str, Any]:
    """A payment method by id; a test id such as ``pm_card_visa`` makes a new card, as at Stripe."""
    number = TEST_PAYMENT_METHODS.get(pm_id)
    if number is not None:
        year = dt.datetime.now(dt.UTC).year + 1
        return new_card(state, number=number, exp_month=12, exp_year=year, cvc="123")
    return state.get("payment_method", pm_id, param=param, label="PaymentMethod")


def attach(state: State, *, pm_id: str, customer: dict[str, Any], param: str = "payment_method",
           checked: bool = True) -> dict[str, Any]:
    """Attach (Stripe validates the card with the issuer, so a declining card fails here)."""
    pm = resolve(state, pm_id, param=param)
    if pm["customer"] == customer["id"]:
        return pm
    if pm["customer"] is not None:
        raise InvalidRequestError(
            "The payment method you provided has already been attached to a customer.", param=param
        )
    if pm.get("_detached"):
        raise InvalidRequestError(
            "This PaymentMethod was previously used without being attached to a Customer or was detached "
            "from a Customer, and may not be used again.", param=param,
        )
    card = card_of(pm)
    if checked and card.setup_decline:
        raise decline_error(card.setup_decline, payment_method=render(state, pm))
    pm["customer"] = customer["id"]
    pm["created"] = state.now_for(customer) if customer.get("test_clock") else pm["created"]
    emit(state, "payment_method.attached", pm)
    return pm


def detach(state: State, pm: dict[str, Any]) -> dict[str, Any]:
    customer_id = pm["customer"]
    before = render_before(state, pm)
    pm["customer"] = None
    pm["_detached"] = True
    customer = state.find(customer_id)
    if customer and customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        before_customer = render_before(state, customer)
        customer["invoice_settings"]["default_payment_method"] = None
        emit(state, "customer.updated", customer, previous=before_customer)
    for sub in state.all("subscription"):
        if sub["default_payment_method"] == pm["id"]:
            before_sub = render_before(state, sub)
            sub["default_payment_method"] = None
            emit(state, "customer.subscription.updated", sub, previous=before_sub)
    emit(state, "payment_method.detached", pm, previous=before)
    return pm


def automatically_update(state: State, *, pm_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The card account updater: new expiry (and maybe number) from the issuer."""
    pm = state.get("payment_method", pm_id, label="PaymentMethod")
    before = render_before(state, pm)
    for key in ("exp_month", "exp_year"):
        if key in changes:
            pm["card"][key] = int(changes[key])
    if "last4" in changes:
        pm["card"]["last4"] = str(changes["last4"])
    emit(state, "payment_method.automatically_updated", pm, previous=before)
    return pm


# routes -----------------------------------------------------------------------------


@route("POST", "/v1/payment_methods", params="PaymentMethodCreateParams", publishable=True)
def create_payment_method(state: State, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("type") != "card":
        raise InvalidRequestError("The emulator supports card payment methods only.", param="type")
    card = params.get("card") or {}
    if "token" in card or not card.get("number"):
        raise InvalidRequestError("Missing required param: card[number].", code="parameter_missing",
                                  param="card[number]")
    for key in ("exp_month", "exp_year"):
        if key not in card:
            raise InvalidRequestError(f"Missing required param: card[{key}].", code="parameter_missing",
                                      param=f"card[{key}]")
    return new_card(state, number=card["number"], exp_month=int(card["exp_month"]), exp_year=int(card["exp_year"]),
                    cvc=card.get("cvc"), billing_details=params.get("billing_details"),
                    metadata=params.get("metadata"))


@route("GET", "/v1/payment_methods/{id}", params="PaymentMethodRetrieveParams")
def retrieve_payment_method(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("payment_method", id, label="PaymentMethod")


@route("GET", "/v1/payment_methods", params="PaymentMethodListParams")
def list_payment_methods(state: State, params: dict[str, Any]) -> ListResult:
    pms = state.all("payment_method")
    if "customer" in params:
        state.get("customer", params["customer"], param="customer")
        pms = [p for p in pms if p["customer"] == params["customer"]]
    else:
        pms = [p for p in pms if p["customer"] is not None]
    pms = where(pms, params, "type")
    return paginate(pms, params, "/v1/payment_methods")


@route("POST", "/v1/payment_methods/{id}", params="PaymentMethodUpdateParams")
def update_payment_method(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    pm = state.get("payment_method", id, label="PaymentMethod")
    before = render_before(state, pm)
    if "metadata" in params:
        pm["metadata"] = merge_metadata(pm["metadata"], params["metadata"])
    card = params.get("card") or {}
    for key in ("exp_month", "exp_year"):
        if key in card:
            pm["card"][key] = int(card[key])
    if "billing_details" in params:
        for key, value in params["billing_details"].items():
            if key == "address" and isinstance(value, dict):
                pm["billing_details"]["address"].update(value)
            else:
                pm["billing_details"][key] = value or None
    if "allow_redisplay" in params:
        pm["allow_redisplay"] = params["allow_redisplay"]
    emit(state, "payment_method.updated", pm, previous=before)
    return pm


@route("POST", "/v1/payment_methods/{id}/attach", params="PaymentMethodAttachParams")
def attach_payment_method(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    customer = state.get("customer", params.get("customer"), param="customer")
    return attach(state, pm_id=id, customer=customer, param="payment_method")


@route("POST", "/v1/payment_methods/{id}/detach", params="PaymentMethodDetachParams")
def detach_payment_method(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    pm = state.get("payment_method", id, label="PaymentMethod")
    if pm["customer"] is None:
        raise InvalidRequestError("The payment method you provided is not attached to a customer so detachment "
                                  "is impossible.")
    return detach(state, pm)
