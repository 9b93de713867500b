"""The only module that imports `stripe`.

Every call goes through one `StripeClient` with the pinned API version, a timeout and
network retries; writes carry an idempotency key chosen by the caller (derived from a
BillingChange's id).  Answers come back as plain dicts; Stripe's exceptions come back as
the project's own (billing.errors).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import stripe
from django.conf import settings

from billing.errors import (
    ActionRequired,
    BillingError,
    CardDeclined,
    InvalidRequest,
    StripeUnavailable,
    WebhookRejected,
)

API_VERSION: str = stripe.api_version

StripeDict = dict[str, Any]
T = TypeVar("T")


@functools.lru_cache(maxsize=8)
def _client_for(api_key: str, api_base: str, timeout: float, retries: int) -> stripe.StripeClient:
    base_addresses: dict[str, str] = {}
    if api_base:
        # The emulator serves the API and files from one origin.
        base_addresses = {"api": api_base, "files": api_base}
    return stripe.StripeClient(
        api_key,
        stripe_version=API_VERSION,
        base_addresses=base_addresses,  # type: ignore[arg-type]
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def client() -> stripe.StripeClient:
    return _client_for(
        settings.STRIPE_API_KEY,
        settings.STRIPE_API_BASE,
        float(settings.STRIPE_TIMEOUT_SECONDS),
        int(settings.STRIPE_MAX_NETWORK_RETRIES),
    )


def _plain(obj: Any) -> StripeDict:
    result: StripeDict = obj.to_dict()
    return result


def _translated(call: Callable[[], T]) -> T:
    """Run one Stripe call, turning Stripe's exceptions into billing.errors."""
    try:
        return call()
    except stripe.CardError as exc:
        err = exc.error
        code = (err.code if err else None) or exc.code or "card_declined"
        intent = getattr(err, "payment_intent", None) if err else None
        if intent is None and err is not None:
            intent = getattr(err, "setup_intent", None)
        if code in ("invoice_payment_intent_requires_action", "authentication_required") and intent:
            raise ActionRequired(
                exc.user_message or str(exc), client_secret=intent["client_secret"], intent_id=intent["id"]
            ) from exc
        decline_code = (getattr(err, "decline_code", None) if err else None) or ""
        raise CardDeclined(exc.user_message or str(exc), code=code, decline_code=decline_code) from exc
    except stripe.RateLimitError as exc:
        raise StripeUnavailable(str(exc), code="rate_limited") from exc
    except stripe.APIConnectionError as exc:
        raise StripeUnavailable(str(exc), code="connection_error") from exc
    except stripe.InvalidRequestError as exc:
        raise InvalidRequest(exc.user_message or str(exc), code=exc.code or "invalid_request") from exc
    except stripe.APIError as exc:
        raise StripeUnavailable(str(exc), code="api_error") from exc
    except stripe.StripeError as exc:
        status = exc.http_status or 0
        if status >= 500 or status in (409, 429):
            raise StripeUnavailable(str(exc), code=exc.code or "api_error") from exc
        raise BillingError(exc.user_message or str(exc), code=exc.code or "stripe_error") from exc


def _options(idempotency_key: str | None) -> stripe.RequestOptions:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


# --------------------------------------------------------------------------- customers


def customer_create(
    *, email: str, name: str, language: str, metadata: dict[str, str], idempotency_key: str
) -> StripeDict:
    params: stripe.params.CustomerCreateParams = {
        "email": email,
        "name": name,
        "preferred_locales": [language],
        "metadata": metadata,
    }
    return _plain(
        _translated(lambda: client().v1.customers.create(params=params, options=_options(idempotency_key)))
    )


def customer_retrieve(*, customer_id: str) -> StripeDict:
    return _plain(_translated(lambda: client().v1.customers.retrieve(customer_id)))


def customer_set_default_payment_method(
    *, customer_id: str, payment_method_id: str, idempotency_key: str
) -> StripeDict:
    params: stripe.params.CustomerUpdateParams = {
        "invoice_settings": {"default_payment_method": payment_method_id}
    }
    return _plain(
        _translated(
            lambda: client().v1.customers.update(
                customer_id, params=params, options=_options(idempotency_key)
            )
        )
    )


def customer_update_metadata(
    *, customer_id: str, metadata: dict[str, str], idempotency_key: str
) -> StripeDict:
    params: stripe.params.CustomerUpdateParams = {"metadata": metadata}
    return _plain(
        _translated(
            lambda: client().v1.customers.update(
                customer_id, params=params, options=_options(idempotency_key)
            )
        )
    )


# --------------------------------------------------------------------------- cards


def setup_intent_create(*, customer_id: str, idempotency_key: str) -> StripeDict:
    params: stripe.params.SetupIntentCreateParams = {
        "customer": customer_id,
        "usage": "off_session",
        "allowed_payment_method_types": ["card"],
    }
    return _plain(
        _translated(
            lambda: client().v1.setup_intents.create(params=params, options=_options(idempotency_key))
        )
    )


def setup_intent_retrieve(*, setup_intent_id: str) -> StripeDict:
    return _plain(_translated(lambda: client().v1.setup_intents.retrieve(setup_intent_id)))


def payment_method_retrieve(*, payment_method_id: str) -> StripeDict:
    return _plain(_translated(lambda: client().v1.payment_methods.retrieve(payment_method_id)))


