"""The only module that imports `stripe`.

Every call goes through a `StripeClient` with the pinned API version; writes carry an
idempotency key chosen by the caller (derived from a BillingChange's id).  Answers come back as
typed values holding what services read (and, as `raw`, the whole object for billing.sync, the
one other place that reads Stripe's JSON); Stripe's exceptions come back as the project's own
(billing.errors).

Two budgets: a worker is patient (a longer timeout, network retries); code running while a
customer waits for the page (`with interactive():`) gets a short timeout and no retries, so a
slow Stripe leaves the change pending within seconds instead of holding the page.

Jobs that write in bulk run `with paced():`, so their writes share billing.ratelimit's budget
across every worker; nothing else waits for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

import stripe
from django.conf import settings

from billing import ratelimit
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

_interactive: contextvars.ContextVar[bool] = contextvars.ContextVar("stripe_interactive", default=False)
_paced: contextvars.ContextVar[bool] = contextvars.ContextVar("stripe_paced", default=False)


@contextlib.contextmanager
def interactive() -> Iterator[None]:
    """Stripe calls within the block are made while a customer waits: the short budget."""
    token = _interactive.set(True)
    try:
        yield
    finally:
        _interactive.reset(token)


@contextlib.contextmanager
def paced() -> Iterator[None]:
    """Writes within the block wait for their turn under settings.BILLING_STRIPE_WRITE_RATE,
    shared by every process: for jobs that write in bulk, never for a customer's request."""
    token = _paced.set(True)
    try:
        yield
    finally:
        _paced.reset(token)


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
    if _interactive.get():
        timeout, retries = float(settings.STRIPE_INTERACTIVE_TIMEOUT_SECONDS), 0
    else:
        timeout, retries = float(settings.STRIPE_TIMEOUT_SECONDS), int(settings.STRIPE_MAX_NETWORK_RETRIES)
    return _client_for(settings.STRIPE_API_KEY, settings.STRIPE_API_BASE, timeout, retries)


# --------------------------------------------------------------------------- typed answers


