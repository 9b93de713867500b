"""Blank objects: what each Stripe object type looks like the moment it is created (test mode).

Resources start every object from ``blank(name)`` and overwrite the fields they manage, so the
field *set* here is the contract the official client sees: every field of Stripe's published
example (``fixtures3.json``) that the pinned ``stripe`` package still declares, plus the few
declared fields a billing portal reads although the example lacks them.  Fields the package
declares only for expansion, ``include[]`` or other products (Connect, Tax, Terminal...) are
left out, as Stripe leaves them out of a default response.  ``tests/emulator/test_shapes.py``
holds the templates (and live responses) to that contract.

Identity and timing fields (``id``, ``created``, ``customer``...) are ``None`` here: the
resource that creates the object always sets them, and a ``None`` that leaks out is easier to
spot than a plausible-looking placeholder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Template = dict[str, Any]


def blank(name: str) -> dict[str, Any]:
    """A new template for the object type ``name`` (the object's ``"object"`` value)."""
    try:
        build = _TEMPLATES[name]
    except KeyError:
        raise KeyError(f"no template for Stripe object type {name!r}") from None
    # Each builder returns a new literal, so callers may mutate the result (nested parts too).
    return build()


# shared parts ---------------------------------------------------------------------------


def _address() -> Template:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def _billing_details() -> Template:
    return {"address": _address(), "email": None, "name": None, "phone": None, "tax_id": None}


def _list(url: str | None = None) -> Template:
    """An embedded list (``invoice.lines``, ``subscription.items``); the url names the parent."""
    return {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": url}


def _flexible_billing_mode() -> Template:
    # Flexible is the default billing mode for new subscriptions in this API version.
    return {"type": "flexible", "flexible": {"proration_discounts": "included"}}


# catalog ----------------------------------------------------------------------------------


def _product() -> Template:
    return {
        "id": None,
        "object": "product",
        "active": True,
        "created": None,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": None,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",  # what Stripe gives products created through the API
        "unit_label": None,
        "updated": None,
        "url": None,
    }


def _price() -> Template:
    return {
        "id": None,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": None,
        "currency": None,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": None,
        "recurring": None,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": None,
        "unit_amount_decimal": None,
    }


def _plan() -> Template:
    """The legacy view of a recurring price that Stripe still embeds in subscription items."""
    return {
        "id": None,
        "object": "plan",
        "active": True,
        "amount": None,
        "amount_decimal": None,
        "billing_scheme": "per_unit",
        "created": None,
        "currency": None,
        "interval": None,
        "interval_count": 1,
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": None,
        "product": None,
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


# customers ------------------------------------------------------------------------------


def _customer() -> Template:
    return {
        "id": None,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": None,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": None,
        # Always present, even when nothing in it is set.
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def _tax_id() -> Template:
    return {
        "id": None,
        "object": "tax_id",
        "country": None,
        "created": None,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "owner": {"customer": None, "customer_account": None, "type": "customer"},
        "type": None,
        "value": None,
        "verification": {"status": "pending", "verified_address": None, "verified_name": None},
    }


# payments -------------------------------------------------------------------------------


def _payment_method() -> Template:
    return {
        "id": None,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": _billing_details(),
        # The emulator makes card payment methods only; the resource fills in the card.
        "card": {
            "brand": None,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": None},
            "country": None,
            "display_brand": None,
            "exp_month": None,
            "exp_year": None,
            "fingerprint": None,
            "funding": None,
            "generated_from": None,
            "last4": None,
            "networks": {"available": [], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": None,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def _setup_intent() -> Template:
    return {
        "id": None,
        "object": "setup_intent",
        "application": None,
        # Null while payment_method_types is given; the resource sets it for automatic methods.
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": None,
        "created": None,
        "customer": None,
        "description": None,
        "excluded_payment_method_types": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {"mandate_options": None, "network": None, "request_three_d_secure": "automatic"},
        },
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": "requires_payment_method",
        "usage": "off_session",
    }


def _payment_intent() -> Template:
    return {
        "id": None,
        "object": "payment_intent",
        "amount": None,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        # Invoice payments list their payment_method_types instead of automatic methods.
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",  # the default since API version 2024-04-10
        "client_secret": None,
        "confirmation_method": "automatic",
        "created": None,
        "currency": None,
        "customer": None,
        "customer_account": None,
        "description": None,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            },
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def _charge() -> Template:
    return {
        "id": None,
        "object": "charge",
        "amount": None,
        "amount_captured": 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": _billing_details(),
        "calculated_statement_descriptor": None,
        "captured": False,
        "created": None,
        "currency": None,
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": None,
        "paid": False,
        "payment_intent": None,
        "payment_method": None,
        # Card charges only; the resource copies brand, last4, expiry... from the payment method.
        "payment_method_details": {
            "card": {
                "amount_authorized": None,
                "authorization_code": None,
                "brand": None,
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": None},
                "country": None,
                "exp_month": None,
                "exp_year": None,
                "extended_authorization": {"status": "disabled"},
                "fingerprint": None,
                "funding": None,
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": None,
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": None,
                "network_token": {"used": False},
                "network_transaction_id": None,
                "overcapture": {"maximum_amount_capturable": None, "status": "unavailable"},
                "regulated_status": "unregulated",
                "three_d_secure": None,
                "transaction_link_id": None,
                "wallet": None,
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        # Not expanded by default in this API version.
        "refunds": None,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "pending",
        "transfer_data": None,
        "transfer_group": None,
    }


# subscriptions --------------------------------------------------------------------------


def _subscription() -> Template:
    return {
        "id": None,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": None,
        "billing_cycle_anchor_config": None,
        "billing_mode": _flexible_billing_mode(),
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": None,
        "currency": None,
        "customer": None,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        "items": _list(),  # url: /v1/subscription_items?subscription=<id>
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": None,
        "status": "incomplete",
        "status_details": None,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def _subscription_item() -> Template:
    return {
        "id": None,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": None,
        # Billing periods live on the items (not the subscription) in this API version.
        "current_period_end": None,
        "current_period_start": None,
        "discounts": [],
        "metadata": {},
        "plan": None,  # the resource embeds blank("plan") built from the price
        "price": None,  # the full price object, always expanded here
        "quantity": 1,
        "subscription": None,
        "tax_rates": [],
    }


def _subscription_schedule() -> Template:
    return {
        "id": None,
        "object": "subscription_schedule",
        "application": None,
        "billing_mode": _flexible_billing_mode(),
        "canceled_at": None,
        "completed_at": None,
        "created": None,
        "current_phase": None,
        "customer": None,
        "customer_account": None,
        "default_settings": {
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": "automatic",
            "billing_thresholds": None,
            "collection_method": "charge_automatically",
            "default_payment_method": None,
            "description": None,
            "invoice_settings": {
                "account_tax_ids": None,
                "custom_fields": None,
                "days_until_due": None,
                "description": None,
                "footer": None,
                "issuer": {"type": "self"},
            },
            "on_behalf_of": None,
            "transfer_data": None,
        },
        "end_behavior": "release",
        "livemode": False,
        "metadata": {},
        "phases": [],
        "released_at": None,
        "released_subscription": None,
        "status": "not_started",
        "subscription": None,
        "test_clock": None,
    }


# invoices -------------------------------------------------------------------------------


def _invoice() -> Template:
    return {
        "id": None,
        "object": "invoice",
        "account_country": None,
        "account_name": None,
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": False,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "confirmation_secret": None,
        "created": None,
        "currency": None,
        "custom_fields": None,
        "customer": None,
        "customer_account": None,
        "customer_address": None,
        "customer_email": None,
        "customer_name": None,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": _list(),  # url: /v1/invoices/<id>/lines
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        # Shown only when expanded; the resource builds the list then.
        "payments": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": None,
        "period_start": None,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_details": None,
        # Always present; each leaf is set as the invoice reaches that status.
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


def _line_item() -> Template:
    return {
        "id": None,
        "object": "line_item",
        "amount": 0,
        "currency": None,
        "description": None,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "parent": None,
        "period": {"end": None, "start": None},
        "pretax_credit_amounts": [],
        "pricing": None,
        "quantity": 1,
        "quantity_decimal": "1",
        "subscription": None,
        "subtotal": 0,
        "taxes": [],
    }


def _invoice_payment() -> Template:
    return {
        "id": None,
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": 0,
        "created": None,
        "currency": None,
        "invoice": None,
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": None, "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }


def _invoiceitem() -> Template:
    return {
        "id": None,
        "object": "invoiceitem",
        "amount": 0,
        "currency": None,
        "customer": None,
        "customer_account": None,
        "date": None,
        "description": None,
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "net_amount": 0,
        "parent": None,
        "period": {"end": None, "start": None},
        "pricing": None,
        "proration": False,
        "quantity": 1,
        "quantity_decimal": "1",
        "tax_rates": [],
        "test_clock": None,
    }


# test clocks, events, webhooks ------------------------------------------------------------


def _test_clock() -> Template:
    return {
        "id": None,
        "object": "test_helpers.test_clock",
        "created": None,
        "deletes_after": None,
        "frozen_time": None,
        "livemode": False,
        "name": None,
        "status": "ready",
        # {"advancing": {"target_frozen_time": ...}} while advancing.
        "status_details": {},
    }


def _event() -> Template:
    return {
        "id": None,
        "object": "event",
        "api_version": None,
        "created": None,
        "data": {"object": {}},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": None,
    }


def _webhook_endpoint() -> Template:
    return {
        "id": None,
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": None,
        "description": None,
        "enabled_events": [],
        "livemode": False,
        "metadata": {},
        "status": "enabled",
        "url": None,
    }


_TEMPLATES: dict[str, Callable[[], Template]] = {
    "product": _product,
    "price": _price,
    "plan": _plan,
    "customer": _customer,
    "tax_id": _tax_id,
    "payment_method": _payment_method,
    "setup_intent": _setup_intent,
    "payment_intent": _payment_intent,
    "charge": _charge,
    "subscription": _subscription,
    "subscription_item": _subscription_item,
    "subscription_schedule": _subscription_schedule,
    "invoice": _invoice,
    "line_item": _line_item,
    "invoice_payment": _invoice_payment,
    "invoiceitem": _invoiceitem,
    "test_helpers.test_clock": _test_clock,
    "event": _event,
    "webhook_endpoint": _webhook_endpoint,
}
