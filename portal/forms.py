"""The portal's forms: what a request may carry, checked before anything reaches billing or Stripe."""

from __future__ import annotations

import secrets

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from billing import cancellation

# A one-time value a page hands its form, so that the same submit sent twice is one change.
TOKEN = r"^[A-Za-z0-9_-]{8,64}$"


def new_token() -> str:
    return secrets.token_urlsafe(12)


class SetupIntentForm(forms.Form):
    setup_intent = forms.RegexField(regex=r"^seti_[A-Za-z0-9_]{8,200}$", max_length=220)


class AttemptForm(forms.Form):
    """The card form's page view: its SetupIntent's idempotency key is derived from it."""

    attempt = forms.RegexField(regex=TOKEN, max_length=64)


class CardActionForm(forms.Form):
    token = forms.RegexField(regex=TOKEN, max_length=64, required=False)


class BackupForm(CardActionForm):
    consent = forms.BooleanField(
        required=False,
        label=_("I agree that my backup card may be charged when a payment with my default card fails."),
    )


class LanguageForm(forms.Form):
    language = forms.ChoiceField(choices=settings.LANGUAGES)


class PlanPreviewForm(forms.Form):
    price = forms.RegexField(regex=r"^[a-z0-9_]{1,200}$", max_length=200)
    when = forms.ChoiceField(choices=[("now", "now"), ("renewal", "renewal")])


class PlanConfirmForm(CardActionForm):
    # The preview the customer saw, signed by us (its amounts and the moment it prorates to).
    preview = forms.CharField(max_length=4000)


class PlanStartForm(CardActionForm):
    price = forms.RegexField(regex=r"^[a-z0-9_]{1,200}$", max_length=200)
    # The card saved on the start page; without it the customer's default card pays.
    setup_intent = forms.RegexField(regex=r"^seti_[A-Za-z0-9_]{8,200}$", max_length=220, required=False)


class CancelSurveyForm(CardActionForm):
    """Why the customer is leaving: one reason (required) and, if they like, a few words."""

    reason = forms.ChoiceField(
        label=_("Why do you want to cancel?"),
        choices=[(reason.value, label) for reason, label in cancellation.REASON_LABELS],
        widget=forms.RadioSelect,
        error_messages={"required": _("Please choose a reason, so we know what to offer or improve.")},
    )
    comment = forms.CharField(
        label=_("Anything you would like to tell us? (optional)"),
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class CancelConfirmForm(CancelSurveyForm):
    offer = forms.ChoiceField(choices=[(offer.value, offer.value) for offer in cancellation.Offer])


class CancelOfferForm(CancelSurveyForm):
    # The preview of the cheaper plan the customer takes instead, signed by us.
    preview = forms.CharField(max_length=4000)