def ref_id(value: Any) -> str:
    """A Stripe reference that may be an id or an expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


@dataclasses.dataclass(frozen=True)
class Customer:
    id: str
    raw: StripeDict = dataclasses.field(repr=False)

    @classmethod
    def of(cls, raw: StripeDict) -> Customer:
        return cls(id=str(raw["id"]), raw=raw)


@dataclasses.dataclass(frozen=True)
class TaxId:
    id: str
    type: str
    value: str

    @classmethod
    def of(cls, raw: StripeDict) -> TaxId:
        return cls(id=str(raw["id"]), type=str(raw.get("type") or ""), value=str(raw.get("value") or ""))


@dataclasses.dataclass(frozen=True)
class SetupIntent:
    id: str
    status: str
    customer_id: str
    payment_method_id: str
    # For the browser's Stripe.js only: handed to the page that asked for it, never stored.
    client_secret: str = dataclasses.field(repr=False)

    @classmethod
    def of(cls, raw: StripeDict) -> SetupIntent:
        return cls(
            id=str(raw["id"]),
            status=str(raw.get("status") or ""),
            customer_id=ref_id(raw.get("customer")),
            payment_method_id=ref_id(raw.get("payment_method")),
            client_secret=str(raw.get("client_secret") or ""),
        )


@dataclasses.dataclass(frozen=True)
class Card:
    id: str
    customer_id: str
    brand: str
    last4: str
    raw: StripeDict = dataclasses.field(repr=False)

    @classmethod
    def of(cls, raw: StripeDict) -> Card:
        card = raw.get("card") or {}
        return cls(
            id=str(raw["id"]),
            customer_id=ref_id(raw.get("customer")),
            brand=str(card.get("brand") or ""),
            last4=str(card.get("last4") or ""),
            raw=raw,
        )


@dataclasses.dataclass(frozen=True)
class Subscription:
    id: str
    status: str
    # The one item our subscriptions have, and its price.
    item_id: str
    price_id: str
    current_period_start: int
    current_period_end: int
    schedule_id: str
    # An update waiting for its invoice to be paid (payment_behavior=pending_if_incomplete).
    pending_update: bool
    latest_invoice_id: str
    raw: StripeDict = dataclasses.field(repr=False)

    @classmethod
    def of(cls, raw: StripeDict) -> Subscription:
        items = (raw.get("items") or {}).get("data") or [{}]
        item = items[0]
        return cls(
            id=str(raw["id"]),
            status=str(raw.get("status") or ""),
            item_id=str(item.get("id") or ""),
            price_id=ref_id(item.get("price")),
            current_period_start=int(item.get("current_period_start") or 0),
            current_period_end=int(item.get("current_period_end") or 0),
            schedule_id=ref_id(raw.get("schedule")),
            pending_update=bool(raw.get("pending_update")),
            latest_invoice_id=ref_id(raw.get("latest_invoice")),
            raw=raw,
        )


@dataclasses.dataclass(frozen=True)
class PreviewLine:
    amount: int
    price_id: str
    # A credit for unused time or a charge for the rest of a period, not a whole period's price.
    proration: bool
    period_start: int
    period_end: int


@dataclasses.dataclass(frozen=True)
class InvoicePreview:
    """What Stripe would invoice for a change (or next, under a schedule)."""

    currency: str
    total: int
    amount_due: int
    period_start: int
    period_end: int
    lines: tuple[PreviewLine, ...]

    @classmethod
    def of(cls, raw: StripeDict) -> InvoicePreview:
        lines = []
        for line in (raw.get("lines") or {}).get("data") or []:
            parent = line.get("parent") or {}
            details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
            pricing = (line.get("pricing") or {}).get("price_details") or {}
            period = line.get("period") or {}
            lines.append(
                PreviewLine(
                    amount=int(line.get("amount") or 0),
                    price_id=ref_id(pricing.get("price")),
                    proration=bool(details.get("proration")),
                    period_start=int(period.get("start") or 0),
                    period_end=int(period.get("end") or 0),
                )
            )
        return cls(
            currency=str(raw.get("currency") or ""),
            total=int(raw.get("total") or 0),
            amount_due=int(raw.get("amount_due") or 0),
            period_start=int(raw.get("period_start") or 0),
            period_end=int(raw.get("period_end") or 0),
            lines=tuple(lines),
        )


@dataclasses.dataclass(frozen=True)
class Schedule:
    id: str
    status: str
    subscription_id: str
    # (price, start, end) of each phase.
    phases: tuple[tuple[str, int, int], ...]
    raw: StripeDict = dataclasses.field(repr=False)

    @classmethod
    def of(cls, raw: StripeDict) -> Schedule:
        phases = tuple(
            (
                ref_id(((phase.get("items") or [{}])[0]).get("price")),
                int(phase.get("start_date") or 0),
                int(phase.get("end_date") or 0),
            )
            for phase in raw.get("phases") or []
        )
        return cls(
            id=str(raw["id"]),
            status=str(raw.get("status") or ""),
            subscription_id=ref_id(raw.get("subscription")),
            phases=phases,
            raw=raw,
        )


@dataclasses.dataclass(frozen=True)
class Invoice:
    id: str
    status: str
    number: str
    currency: str
    amount_paid: int
    amount_remaining: int
    # The secret Stripe.js needs to let the customer approve this invoice's payment (3-D Secure).
    payment_client_secret: str = dataclasses.field(repr=False)
    raw: StripeDict = dataclasses.field(repr=False)

    @classmethod
    def of(cls, raw: StripeDict) -> Invoice:
        return cls(
            id=str(raw["id"]),
            status=str(raw.get("status") or ""),
            number=str(raw.get("number") or ""),
            currency=str(raw.get("currency") or ""),
            amount_paid=int(raw.get("amount_paid") or 0),
            amount_remaining=int(raw.get("amount_remaining") or 0),
            payment_client_secret=str((raw.get("confirmation_secret") or {}).get("client_secret") or ""),
            raw=raw,
        )


@dataclasses.dataclass(frozen=True)
class Product:
    id: str
    catalog_key: str

    @classmethod
    def of(cls, raw: StripeDict) -> Product:
        return cls(id=str(raw["id"]), catalog_key=str((raw.get("metadata") or {}).get("catalog_key") or ""))


@dataclasses.dataclass(frozen=True)
class Price:
    id: str
    unit_amount: int

    @classmethod
    def of(cls, raw: StripeDict) -> Price:
        return cls(id=str(raw["id"]), unit_amount=int(raw.get("unit_amount") or 0))


# --------------------------------------------------------------------------- calling Stripe


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
            code = {409: "conflict", 429: "rate_limited"}.get(status, "api_error")
            raise StripeUnavailable(f"{exc.code or status}: {exc}", code=code) from exc
        raise BillingError(exc.user_message or str(exc), code=exc.code or "stripe_error") from exc


def _checked_key(idempotency_key: str) -> str:
    """A key travels in an HTTP header: a bad one would fail in the HTTP library and look like
    Stripe being unreachable.  It is ours to get right, so a bad one is a bug, said as such."""
    if not (0 < len(idempotency_key) <= 255 and idempotency_key.isascii() and idempotency_key.isprintable()):
        raise ValueError(f"invalid idempotency key {idempotency_key[:40]!r}")
    return idempotency_key


def _options(idempotency_key: str | None) -> stripe.RequestOptions:
    return {"idempotency_key": _checked_key(idempotency_key)} if idempotency_key else {}


def _write(call: Callable[[stripe.RequestOptions], Any], idempotency_key: str) -> StripeDict:
    options = _options(idempotency_key)
    if _paced.get():
        try:
            ratelimit.acquire()
        except ratelimit.LimiterUnavailable as exc:
            # Nothing was sent: the write waits and is retried, as after Stripe's own 429.
            raise StripeUnavailable(str(exc), code="rate_limited") from exc
    return _plain(_translated(lambda: call(options)))


def _read(call: Callable[[], Any]) -> StripeDict:
    return _plain(_translated(call))


# --------------------------------------------------------------------------- customers


def customer_create(
    *, email: str, name: str, language: str, metadata: dict[str, str], idempotency_key: str
) -> Customer:
    params: stripe.params.CustomerCreateParams = {
        "email": email,
        "name": name,
        "preferred_locales": [language],
        "metadata": metadata,
    }
    return Customer.of(
        _write(lambda o: client().v1.customers.create(params=params, options=o), idempotency_key)
    )


def customer_retrieve(*, customer_id: str) -> Customer:
    return Customer.of(_read(lambda: client().v1.customers.retrieve(customer_id)))


def _customer_update(
    customer_id: str, params: stripe.params.CustomerUpdateParams, idempotency_key: str
) -> Customer:
    return Customer.of(
        _write(lambda o: client().v1.customers.update(customer_id, params=params, options=o), idempotency_key)
    )


def customer_set_default_payment_method(
    *, customer_id: str, payment_method_id: str, idempotency_key: str
) -> Customer:
    return _customer_update(
        customer_id, {"invoice_settings": {"default_payment_method": payment_method_id}}, idempotency_key
    )


def customer_update_metadata(*, customer_id: str, metadata: dict[str, str], idempotency_key: str) -> Customer:
    return _customer_update(customer_id, {"metadata": metadata}, idempotency_key)


@dataclasses.dataclass(frozen=True)
class Address:
    line1: str
    line2: str
    postal_code: str
    city: str
    country: str


def customer_update_details(
    *,
    customer_id: str,
    email: str,
    name: str,
    address: Address | None,
    language: str,
    idempotency_key: str,
) -> Customer:
    """The customer's billing email, name, address (None: no address) and the language Stripe
    writes its own emails and invoices in."""
    params: stripe.params.CustomerUpdateParams = {
        "email": email,
        # "" unsets a field at Stripe.
        "name": name,
        "address": "",
        "preferred_locales": [language],
    }
    if address is not None:
        params["address"] = {
            "line1": address.line1,
            "line2": address.line2,
            "postal_code": address.postal_code,
            "city": address.city,
            "country": address.country,
        }
    return _customer_update(customer_id, params, idempotency_key)


def tax_ids_list(*, customer_id: str) -> list[TaxId]:
    params: stripe.params.CustomerTaxIdListParams = {"limit": 100}
    page = _translated(lambda: client().v1.customers.tax_ids.list(customer_id, params=params))
    return [TaxId.of(_plain(tax_id)) for tax_id in page.data]


def tax_id_create_eu_vat(*, customer_id: str, value: str, idempotency_key: str) -> TaxId:
    """A European VAT number on the customer (Stripe prints it on their invoices)."""
    params: stripe.params.CustomerTaxIdCreateParams = {"type": "eu_vat", "value": value}
    return TaxId.of(
        _write(
            lambda o: client().v1.customers.tax_ids.create(customer_id, params=params, options=o),
            idempotency_key,
        )
    )


def tax_id_delete(*, customer_id: str, tax_id: str, idempotency_key: str) -> None:
    _write(lambda o: client().v1.customers.tax_ids.delete(customer_id, tax_id, options=o), idempotency_key)


# --------------------------------------------------------------------------- cards


def setup_intent_create(*, customer_id: str, idempotency_key: str) -> SetupIntent:
    params: stripe.params.SetupIntentCreateParams = {
        "customer": customer_id,
        "usage": "off_session",
        "allowed_payment_method_types": ["card"],
    }
    return SetupIntent.of(
        _write(lambda o: client().v1.setup_intents.create(params=params, options=o), idempotency_key)
    )


def setup_intent_retrieve(*, setup_intent_id: str) -> SetupIntent:
    return SetupIntent.of(_read(lambda: client().v1.setup_intents.retrieve(setup_intent_id)))


def payment_method_retrieve(*, payment_method_id: str) -> Card:
    return Card.of(_read(lambda: client().v1.payment_methods.retrieve(payment_method_id)))


def payment_method_detach(*, payment_method_id: str, idempotency_key: str) -> Card:
    return Card.of(
        _write(lambda o: client().v1.payment_methods.detach(payment_method_id, options=o), idempotency_key)
    )


def payment_methods_list(*, customer_id: str) -> Iterator[Card]:
    params: stripe.params.CustomerPaymentMethodListParams = {"type": "card", "limit": 100}
    page = _translated(lambda: client().v1.customers.payment_methods.list(customer_id, params=params))
    for pm in page.auto_paging_iter():
        yield Card.of(_plain(pm))


# --------------------------------------------------------------------------- subscriptions


def subscription_retrieve(*, subscription_id: str) -> Subscription:
    # With its schedule, if any: the mirror shows a change scheduled for the renewal.
    params: stripe.params.SubscriptionRetrieveParams = {"expand": ["schedule"]}
    return Subscription.of(_read(lambda: client().v1.subscriptions.retrieve(subscription_id, params=params)))


def subscription_create(
    *, customer_id: str, price_id: str, payment_method_id: str, idempotency_key: str
) -> Subscription:
    """Start a subscription and charge its first invoice with the card at once.  Off-session, as
    the card was just saved (and authenticated, if the bank asked) for future payments; a bank
    that insists still gets its check: the subscription stays incomplete, its invoice open."""
    params: stripe.params.SubscriptionCreateParams = {
        "customer": customer_id,
        "items": [{"price": price_id}],
        "default_payment_method": payment_method_id,
        "payment_behavior": "allow_incomplete",
        "off_session": True,
    }
    return Subscription.of(
        _write(lambda o: client().v1.subscriptions.create(params=params, options=o), idempotency_key)
    )


def subscription_set_default_payment_method(
    *, subscription_id: str, payment_method_id: str, idempotency_key: str
) -> Subscription:
    params: stripe.params.SubscriptionUpdateParams = {"default_payment_method": payment_method_id}
    return Subscription.of(
        _write(
            lambda o: client().v1.subscriptions.update(subscription_id, params=params, options=o),
            idempotency_key,
        )
    )


def subscription_cancel_at_period_end(
    *, subscription_id: str, feedback: str, comment: str, idempotency_key: str
) -> Subscription:
    """End the subscription when the period paid for ends, with the customer's reason (Stripe's
    own words, so its reports agree with ours)."""
    params: stripe.params.SubscriptionUpdateParams = {
        "cancel_at_period_end": True,
        "cancellation_details": {"feedback": feedback, "comment": comment},
    }
    return Subscription.of(
        _write(
            lambda o: client().v1.subscriptions.update(subscription_id, params=params, options=o),
            idempotency_key,
        )
    )


def subscription_cancel_now(*, subscription_id: str, idempotency_key: str) -> Subscription:
    """End the subscription at once, as the recovery policy's end for an unpaid one: nothing is
    prorated or refunded (nothing was paid for the period it is in)."""
    params: stripe.params.SubscriptionCancelParams = {
        "cancellation_details": {"comment": "unpaid after the recovery policy's grace"},
        "prorate": False,
    }
    return Subscription.of(
        _write(
            lambda o: client().v1.subscriptions.cancel(subscription_id, params=params, options=o),
            idempotency_key,
        )
    )


def subscription_keep(*, subscription_id: str, idempotency_key: str) -> Subscription:
    """Undo a cancel at the period's end: the subscription renews as before."""
    params: stripe.params.SubscriptionUpdateParams = {"cancel_at_period_end": False}
    return Subscription.of(
        _write(
            lambda o: client().v1.subscriptions.update(subscription_id, params=params, options=o),
            idempotency_key,
        )
    )


