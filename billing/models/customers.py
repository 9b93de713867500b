"""The billing customer: one per login, with what Stripe says about their cards."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Language(models.TextChoices):
    EN = "en", "English"
    SV = "sv", "Svenska"
    NL = "nl", "Nederlands"


class BillingCustomer(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing")
    stripe_customer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    email = models.EmailField(blank=True)
    name = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=5, choices=Language.choices, default=Language.EN)
    currency = models.CharField(max_length=3, default="eur")
    # The billing address as Stripe has it (written by billing.sync); country is ISO 3166-1 alpha-2.
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    address_postal_code = models.CharField(max_length=20, blank=True)
    address_city = models.CharField(max_length=100, blank=True)
    address_country = models.CharField(max_length=2, blank=True)
    # The customer's VAT number (an `eu_vat` tax id at Stripe, compact: "SE556677889901") and the
    # Stripe id of that tax id, so that a new number replaces it rather than joining it.
    tax_id = models.CharField(max_length=32, blank=True)
    tax_id_stripe_id = models.CharField(max_length=255, blank=True)
    # An IANA zone ("Europe/Amsterdam"); empty means the portal's default (PORTAL_DISPLAY_TIME_ZONE).
    time_zone = models.CharField(max_length=64, blank=True)
    # E.164 ("+46701234567"), for text messages; empty means none are sent.
    phone = models.CharField(max_length=20, blank=True)
    # What the customer does not want (billing.policy.opt_out_key): "reminder:sms" for one channel
    # of a category, or a bare category ("reminder") for all of its channels.  Messages that may
    # not be opted out of (billing.policy.may_opt_out) are sent whatever this says.
    opt_outs: models.JSONField[list[str]] = models.JSONField(default=list, blank=True)
    # Stripe ids, not foreign keys: the card mirror may arrive after the customer's own update.
    default_payment_method_id = models.CharField(max_length=255, blank=True)
    backup_payment_method_id = models.CharField(max_length=255, blank=True)
    backup_consent_at = models.DateTimeField(null=True, blank=True)
    delinquent = models.BooleanField(default=False)
    stripe_state_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.email or str(self.user)
