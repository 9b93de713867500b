"""The portal's forms: what a request may carry, checked before anything reaches billing or Stripe."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from billing import cancellation, details, policy
from billing.services.details import DetailsParams, Preferences

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


class CancelPauseForm(CancelSurveyForm):
    months = forms.TypedChoiceField(
        coerce=int, choices=lambda: [(m, str(m)) for m in policy.current().pause.lengths_months]
    )


class CancelOfferForm(CancelSurveyForm):
    # The preview of the cheaper plan the customer takes instead, signed by us.
    preview = forms.CharField(max_length=4000)


class DetailsForm(forms.Form):
    """The Details page: what Stripe keeps (checked here, by billing.details, before it may go
    there) and the preferences only the portal keeps."""

    token = forms.RegexField(regex=TOKEN, max_length=64)
    email = forms.EmailField(label=_("Billing email"), max_length=254)
    name = forms.CharField(label=_("Name on invoices"), max_length=200, required=False)
    line1 = forms.CharField(label=_("Street and number"), max_length=200, required=False)
    line2 = forms.CharField(label=_("Apartment, floor, c/o (optional)"), max_length=200, required=False)
    postal_code = forms.CharField(label=_("Postal code"), max_length=20, required=False)
    city = forms.CharField(label=_("City"), max_length=100, required=False)
    country = forms.ChoiceField(label=_("Country"), required=False)
    tax_id = forms.CharField(
        label=_("VAT number (optional)"),
        max_length=40,
        required=False,
        help_text=_("With its country's two letters first, as in SE556677889901."),
    )
    language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES)
    time_zone = forms.ChoiceField(label=_("Time zone"))
    phone = forms.CharField(
        label=_("Mobile number for text messages (optional)"),
        max_length=40,
        required=False,
        help_text=_("With the country code, as in +46 70 123 45 67."),
    )
    # The categories and channels the customer leaves on, by billing.policy.opt_out_key; what may
    # not be switched off is not among the choices (and so can't be posted off).
    notify = forms.MultipleChoiceField(required=False)

    def __init__(self, *args: Any, zone: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built per request: country names in the customer's language, their own zone kept.
        country: Any = self.fields["country"]
        country.choices = [("", _("Choose a country")), *details.countries()]
        time_zone: Any = self.fields["time_zone"]
        time_zone.choices = [(zone, zone.replace("_", " ")) for zone in details.zones(current=zone)]
        notify: Any = self.fields["notify"]
        notify.choices = [(key, key) for key in policy.opt_outs_from(switched_on=set())]

    def clean_tax_id(self) -> str:
        try:
            return details.checked_vat(self.cleaned_data["tax_id"])
        except details.DetailProblem as problem:
            raise forms.ValidationError(str(problem), code="invalid_vat")

    def clean_time_zone(self) -> str:
        try:
            return details.checked_zone(self.cleaned_data["time_zone"])
        except details.DetailProblem as problem:
            raise forms.ValidationError(str(problem), code="invalid_zone")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        address = {field: str(cleaned.get(field) or "").strip() for field in details.ADDRESS_FIELDS}
        if "country" in self.errors:
            return cleaned
        for field, problem in details.address_problems(**address).items():
            self.add_error(field, problem)
        if "phone" in cleaned:
            try:
                cleaned["phone"] = details.checked_mobile(cleaned["phone"], country=address["country"])
            except details.DetailProblem as problem:
                self.add_error("phone", forms.ValidationError(str(problem), code="invalid_phone"))
        return cleaned

    def details(self) -> DetailsParams:
        data = self.cleaned_data
        return DetailsParams(
            email=data["email"],
            name=data["name"].strip(),
            line1=data["line1"].strip(),
            line2=data["line2"].strip(),
            postal_code=data["postal_code"].strip(),
            city=data["city"].strip(),
            country=data["country"],
            tax_id=data["tax_id"],
            language=data["language"],
        )

    def preferences(self) -> Preferences:
        data = self.cleaned_data
        return Preferences(
            language=data["language"],
            time_zone=data["time_zone"],
            phone=data["phone"],
            opt_outs=tuple(policy.opt_outs_from(switched_on=set(data["notify"]))),
        )


class InvoicePayForm(CardActionForm):
    # The card the button named (one of the customer's, by its id in the portal) ...
    card = forms.IntegerField(min_value=1, required=False)
    # ... or the card just saved with the Payment Element for this payment.
    setup_intent = forms.RegexField(regex=r"^seti_[A-Za-z0-9_]{8,200}$", max_length=220, required=False)


class PauseForm(CardActionForm):
    # Checked against the policy's lengths by the rules (billing/pauses.py), which say why not.
    months = forms.IntegerField(min_value=1, max_value=24)


class ExtensionForm(forms.Form):
    """More time to pay: the date the customer can pay (the page's calendar is limited to what the
    policy allows; the service checks again) and, if they like, why."""

    until = forms.DateField(
        label=_("The date you can pay"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        error_messages={
            "required": _("Please pick the date you can pay."),
            "invalid": _("Please pick a date from the calendar."),
        },
    )
    reason = forms.CharField(
        label=_("Anything you'd like us to know (optional)"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