def _price_change(*, item_id: str, price_id: str, proration_date: int) -> dict[str, Any]:
    """The one update a plan change "now" makes, and previews: the item's price swapped, the
    proration invoiced at once, computed at `proration_date` (so the preview and the change
    compute the very same amounts)."""
    return {
        "items": [{"id": item_id, "price": price_id}],
        "proration_behavior": "always_invoice",
        "proration_date": proration_date,
    }


def invoice_preview_price_change(
    *, customer_id: str, subscription_id: str, item_id: str, price_id: str, proration_date: int
) -> InvoicePreview:
    change = _price_change(item_id=item_id, price_id=price_id, proration_date=proration_date)
    params: stripe.params.InvoiceCreatePreviewParams = {
        "customer": customer_id,
        "subscription": subscription_id,
        "subscription_details": change,  # type: ignore[typeddict-item]
    }
    return InvoicePreview.of(_read(lambda: client().v1.invoices.create_preview(params=params)))


def subscription_change_price(
    *, subscription_id: str, item_id: str, price_id: str, proration_date: int, idempotency_key: str
) -> Subscription:
    """Swap the price now.  The update waits for its invoice to be paid (pending_if_incomplete): a
    decline or an unapproved 3-D Secure leaves the subscription on its old price."""
    params: stripe.params.SubscriptionUpdateParams = {
        **_price_change(item_id=item_id, price_id=price_id, proration_date=proration_date),  # type: ignore[typeddict-item]
        "payment_behavior": "pending_if_incomplete",
    }
    return Subscription.of(
        _write(
            lambda o: client().v1.subscriptions.update(subscription_id, params=params, options=o),
            idempotency_key,
        )
    )


