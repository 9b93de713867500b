"""Staff views of the billing tables.  Mirrors are read-only: Stripe is their source of truth."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.models import (
    BillingChange,
    BillingCustomer,
    Invoice,
    Notification,
    PaymentMethod,
    Price,
    StripeEvent,
    Subscription,
    Tier,
)


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
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
class BillingCustomerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["email", "stripe_customer_id", "language", "currency", "delinquent"]
    search_fields = ["email", "stripe_customer_id", "user__email"]
    list_filter = ["language", "currency", "delinquent"]
    readonly_fields = [
        "user",
        "stripe_customer_id",
        "default_payment_method_id",
        "backup_payment_method_id",
        "backup_consent_at",
        "delinquent",
        "stripe_state_at",
        "created_at",
    ]


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["stripe_id", "customer", "status", "price", "current_period_end", "cancel_at_period_end"]
    list_filter = ["status", "currency"]
    search_fields = ["stripe_id", "customer__email"]


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
    list_display = ["id", "customer", "kind", "status", "attempts", "error_code", "created_at", "applied_at"]
    list_filter = ["status", "kind"]
    search_fields = ["id", "customer__email"]


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


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = [
        "dedupe_key",
        "customer",
        "template",
        "channel",
        "status",
        "attempts",
        "created_at",
        "sent_at",
    ]
    list_filter = ["status", "template", "channel"]
    search_fields = ["dedupe_key", "customer__email"]
