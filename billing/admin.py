"""Staff views of the billing tables, read-only: mirrors belong to Stripe, the catalog to
billing/catalog.py, and changes, events and deliveries are records.  Until staff actions exist as
audited changes, nothing here writes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from billing import changes
from billing.models import (
    BillingChange,
    BillingCustomer,
    Delivery,
    Invoice,
    PaymentMethod,
    Price,
    StripeEvent,
    Subscription,
    Tier,
)
from billing.state import subscription_state


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Tier)
class TierAdmin(ReadOnlyAdmin):
    list_display = ["key", "name", "rank", "stripe_product_id"]


@admin.register(Price)
class PriceAdmin(ReadOnlyAdmin):
    list_display = ["lookup_key", "tier", "interval", "currency", "unit_amount", "active", "stripe_price_id"]
    list_filter = ["interval", "currency", "active", "tier"]


@admin.register(BillingCustomer)
class BillingCustomerAdmin(ReadOnlyAdmin):
    list_display = ["email", "stripe_customer_id", "language", "currency", "delinquent"]
    search_fields = ["email", "stripe_customer_id", "user__email"]
    list_filter = ["language", "currency", "delinquent"]


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["stripe_id", "customer", "status", "state", "price", "current_period_end"]
    list_filter = ["status", "currency"]
    search_fields = ["stripe_id", "customer__email"]

    @admin.display(description="state")
    def state(self, obj: Subscription) -> str:
        return subscription_state(subscription=obj, now=timezone.now()).summary


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdmin):
    list_display = ["stripe_id", "customer", "brand", "last4", "exp_month", "exp_year"]
    search_fields = ["stripe_id", "customer__email", "last4"]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = [
        "stripe_id",
        "number",
        "customer",
        "status",
        "amount_due",
        "amount_remaining",
        "currency",
        "created",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["stripe_id", "number", "customer__email"]


@admin.register(BillingChange)
class BillingChangeAdmin(ReadOnlyAdmin):
    list_display = ["id", "customer", "title", "status", "attempts", "error_code", "created_at", "applied_at"]
    list_filter = ["status", "kind"]
    search_fields = ["id", "customer__email"]

    @admin.display(description="change")
    def title(self, obj: BillingChange) -> str:
        kind = changes.KINDS.get(obj.kind)
        return str(kind.label) if kind else obj.kind


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = [
        "stripe_id",
        "type",
        "status",
        "attempts",
        "customer_stripe_id",
        "stripe_created",
        "received_at",
    ]
    list_filter = ["status", "type"]
    search_fields = ["stripe_id", "object_id", "customer_stripe_id"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "dedupe_key",
        "customer",
        "message",
        "channel",
        "status",
        "suppressed_reason",
        "attempts",
        "sent_at",
    ]
    list_filter = ["status", "channel", "category", "message"]
    search_fields = ["dedupe_key", "customer__email"]