def _next_phases(*, current_price_id: str, start: int, end: int, next_price_id: str) -> list[dict[str, Any]]:
    """Today's price until the end of the period, then the new one (released after one period)."""
    return [
        {"items": [{"price": current_price_id}], "start_date": start, "end_date": end},
        {"items": [{"price": next_price_id}]},
    ]


def invoice_preview_at_renewal(
    *,
    customer_id: str,
    schedule_id: str,
    current_price_id: str,
    start: int,
    end: int,
    next_price_id: str,
) -> InvoicePreview:
    """The invoice the subscription would get at its renewal with a new price from then on.

    Stripe previews schedule phases only for a schedule (`schedule_details` can't go with
    `subscription`): a subscription on one is previewed with its phases replaced; one not on a
    schedule yet, as a schedule of the new price from the period's end, which bills the same."""
    if schedule_id:
        params: stripe.params.InvoiceCreatePreviewParams = {
            "customer": customer_id,
            "schedule": schedule_id,
            "schedule_details": {
                "end_behavior": "release",
                "phases": _next_phases(  # type: ignore[typeddict-item]
                    current_price_id=current_price_id, start=start, end=end, next_price_id=next_price_id
                ),
            },
        }
    else:
        params = {
            "customer": customer_id,
            "schedule_details": {
                "end_behavior": "release",
                "phases": [{"items": [{"price": next_price_id}], "start_date": end}],
            },
        }
    return InvoicePreview.of(_read(lambda: client().v1.invoices.create_preview(params=params)))


