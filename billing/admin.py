"""Staff views of the billing tables, read-only: mirrors belong to Stripe, the catalog to
billing/catalog.py, and changes, events, deliveries and recovery cases are records.  The one thing
staff write here is a new version of the recovery policy, with its reason; staff actions on
customers come as audited changes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing import changes, extensions, recovery
from billing.errors import Refused
from billing.models import (
    BillingChange,
    BillingCustomer,
    Delivery,
    Extension,
    Invoice,
    LinkEvent,
    PaymentAttempt,
    PaymentMethod,
    Price,
    RecoveryCase,
    RecoveryPolicy,
    StripeEvent,
    Subscription,
    Tier,
)
from billing.services import extensions as extension_service
from billing.services.recovery import active_policy, policy_data
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


# --------------------------------------------------------------------------- recovery


class RecoveryPolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    """A new version of the escalation policy, checked as a whole (billing.recovery) before it is
    saved: a policy that would not hold together is refused with its reasons, never half-run."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), help_text="Why this change (kept with it)."
    )

    class Meta:
        model = RecoveryPolicy
        fields = [
            "steps",
            "grace_days",
            "end_action",
            "daily_cap",
            "retry_hold_hours",
            "link_days",
            "extensions",
            "reason",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("extensions"):
            # Left empty: the extension limits as they are now.
            data["extensions"] = policy_data(policy=active_policy())["extensions"]
        fields = {name: data.get(name) for name in recovery.Policy.model_fields}
        try:
            recovery.spec(data=fields)
        except recovery.InvalidPolicy as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(RecoveryPolicy)
class RecoveryPolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Staff change the policy without a deploy by adding a version; saved versions stay as they
    were, because the cases they opened run them to their end."""

    form = RecoveryPolicyForm
    actions = None
    list_display = [
        "version",
        "grace_days",
        "end_action",
        "daily_cap",
        "steps_summary",
        "created_by",
        "created_at",
    ]

    @admin.display(description="steps")
    def steps_summary(self, obj: RecoveryPolicy) -> str:
        return ", ".join(
            f"day {s.get('day')}: {s.get('tone')} ({'+'.join(s.get('channels', []))})" for s in obj.steps
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return policy_data(policy=active_policy())

    def save_model(self, request: HttpRequest, obj: RecoveryPolicy, form: Any, change: bool) -> None:
        with transaction.atomic():
            latest = RecoveryPolicy.objects.select_for_update().order_by("-version").first()
            obj.version = (latest.version if latest else 0) + 1
            obj.created_by = request.user if request.user.is_authenticated else None
            obj.save()


class _CaseRows(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AttemptRows(_CaseRows):
    model = PaymentAttempt
    fields = readonly_fields = (
        "at",
        "stripe_id",
        "payment_method_id",
        "succeeded",
        "decline_code",
        "advice_code",
    )


class DeliveryRows(_CaseRows):
    model = Delivery
    fields = readonly_fields = ("created_at", "message", "channel", "status", "suppressed_reason", "sent_at")


class ExtensionRows(_CaseRows):
    model = Extension
    fk_name = "case"
    fields = readonly_fields = (
        "requested_at",
        "until",
        "status",
        "review",
        "reason",
        "decided_by",
        "decided_at",
        "decision_reason",
    )


class LinkRows(_CaseRows):
    model = LinkEvent
    fields = readonly_fields = ("at", "kind", "purpose", "delivery", "change")


@admin.register(RecoveryCase)
class RecoveryCaseAdmin(ReadOnlyAdmin):
    """One failed payment's episode: every attempt, every message and click, how it ended."""

    list_display = [
        "invoice_stripe_id",
        "customer",
        "status",
        "outcome",
        "family",
        "amount",
        "currency",
        "opened_at",
        "grace_ends_at",
        "closed_at",
    ]
    list_filter = ["status", "outcome", "family", "hard", "policy"]
    search_fields = ["invoice_stripe_id", "customer__email", "subscription_stripe_id"]
    inlines = [AttemptRows, DeliveryRows, LinkRows, ExtensionRows]


# --------------------------------------------------------------------------- extensions


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("approve", "Approve: the customer pays on the date they asked for"), ("deny", "Deny")],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why (kept with the decision; the customer is told the decision, not this text).",
    )


@admin.register(Extension)
class ExtensionAdmin(ReadOnlyAdmin):
    """Requests for more time to pay.  The queue is the "waiting for review" filter, oldest first;
    staff decide each with a reason, and the row keeps who decided, when and why."""

    list_display = [
        "id",
        "customer",
        "status",
        "kind",
        "amount",
        "currency",
        "due_at",
        "until",
        "review",
        "requested_at",
        "decided_by",
        "decide_link",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["customer__email", "invoice_stripe_id", "subscription_stripe_id"]
    ordering = ["requested_at"]

    @admin.display(description="decide")
    def decide_link(self, obj: Extension) -> str:
        if obj.status != Extension.Status.REQUESTED:
            return ""
        return format_html(
            '<a href="{}">Decide</a>', reverse("admin:billing_extension_decide", args=[obj.pk])
        )

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:extension_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="billing_extension_decide",
            )
        ]
        return own + super().get_urls()

    def decide_view(self, request: HttpRequest, extension_id: int) -> HttpResponse:
        if not request.user.has_perm("billing.change_extension"):
            raise PermissionDenied
        extension = get_object_or_404(Extension.objects.select_related("customer", "case"), pk=extension_id)
        form = DecisionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            assert isinstance(request.user, AbstractBaseUser)
            try:
                decided = extension_service.decide(
                    extension_id=extension.pk,
                    approve=form.cleaned_data["decision"] == "approve",
                    reason=form.cleaned_data["reason"],
                    decided_by=request.user,
                )
            except Refused as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Extension {decided.pk}: {decided.get_status_display()}.")
                return redirect("admin:billing_extension_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": f"Decide: more time for {extension.customer}",
            "extension": extension,
            "form": form,
            "opts": self.model._meta,
            "reviews": [extensions.REVIEW_TEXTS[extensions.Review(r)] for r in extension.review],
        }
        return TemplateResponse(request, "admin/billing/extension/decide.html", context)
