"""SetupIntents, PaymentIntents and charges: where test cards decline, ask for 3-D Secure,
or succeed. Invoices pay through PaymentIntents, so the outcome also reaches billing."""

from __future__ import annotations

from typing import Any

from ..errors import CardError, InvalidRequestError
from ..routing import ListResult, paginate, render, route, where
from ..shapes import blank
from ..state import State
from .catalog import merge_metadata
from .events import emit
from .payment_methods import (
    DECLINES,
    always_3ds,
    attach,
    card_of,
    charge_decline,
    expires_at,
    new_card,
    resolve,
)


def _check_secret(state: State, intent: dict[str, Any]) -> None:
    """A publishable key may only touch an intent whose client secret it presents."""
    ctx = state.context
    if ctx.publishable and ctx.client_secret != intent["client_secret"]:
        kind = "SetupIntent" if intent["object"] == "setup_intent" else "PaymentIntent"
        raise InvalidRequestError(
            f"The client_secret provided does not match the client_secret associated with the {kind}.",
            param="client_secret",
        )


def _payment_method_from(state: State, intent: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    if "payment_method_data" in params:
        data = params["payment_method_data"]
        if data.get("type") != "card":
            raise InvalidRequestError("The emulator supports card payment methods only.",
                                      param="payment_method_data[type]")
        card = data.get("card") or {}
        try:
            return new_card(state, number=str(card.get("number", "")), exp_month=int(card.get("exp_month", 0)),
                            exp_year=int(card.get("exp_year", 0)), cvc=card.get("cvc"),
                            billing_details=data.get("billing_details"), metadata=data.get("metadata"),
                            created=state.now_for(intent))
        except CardError as exc:
            exc.param = "payment_method_data[card][number]" if exc.code == "incorrect_number" else exc.param
            raise
    if params.get("payment_method"):
        return resolve(state, params["payment_method"])
    if intent.get("payment_method"):
        return state.find(intent["payment_method"])
    return None


def _three_ds_action(state: State, intent: dict[str, Any], return_url: str | None) -> dict[str, Any]:
    url = f"{state.settings.get('public_url', '')}/_emulator/3ds/{intent['id']}"
    if return_url:
        return {"type": "redirect_to_url", "redirect_to_url": {"url": url, "return_url": return_url}}
    return {"type": "use_stripe_sdk",
            "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": url, "source": intent["id"]}}


def _error_object(exc_code: str, decline_code: str | None, message: str, pm: dict[str, Any] | None,
                  state: State, kind: str = "card_error") -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": kind, "code": exc_code, "message": message,
        "doc_url": f"https://docs.stripe.com/error-codes/{exc_code.replace('_', '-')}",
        "payment_method": render(state, pm) if pm else None,
        "payment_method_type": "card" if pm else None,
    }
    if decline_code:
        error["decline_code"] = decline_code
        error["advice_code"] = DECLINES[decline_code].advice
    return error


def _decline_error(decline_code: str, pm: dict[str, Any], state: State) -> dict[str, Any]:
    """``last_payment_error`` / ``last_setup_error`` for a decline, as Stripe words it."""
    decline = DECLINES[decline_code]
    return _error_object(decline.code, decline_code, decline.message, pm, state)


# setup intents ------------------------------------------------------------------------


@route("POST", "/v1/setup_intents", params="SetupIntentCreateParams")
def create_setup_intent(state: State, params: dict[str, Any]) -> dict[str, Any]:
    customer = state.get("customer", params["customer"], param="customer") if params.get("customer") else None
    intent = blank("setup_intent")
    ident = state.new_id("seti")
    intent.update(
        id=ident,
        client_secret=f"{ident}_secret_{state.new_id('x', 32)[2:]}",
        created=state.now_for(customer) if customer else state.now(),
        customer=customer["id"] if customer else None,
        description=params.get("description"),
        metadata=params.get("metadata") or {},
        payment_method_types=params.get("allowed_payment_method_types") or ["card"],
        allowed_payment_method_types=params.get("allowed_payment_method_types"),
        usage=params.get("usage", "off_session"),
        status="requires_payment_method",
        _seq=next(state.counters),
    )
    if params.get("automatic_payment_methods"):
        intent["automatic_payment_methods"] = {"allow_redirects": "always", "enabled": True}
    state.add(intent)
    if params.get("payment_method"):
        intent["payment_method"] = resolve(state, params["payment_method"])["id"]
        intent["status"] = "requires_confirmation"
    emit(state, "setup_intent.created", intent)
    if params.get("confirm"):
        return _confirm_setup(state, intent, params)
    return intent