def schedule_retrieve(*, schedule_id: str) -> Schedule:
    return Schedule.of(_read(lambda: client().v1.subscription_schedules.retrieve(schedule_id)))


def schedule_price_at_renewal(
    *,
    subscription_id: str,
    schedule_id: str,
    current_price_id: str,
    start: int,
    end: int,
    next_price_id: str,
    idempotency_key: str,
) -> Schedule:
    """Put the subscription on a schedule (unless it has one) whose second phase is the new price."""
    if not schedule_id:
        created: stripe.params.SubscriptionScheduleCreateParams = {"from_subscription": subscription_id}
        schedule_id = Schedule.of(
            _write(
                lambda o: client().v1.subscription_schedules.create(params=created, options=o),
                f"{idempotency_key}-create",
            )
        ).id
    params: stripe.params.SubscriptionScheduleUpdateParams = {
        "end_behavior": "release",
        "phases": _next_phases(  # type: ignore[typeddict-item]
            current_price_id=current_price_id, start=start, end=end, next_price_id=next_price_id
        ),
    }
    return Schedule.of(
        _write(
            lambda o: client().v1.subscription_schedules.update(schedule_id, params=params, options=o),
            idempotency_key,
        )
    )


def schedule_release(*, schedule_id: str, idempotency_key: str) -> Schedule:
    """The subscription goes on as it is today; the scheduled change is dropped."""
    return Schedule.of(
        _write(lambda o: client().v1.subscription_schedules.release(schedule_id, options=o), idempotency_key)
    )


