"""allauth hooks: every new account gets its billing customer, in the language it signed up in,
and an email address fits where it is stored."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django import forms
from django.http import HttpRequest
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from billing.models import BillingCustomer
from billing.services.customers import customer_create

EMAIL_MAX_LENGTH = BillingCustomer._meta.get_field("email").max_length or 254


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]
    def clean_email(self, email: str) -> str:
        if len(email) > EMAIL_MAX_LENGTH:
            raise forms.ValidationError(
                _("An email address can be at most %(limit)d characters long.") % {"limit": EMAIL_MAX_LENGTH}
            )
        return str(super().clean_email(email))

    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            customer_create(user=user, email=user.email, language=(get_language() or "en")[:2])
        return user