@route("GET", "/v1/setup_intents/{id}", params="SetupIntentRetrieveParams", publishable=True)
def retrieve_setup_intent(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    intent = state.get("setup_intent", id, label="setupintent")
    _check_secret(state, intent)
    return intent


@route("GET", "/v1/setup_intents", params="SetupIntentListParams")
def list_setup_intents(state: State, params: dict[str, Any]) -> ListResult:
    intents = where(state.all("setup_intent"), params, "customer", "payment_method")
    return paginate(intents, params, "/v1/setup_intents")


@route("POST", "/v1/setup_intents/{id}", params="SetupIntentUpdateParams")
def update_setup_intent(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    intent = state.get("setup_intent", id, label="setupintent")
    if "metadata" in params:
        intent["metadata"] = merge_metadata(intent["metadata"], params["metadata"])
    if "description" in params:
        intent["description"] = params["description"] or None
    if "customer" in params:
        intent["customer"] = state.get("customer", params["customer"], param="customer")["id"]
    return intent


@route("POST", "/v1/setup_intents/{id}/cancel", params="SetupIntentCancelParams")
def cancel_setup_intent(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    intent = state.get("setup_intent", id, label="setupintent")
    if intent["status"] in ("succeeded", "canceled"):
        raise InvalidRequestError(
            f"You cannot cancel this SetupIntent because it has a status of {intent['status']}.",
            code="setup_intent_unexpected_state",
        )
    intent.update(status="canceled", cancellation_reason=params.get("cancellation_reason"), next_action=None)
    emit(state, "setup_intent.canceled", intent)
    return intent


@route("POST", "/v1/setup_intents/{id}/confirm", params="SetupIntentConfirmParams", publishable=True)
def confirm_setup_intent(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    intent = state.get("setup_intent", id, label="setupintent")
    _check_secret(state, intent)
    return _confirm_setup(state, intent, params)


def _confirm_setup(state: State, intent: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    if intent["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise InvalidRequestError(
            f"You cannot confirm this SetupIntent because it has a status of {intent['status']}.",
            code="setup_intent_unexpected_state",
        )
    pm = _payment_method_from(state, intent, params)
    if pm is None:
        raise InvalidRequestError(
            "You cannot confirm this SetupIntent because it's missing a payment method.",
            code="setup_intent_unexpected_state",
        )
    intent["payment_method"] = pm["id"]
    intent["last_setup_error"] = None
    card = card_of(pm)
    now = state.now_for(intent)
    decline = "expired_card" if now > expires_at(pm) else card.setup_decline
    if decline:
        error = _decline_error(decline, pm, state)
        intent.update(status="requires_payment_method", payment_method=None, next_action=None,
                      last_setup_error=error)
        emit(state, "setup_intent.setup_failed", intent)
        raise CardError(error["message"], code=error["code"], decline_code=decline,
                        extra={"advice_code": error["advice_code"], "setup_intent": render(state, intent),
                               "payment_method": render(state, pm)})
    if card.setup_3ds and not pm.get("_setup_authenticated"):
        intent.update(status="requires_action", next_action=_three_ds_action(state, intent, params.get("return_url")))
        emit(state, "setup_intent.requires_action", intent)
        return intent
    return _setup_succeeded(state, intent, pm)


def _setup_succeeded(state: State, intent: dict[str, Any], pm: dict[str, Any]) -> dict[str, Any]:
    intent.update(status="succeeded", next_action=None, last_setup_error=None)
    if intent["usage"] == "off_session":
        pm["_setup_authenticated"] = True
    if intent["customer"]:
        attach(state, pm_id=pm["id"], customer=state.get("customer", intent["customer"]), checked=False)
    emit(state, "setup_intent.succeeded", intent)
    return intent


# payment intents ----------------------------------------------------------------------


def new_payment_intent(state: State, *, amount: int, currency: str, customer: str | None,
                       description: str | None = None, metadata: dict[str, Any] | None = None,
                       invoice: str | None = None, created: int) -> dict[str, Any]:
    intent = blank("payment_intent")
    ident = state.new_id("pi")
    intent.update(
        id=ident,
        amount=amount,
        currency=currency,
        customer=customer,
        client_secret=f"{ident}_secret_{state.new_id('x', 25)[2:]}",
        created=created,
        description=description,
        metadata=metadata or {},
        payment_method_types=["card"],
        status="requires_payment_method",
        _invoice=invoice,
        _seq=next(state.counters),
    )
    state.add(intent)
    emit(state, "payment_intent.created", intent)
    return intent


@route("POST", "/v1/payment_intents", params="PaymentIntentCreateParams")
def create_payment_intent(state: State, params: dict[str, Any]) -> dict[str, Any]:
    customer = state.get("customer", params["customer"], param="customer") if params.get("customer") else None
    if int(params["amount"]) < 50:
        raise InvalidRequestError("Amount must be at least 50 cents", code="amount_too_small", param="amount")
    intent = new_payment_intent(
        state, amount=int(params["amount"]), currency=params["currency"].lower(),
        customer=customer["id"] if customer else None, description=params.get("description"),
        metadata=params.get("metadata"), created=state.now_for(customer) if customer else state.now(),
    )
    intent["setup_future_usage"] = params.get("setup_future_usage")
    if params.get("payment_method"):
        intent["payment_method"] = resolve(state, params["payment_method"])["id"]
        intent["status"] = "requires_confirmation"
    if params.get("confirm"):
        return confirm(state, intent, params, off_session=bool(params.get("off_session")))
    return intent


@route("GET", "/v1/payment_intents/{id}", params="PaymentIntentRetrieveParams", publishable=True)
def retrieve_payment_intent(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    intent = state.get("payment_intent", id, label="payment_intent")
    _check_secret(state, intent)
    return intent


@route("GET", "/v1/payment_intents", params="PaymentIntentListParams")
def list_payment_intents(state: State, params: dict[str, Any]) -> ListResult:
    intents = where(state.all("payment_intent"), params, "customer")
    return paginate(intents, params, "/v1/payment_intents")


@route("POST", "/v1/payment_intents/{id}/confirm", params="PaymentIntentConfirmParams", publishable=True)
def confirm_payment_intent(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    intent = state.get("payment_intent", id, label="payment_intent")
    _check_secret(state, intent)
    return confirm(state, intent, params, off_session=bool(params.get("off_session")))


@route("POST", "/v1/payment_intents/{id}/cancel", params="PaymentIntentCancelParams")
def cancel_payment_intent(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    intent = state.get("payment_intent", id, label="payment_intent")
    if intent.get("_invoice"):
        raise InvalidRequestError(
            "You cannot cancel this PaymentIntent because it was created by an invoice.",
            code="payment_intent_unexpected_state",
        )
    if intent["status"] in ("succeeded", "canceled"):
        raise InvalidRequestError(
            f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
            code="payment_intent_unexpected_state",
        )
    intent.update(status="canceled", canceled_at=state.now_for(intent),
                  cancellation_reason=params.get("cancellation_reason"), next_action=None)
    emit(state, "payment_intent.canceled", intent)
    return intent


def confirm(state: State, intent: dict[str, Any], params: dict[str, Any], *, off_session: bool) -> dict[str, Any]:
    """Confirm with the API's semantics: a decline is a 402 carrying the intent."""
    if intent["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise InvalidRequestError(
            f"This PaymentIntent's status is {intent['status']}, so it cannot be confirmed.",
            code="payment_intent_unexpected_state",
        )
    pm = _payment_method_from(state, intent, params)
    if pm is None:
        raise InvalidRequestError(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
        )
    if params.get("setup_future_usage"):
        intent["setup_future_usage"] = params["setup_future_usage"]
    charge_with(state, intent, pm, off_session=off_session, return_url=params.get("return_url"))
    if intent["status"] == "requires_payment_method":
        error = intent["last_payment_error"]
        extra = {"payment_intent": render(state, intent), "payment_method": render(state, pm),
                 "charge": intent["latest_charge"]}
        if "advice_code" in error:
            extra["advice_code"] = error["advice_code"]
        raise CardError(error["message"], code=error["code"], decline_code=error.get("decline_code"), extra=extra)
    return intent


def charge_with(state: State, intent: dict[str, Any], pm: dict[str, Any], *, off_session: bool,
                return_url: str | None = None, authenticated: bool = False) -> str:
    """Try to collect ``intent`` with ``pm``; returns "succeeded", "requires_action" or "failed"."""
    intent["payment_method"] = pm["id"]
    intent["last_payment_error"] = None
    intent["next_action"] = None
    now = state.now_for(intent)
    card = card_of(pm)
    decline = charge_decline(pm, now)
    if decline is None and not authenticated and (
            always_3ds(pm) or (card.setup_3ds and not (off_session and pm.get("_setup_authenticated")))):
        if off_session and not intent.get("_invoice"):
            decline = "authentication_required"
        else:
            # An invoice's payment waits for the customer to authenticate (Stripe Billing's
            # behaviour); off-session the issuer declined it (a failed charge), which counts as
            # a failed attempt.
            intent.update(status="requires_action", next_action=_three_ds_action(state, intent, return_url))
            if off_session:
                charge = _new_charge(state, intent, pm, "authentication_required")
                intent["latest_charge"] = charge["id"]
                intent["last_payment_error"] = _decline_error("authentication_required", pm, state)
                intent["last_payment_error"]["charge"] = charge["id"]
                emit(state, "charge.failed", charge)
                emit(state, "payment_intent.requires_action", intent)
                _billing().payment_failed(state, intent=intent, off_session=True)
            else:
                emit(state, "payment_intent.requires_action", intent)
                _billing().payment_requires_action(state, intent=intent)
            return "requires_action"
    charge = _new_charge(state, intent, pm, decline)
    intent["latest_charge"] = charge["id"]
    if decline is None:
        intent.update(status="succeeded", amount_received=intent["amount"])
        if intent.get("setup_future_usage") and intent["customer"] and pm["customer"] is None:
            attach(state, pm_id=pm["id"], customer=state.get("customer", intent["customer"]), checked=False)
        emit(state, "charge.succeeded", charge)
        emit(state, "payment_intent.succeeded", intent)
        _billing().payment_succeeded(state, intent=intent)
        return "succeeded"
    error = _decline_error(decline, pm, state)
    error["charge"] = charge["id"]
    intent.update(status="requires_payment_method", last_payment_error=error)
    emit(state, "charge.failed", charge)
    emit(state, "payment_intent.payment_failed", intent)
    _billing().payment_failed(state, intent=intent, off_session=off_session)
    return "failed"


def _billing() -> Any:
    from .. import billing

    return billing


def _new_charge(state: State, intent: dict[str, Any], pm: dict[str, Any], decline: str | None) -> dict[str, Any]:
    charge = blank("charge")
    ok = decline is None
    failure = DECLINES[decline] if decline else None
    # Radar's block of a test card that always is: not sent to the issuer.
    blocked = decline == "fraudulent" and card_of(pm).radar_block and not pm.get("_decline")
    card = pm["card"]
    charge.update(
        id=state.new_id("ch"),
        amount=intent["amount"],
        amount_captured=intent["amount"] if ok else 0,
        captured=ok,
        paid=ok,
        status="succeeded" if ok else "failed",
        created=state.now_for(intent),
        currency=intent["currency"],
        customer=intent["customer"],
        description=intent["description"],
        failure_code=failure.code if failure else None,
        failure_message=failure.message if failure else None,
        payment_intent=intent["id"],
        payment_method=pm["id"],
        billing_details=pm["billing_details"],
        outcome=_outcome(decline, blocked=blocked),
        receipt_url=f"{state.settings.get('public_url', '')}/_emulator/receipts/{intent['id']}",
        _seq=next(state.counters),
    )
    details = charge["payment_method_details"]["card"]
    details.update(brand=card["brand"], country=card["country"], exp_month=card["exp_month"],
                   exp_year=card["exp_year"], fingerprint=card["fingerprint"], funding=card["funding"],
                   last4=card["last4"], network=card["brand"], amount_authorized=intent["amount"] if ok else None)
    return state.add(charge)


def _outcome(decline: str | None, *, blocked: bool) -> dict[str, Any]:
    """A charge's ``outcome``: its ``reason`` is the decline code, its ``advice_code`` the
    decline's advice (``DECLINES``)."""
    outcome: dict[str, Any] = {
        "advice_code": None, "network_advice_code": None, "network_decline_code": None,
        "network_status": "approved_by_network", "reason": None, "risk_level": "normal", "risk_score": 20,
        "rule": None, "seller_message": "Payment complete.", "type": "authorized",
    }
    if blocked:
        outcome.update(advice_code=DECLINES["fraudulent"].advice, network_status="not_sent_to_network",
                       reason="highest_risk_level", risk_level="highest", risk_score=95,
                       seller_message="Stripe blocked this payment as too risky.", type="blocked")
    elif decline is not None:
        outcome.update(advice_code=DECLINES[decline].advice, network_status="declined_by_network", reason=decline,
                       seller_message="The bank did not return any further details with this decline.",
                       type="issuer_declined")
    return outcome


@route("GET", "/v1/charges/{id}", params="ChargeRetrieveParams")
def retrieve_charge(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("charge", id)


@route("GET", "/v1/charges", params="ChargeListParams")
def list_charges(state: State, params: dict[str, Any]) -> ListResult:
    charges = where(state.all("charge"), params, "customer", "payment_intent")
    return paginate(charges, params, "/v1/charges")


# 3-D Secure ---------------------------------------------------------------------------


def complete_authentication(state: State, *, intent_id: str, approved: bool) -> dict[str, Any]:
    """The customer answered the 3-D Secure challenge for a Setup- or PaymentIntent."""
    intent = state.find(intent_id)
    if intent is None or intent.get("object") not in ("setup_intent", "payment_intent"):
        raise InvalidRequestError(f"No such intent: '{intent_id}'", code="resource_missing", status=404)
    if intent["status"] != "requires_action":
        raise InvalidRequestError(
            f"This intent is {intent['status']}; there is no authentication to complete.",
            code=f"{intent['object']}_unexpected_state",
        )
    pm = state.get("payment_method", intent["payment_method"], label="PaymentMethod")
    if intent["object"] == "setup_intent":
        if approved:
            return _setup_succeeded(state, intent, pm)
        message = ("The latest attempt to set up the payment method has failed because authentication failed.")
        intent.update(status="requires_payment_method", payment_method=None, next_action=None,
                      last_setup_error=_error_object("setup_intent_authentication_failure", None, message, pm, state,
                                                     kind="invalid_request_error"))
        emit(state, "setup_intent.setup_failed", intent)
        return intent
    if approved:
        charge_with(state, intent, pm, off_session=False, authenticated=True)
        return intent
    message = ("The provided PaymentMethod has failed authentication. You can provide payment_method_data or a "
               "new PaymentMethod to attempt to fulfill this PaymentIntent again.")
    intent.update(status="requires_payment_method", next_action=None,
                  last_payment_error=_error_object("payment_intent_authentication_failure", None, message, pm,
                                                   state, kind="invalid_request_error"))
    emit(state, "payment_intent.payment_failed", intent)
    _billing().payment_failed(state, intent=intent, off_session=False)
    return intent