# Where the portal keeps a pause's resume date on the Stripe subscription: Stripe's pause has no
# date of its own (our beat job resumes it), and this way the date survives a reconcile.
PAUSE_RESUMES_AT = "pause_resumes_at"


def subscription_pause(*, subscription_id: str, resumes_at: int, idempotency_key: str) -> Subscription:
    """Pause the subscription (status `paused`: no invoices, no renewal) with the unused part of
    its period credited as pending invoice items, which the first invoice after the resume takes
    (Stripe's default).  The resume date goes into its metadata first, in a request of its own
    (the pause endpoint takes no metadata)."""
    metadata: stripe.params.SubscriptionUpdateParams = {"metadata": {PAUSE_RESUMES_AT: str(resumes_at)}}
    _write(
        lambda o: client().v1.subscriptions.update(subscription_id, params=metadata, options=o),
        f"{idempotency_key}-date",
    )
    params: stripe.params.SubscriptionPauseParams = {
        "type": "subscription",
        "bill_for": {"unused_time_from": {"type": "now"}},
        "invoicing_behavior": "pending_invoice_item",
    }
    return Subscription.of(
        _write(
            lambda o: client().v1.subscriptions.pause(subscription_id, params=params, options=o),
            idempotency_key,
        )
    )


def subscription_resume(*, subscription_id: str, idempotency_key: str) -> Subscription:
    """Resume a paused subscription now: a new period starts today and is invoiced at once (with
    the pause's credit taken off).  `resume_on_payment_success`: if that charge fails the
    subscription stays paused and Stripe retries it, rather than going past due without retries."""
    params: stripe.params.SubscriptionResumeParams = {
        "billing_cycle_anchor": {"type": "now"},
        "payment_behavior": "resume_on_payment_success",
    }
    return Subscription.of(
        _write(
            lambda o: client().v1.subscriptions.resume(subscription_id, params=params, options=o),
            idempotency_key,
        )
    )


def subscription_defer_collection(*, subscription_id: str, until: int, idempotency_key: str) -> Subscription:
    """Move the next renewal's charge to `until` (a payment extension): the renewal still happens
    on its date, its invoice is kept as a draft and charged by us then (`pause_collection` with
    `keep_as_draft`; collection resumes by itself at `until`)."""
    params: stripe.params.SubscriptionUpdateParams = {
        "pause_collection": {"behavior": "keep_as_draft", "resumes_at": until}
    }
    return Subscription.of(
        _write(
            lambda o: client().v1.subscriptions.update(subscription_id, params=params, options=o),
            idempotency_key,
        )
    )


def subscription_collect_again(*, subscription_id: str, idempotency_key: str) -> Subscription:
    """Stripe collects the subscription's invoices again (an extension that ended early)."""
    params: stripe.params.SubscriptionUpdateParams = {"pause_collection": ""}
    return Subscription.of(
        _write(
            lambda o: client().v1.subscriptions.update(subscription_id, params=params, options=o),
            idempotency_key,
        )
    )


def pending_credit(*, customer_id: str, subscription_id: str) -> int:
    """What the subscription's pending invoice items take off its next invoice (positive)."""
    params: stripe.params.InvoiceItemListParams = {"customer": customer_id, "pending": True, "limit": 100}
    page = _translated(lambda: client().v1.invoice_items.list(params=params))
    total = 0
    for found in page.auto_paging_iter():
        item = _plain(found)
        parent = (item.get("parent") or {}).get("subscription_details") or {}
        if parent.get("subscription") == subscription_id:
            total += int(item.get("amount") or 0)
    return max(0, -total)


