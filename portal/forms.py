from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class SetupIntentForm(forms.Form):
    setup_intent = forms.RegexField(regex=r"^seti_[A-Za-z0-9]{8,64}$", max_length=80)


class BackupForm(forms.Form):
    consent = forms.BooleanField(
        required=True,
        label=_("I agree that my backup card may be charged when a payment with my default card fails."),
    )


class LanguageForm(forms.Form):
    language = forms.ChoiceField(choices=settings.LANGUAGES)