def payment_method_detach(*, payment_method_id: str, idempotency_key: str) -> StripeDict:
    return _plain(
        _translated(
            lambda: client().v1.payment_methods.detach(payment_method_id, options=_options(idempotency_key))
        )
    )


def payment_methods_list(*, customer_id: str) -> Iterator[StripeDict]:
    params: stripe.params.CustomerPaymentMethodListParams = {"type": "card", "limit": 100}
    page = _translated(lambda: client().v1.customers.payment_methods.list(customer_id, params=params))
    for pm in page.auto_paging_iter():
        yield _plain(pm)


# --------------------------------------------------------------------------- subscriptions


def subscription_retrieve(*, subscription_id: str) -> StripeDict:
    return _plain(_translated(lambda: client().v1.subscriptions.retrieve(subscription_id)))


def subscription_set_default_payment_method(
    *, subscription_id: str, payment_method_id: str, idempotency_key: str
) -> StripeDict:
    params: stripe.params.SubscriptionUpdateParams = {"default_payment_method": payment_method_id}
    return _plain(
        _translated(
            lambda: client().v1.subscriptions.update(
                subscription_id, params=params, options=_options(idempotency_key)
            )
        )
    )


def subscriptions_list(*, customer_id: str) -> Iterator[StripeDict]:
    params: stripe.params.SubscriptionListParams = {"customer": customer_id, "status": "all", "limit": 100}
    page = _translated(lambda: client().v1.subscriptions.list(params=params))
    for sub in page.auto_paging_iter():
        yield _plain(sub)


# --------------------------------------------------------------------------- invoices


def invoice_retrieve(*, invoice_id: str) -> StripeDict:
    return _plain(_translated(lambda: client().v1.invoices.retrieve(invoice_id)))


def invoice_pay(*, invoice_id: str, payment_method_id: str, idempotency_key: str) -> StripeDict:
    # on-session: the customer is on the page, so the bank may ask for 3-D Secure and they can answer.
    params: stripe.params.InvoicePayParams = {"payment_method": payment_method_id, "off_session": False}
    return _plain(
        _translated(
            lambda: client().v1.invoices.pay(invoice_id, params=params, options=_options(idempotency_key))
        )
    )


def invoices_list(*, customer_id: str, limit: int = 100) -> Iterator[StripeDict]:
    params: stripe.params.InvoiceListParams = {"customer": customer_id, "limit": min(limit, 100)}
    page = _translated(lambda: client().v1.invoices.list(params=params))
    for count, invoice in enumerate(page.auto_paging_iter()):
        if count >= limit:
            return
        yield _plain(invoice)


# --------------------------------------------------------------------------- catalog


def products_search_by_metadata_key(*, catalog_key: str) -> StripeDict | None:
    params: stripe.params.ProductListParams = {"limit": 100}
    page = _translated(lambda: client().v1.products.list(params=params))
    for product in page.auto_paging_iter():
        found = _plain(product)
        if (found.get("metadata") or {}).get("catalog_key") == catalog_key:
            return found
    return None


def product_create(*, name: str, catalog_key: str, idempotency_key: str) -> StripeDict:
    params: stripe.params.ProductCreateParams = {"name": name, "metadata": {"catalog_key": catalog_key}}
    return _plain(
        _translated(lambda: client().v1.products.create(params=params, options=_options(idempotency_key)))
    )


def price_by_lookup_key(*, lookup_key: str) -> StripeDict | None:
    params: stripe.params.PriceListParams = {"lookup_keys": [lookup_key], "active": True, "limit": 1}
    page = _translated(lambda: client().v1.prices.list(params=params))
    return _plain(page.data[0]) if page.data else None


def price_create(
    *,
    product_id: str,
    currency: str,
    unit_amount: int,
    interval: str,
    interval_count: int,
    lookup_key: str,
    idempotency_key: str,
) -> StripeDict:
    params: stripe.params.PriceCreateParams = {
        "product": product_id,
        "currency": currency,
        "unit_amount": unit_amount,
        "recurring": {"interval": interval, "interval_count": interval_count},
        "lookup_key": lookup_key,
        # A changed amount is a new price; the key moves to it and the old one is archived.
        "transfer_lookup_key": True,
    }
    return _plain(
        _translated(lambda: client().v1.prices.create(params=params, options=_options(idempotency_key)))
    )


def price_archive(*, price_id: str) -> StripeDict:
    params: stripe.params.PriceUpdateParams = {"active": False}
    return _plain(_translated(lambda: client().v1.prices.update(price_id, params=params)))


# --------------------------------------------------------------------------- webhooks


def verified_event(*, payload: bytes, signature: str, secret: str, tolerance: int) -> StripeDict:
    """The event in a webhook request, or WebhookRejected if it is forged, stale, malformed or of
    an API version other than ours (answered non-2xx, so Stripe sends it again)."""
    if not secret:
        raise WebhookRejected("No webhook secret is configured.", code="not_configured")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, secret, tolerance)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise WebhookRejected("Signature verification failed.", code="bad_signature") from exc
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise WebhookRejected("The body is not JSON.", code="malformed") from exc
    if (
        not isinstance(event, dict)
        or event.get("object") != "event"
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance((event.get("data") or {}).get("object"), dict)
        or not isinstance(event.get("created"), int)
    ):
        raise WebhookRejected("The body is not a Stripe event.", code="malformed")
    if event.get("api_version") != API_VERSION:
        raise WebhookRejected(
            f"Event API version {event.get('api_version')!r} is not {API_VERSION!r}.", code="api_version"
        )
    return event