def subscriptions_list(*, customer_id: str) -> Iterator[Subscription]:
    # With their schedules, as subscription_retrieve: reconciling keeps a change scheduled for the renewal.
    params: stripe.params.SubscriptionListParams = {
        "customer": customer_id,
        "status": "all",
        "limit": 100,
        "expand": ["data.schedule"],
    }
    page = _translated(lambda: client().v1.subscriptions.list(params=params))
    for sub in page.auto_paging_iter():
        yield Subscription.of(_plain(sub))


# --------------------------------------------------------------------------- invoices


def invoice_retrieve(*, invoice_id: str) -> Invoice:
    return Invoice.of(_read(lambda: client().v1.invoices.retrieve(invoice_id)))


def invoice_pay(*, invoice_id: str, payment_method_id: str, idempotency_key: str) -> Invoice:
    # Off-session, as Stripe Billing charges a saved card: a card authenticated when it was set up
    # for future payments is then not asked for 3-D Secure again (Stripe's exemption for
    # off-session payments).  A bank that insists still gets its check (ActionRequired).
    params: stripe.params.InvoicePayParams = {"payment_method": payment_method_id, "off_session": True}
    return Invoice.of(
        _write(lambda o: client().v1.invoices.pay(invoice_id, params=params, options=o), idempotency_key)
    )


def invoice_finalize(*, invoice_id: str, idempotency_key: str) -> Invoice:
    """Finalize a draft without Stripe charging it by itself: we pay it right after, on a card we
    choose (the renewal an extension kept as a draft)."""
    params: stripe.params.InvoiceFinalizeInvoiceParams = {"auto_advance": False}
    return Invoice.of(
        _write(
            lambda o: client().v1.invoices.finalize_invoice(invoice_id, params=params, options=o),
            idempotency_key,
        )
    )


def invoice_void(*, invoice_id: str, idempotency_key: str) -> Invoice:
    return Invoice.of(
        _write(lambda o: client().v1.invoices.void_invoice(invoice_id, options=o), idempotency_key)
    )


def invoice_stop_collecting(*, invoice_id: str, idempotency_key: str) -> Invoice:
    """Still owed, but Stripe no longer tries to collect it by itself (no more retries)."""
    params: stripe.params.InvoiceUpdateParams = {"auto_advance": False}
    return Invoice.of(
        _write(lambda o: client().v1.invoices.update(invoice_id, params=params, options=o), idempotency_key)
    )


def invoice_payment_trouble(*, invoice_id: str) -> tuple[Literal["declined", "action_required"], str]:
    """Why an invoice Stripe just tried to charge is still open: the bank wants the customer
    (3-D Secure), or it declined (with Stripe's decline code)."""
    params: stripe.params.InvoiceRetrieveParams = {"expand": ["payments.data.payment.payment_intent"]}
    raw = _read(lambda: client().v1.invoices.retrieve(invoice_id, params=params))
    payments = (raw.get("payments") or {}).get("data") or []
    intent = ((payments[0].get("payment") or {}).get("payment_intent") if payments else None) or {}
    if not isinstance(intent, dict):
        return "declined", ""
    if intent.get("status") == "requires_action":
        return "action_required", ""
    error = intent.get("last_payment_error") or {}
    return "declined", str(error.get("decline_code") or error.get("code") or "")


def invoice_resume_collecting(*, invoice_id: str, idempotency_key: str) -> Invoice:
    """Stripe collects the invoice by itself again: its automatic retries resume (a new card
    arrived after a decline that had stopped them)."""
    params: stripe.params.InvoiceUpdateParams = {"auto_advance": True}
    return Invoice.of(
        _write(lambda o: client().v1.invoices.update(invoice_id, params=params, options=o), idempotency_key)
    )


@dataclasses.dataclass(frozen=True)
class ChargeAttempt:
    """One attempt to charge a card for an invoice, as its Charge tells it."""

    id: str
    payment_method_id: str
    created: int
    succeeded: bool
    decline_code: str
    advice_code: str


@dataclasses.dataclass(frozen=True)
class InvoiceAttempts:
    """How collecting an invoice has gone: its latest payment's state and every charge tried."""

    invoice: Invoice
    payment_intent_id: str
    # The bank wants the customer to approve the payment (3-D Secure).
    waiting_for_approval: bool
    # The latest failure: Stripe's decline code (or error code), its advice, and the card.
    decline_code: str
    advice_code: str
    payment_method_id: str
    charges: tuple[ChargeAttempt, ...]


def _charge_attempt(raw: StripeDict) -> ChargeAttempt:
    outcome = raw.get("outcome") or {}
    return ChargeAttempt(
        id=str(raw["id"]),
        payment_method_id=ref_id(raw.get("payment_method")),
        created=int(raw.get("created") or 0),
        succeeded=raw.get("status") == "succeeded",
        decline_code=str(outcome.get("reason") or raw.get("failure_code") or "")
        if raw.get("status") != "succeeded"
        else "",
        advice_code=str(outcome.get("advice_code") or ""),
    )


def invoice_attempts(*, invoice_id: str) -> InvoiceAttempts:
    """The invoice with its payment's latest error and every charge made for it, oldest first (two
    reads: the invoice with its PaymentIntent, then the intent's charges)."""
    params: stripe.params.InvoiceRetrieveParams = {"expand": ["payments.data.payment.payment_intent"]}
    raw = _read(lambda: client().v1.invoices.retrieve(invoice_id, params=params))
    payments = (raw.get("payments") or {}).get("data") or []
    default = next((p for p in payments if p.get("is_default")), payments[0] if payments else {})
    intent = (default.get("payment") or {}).get("payment_intent") or {}
    if not isinstance(intent, dict):
        intent = {}
    error = intent.get("last_payment_error") or {}
    charges: list[ChargeAttempt] = []
    intent_id = str(intent.get("id") or "")
    if intent_id:
        listed: stripe.params.ChargeListParams = {"payment_intent": intent_id, "limit": 100}
        page = _translated(lambda: client().v1.charges.list(params=listed))
        charges = sorted((_charge_attempt(_plain(c)) for c in page.data), key=lambda c: (c.created, c.id))
    charge_error = error.get("charge") and next((c for c in charges if c.id == error.get("charge")), None)
    return InvoiceAttempts(
        invoice=Invoice.of(raw),
        payment_intent_id=intent_id,
        waiting_for_approval=intent.get("status") == "requires_action",
        decline_code=str(error.get("decline_code") or error.get("code") or ""),
        advice_code=charge_error.advice_code if charge_error else "",
        payment_method_id=ref_id(error.get("payment_method") or intent.get("payment_method")),
        charges=tuple(charges),
    )


def invoices_list(*, customer_id: str, limit: int = 100) -> Iterator[Invoice]:
    params: stripe.params.InvoiceListParams = {"customer": customer_id, "limit": min(limit, 100)}
    page = _translated(lambda: client().v1.invoices.list(params=params))
    for count, invoice in enumerate(page.auto_paging_iter()):
        if count >= limit:
            return
        yield Invoice.of(_plain(invoice))


# --------------------------------------------------------------------------- catalog


def product_by_catalog_key(*, catalog_key: str) -> Product | None:
    params: stripe.params.ProductListParams = {"limit": 100}
    page = _translated(lambda: client().v1.products.list(params=params))
    for product in page.auto_paging_iter():
        found = Product.of(_plain(product))
        if found.catalog_key == catalog_key:
            return found
    return None


def product_create(*, name: str, catalog_key: str, idempotency_key: str) -> Product:
    params: stripe.params.ProductCreateParams = {"name": name, "metadata": {"catalog_key": catalog_key}}
    return Product.of(
        _write(lambda o: client().v1.products.create(params=params, options=o), idempotency_key)
    )


def price_by_lookup_key(*, lookup_key: str) -> Price | None:
    params: stripe.params.PriceListParams = {"lookup_keys": [lookup_key], "active": True, "limit": 1}
    page = _translated(lambda: client().v1.prices.list(params=params))
    return Price.of(_plain(page.data[0])) if page.data else None


def price_create(
    *,
    product_id: str,
    currency: str,
    unit_amount: int,
    interval: str,
    interval_count: int,
    lookup_key: str,
    idempotency_key: str,
) -> Price:
    params: stripe.params.PriceCreateParams = {
        "product": product_id,
        "currency": currency,
        "unit_amount": unit_amount,
        "recurring": {"interval": interval, "interval_count": interval_count},
        "lookup_key": lookup_key,
        # A changed amount is a new price; the key moves to it and the old one is archived.
        "transfer_lookup_key": True,
    }
    return Price.of(_write(lambda o: client().v1.prices.create(params=params, options=o), idempotency_key))


def price_archive(*, price_id: str) -> None:
    params: stripe.params.PriceUpdateParams = {"active": False}
    _read(lambda: client().v1.prices.update(price_id, params=params))


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
