"""The customer's details and preferences (the Details page).

Two kinds of thing, saved two ways:

- what Stripe keeps (billing email, name, address, VAT number, and the language Stripe writes its
  own emails and invoices in) is a change kind, `customer_details`, applied through the gateway
  with idempotency keys like every other write, so it waits out an outage and is applied once;
- what only the portal keeps (the language of its pages and messages, time zone, mobile number,
  which messages go on which channel) is saved at once: no outage can hold it up.

Either way the customer gets the same confirmation, on screen, by email and in the portal's list.
The rules of the values are billing/details.py (formats) and billing/policy.py (what may be
switched off); the page's form checks both before anything gets here.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from pydantic import StringConstraints

from billing import changes, gateway, messages, outbox, policy, sync
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.messages import Facts
from billing.models import BillingChange, BillingCustomer
from billing.policy import Category, Channel
from billing.services.customers import ensure_stripe_customer

Text = Annotated[str, StringConstraints(max_length=200)]
# Stripe's `eu_vat` value, compact: the country's two letters, then its digits and letters.
VatNumber = Annotated[str, StringConstraints(pattern=r"^([A-Z]{2}[0-9A-Z+*]{2,14})?$")]
Country = Annotated[str, StringConstraints(pattern=r"^([A-Z]{2})?$")]


# --------------------------------------------------------------------------- parameters and results


class DetailsParams(ChangeParams):
    """Everything Stripe keeps of the customer's details, as the customer wants it; each change
    carries all of it, so the newest one is the whole truth (the kind supersedes)."""

    email: Annotated[str, StringConstraints(min_length=3, max_length=254)]
    name: Text
    line1: Text = ""
    line2: Text = ""
    postal_code: Annotated[str, StringConstraints(max_length=20)] = ""
    city: Annotated[str, StringConstraints(max_length=100)] = ""
    country: Country = ""
    tax_id: VatNumber = ""
    language: Literal["en", "sv", "nl"] = "en"

    def address(self) -> gateway.Address | None:
        if not (self.line1 or self.city or self.country):
            return None
        return gateway.Address(
            line1=self.line1,
            line2=self.line2,
            postal_code=self.postal_code,
            city=self.city,
            country=self.country,
        )


class DetailsResult(ChangeResult):
    email: str
    name: str
    # One line, as an invoice prints it ("Storgatan 1, 111 22 Stockholm, SE"); "" for none.
    address: str
    tax_id: str
    # A VAT number Stripe had before was removed (replaced, or taken off).
    tax_id_removed: bool = False


@dataclasses.dataclass(frozen=True)
class Preferences:
    """What only the portal keeps.  `opt_outs` as billing.policy keeps them ("reminder:sms")."""

    language: str
    time_zone: str
    phone: str
    opt_outs: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Saved:
    """What a save of the Details page did: the change sent to Stripe, if anything Stripe keeps
    changed; whether anything only the portal keeps changed."""

    change: BillingChange | None
    preferences_changed: bool

    @property
    def anything(self) -> bool:
        return self.change is not None or self.preferences_changed


# --------------------------------------------------------------------------- messages


class DetailsFacts(Facts):
    """The customer's details as they are once the change is made (what the message lists)."""

    email: str
    name: str
    address: str
    tax_id: str
    phone: str
    time_zone: str


DETAILS_CHANGED = messages.declare(
    "details_changed",
    category=Category.CONFIRMATION,
    channels=(Channel.EMAIL, Channel.IN_APP),
    facts=DetailsFacts,
    action="portal:details",
    action_label=_("See your details"),
)


# --------------------------------------------------------------------------- reading the details


def one_line(address: gateway.Address | None) -> str:
    if address is None:
        return ""
    town = " ".join(part for part in (address.postal_code, address.city) if part)
    return ", ".join(part for part in (address.line1, address.line2, town, address.country) if part)


def current_details(*, customer: BillingCustomer) -> DetailsParams:
    """The customer's details as the mirror has them, in the shape of a change's parameters."""
    language = customer.language if customer.language in ("en", "sv", "nl") else "en"
    return DetailsParams.model_validate(
        {
            "email": customer.email or str(getattr(customer.user, "email", "") or ""),
            "name": customer.name,
            "line1": customer.address_line1,
            "line2": customer.address_line2,
            "postal_code": customer.address_postal_code,
            "city": customer.address_city,
            "country": customer.address_country,
            "tax_id": customer.tax_id,
            "language": language,
        },
        strict=False,
    )


def _facts(customer: BillingCustomer, result: DetailsResult) -> DetailsFacts:
    return DetailsFacts(
        email=result.email,
        name=result.name,
        address=result.address,
        tax_id=result.tax_id,
        phone=customer.phone,
        time_zone=customer.time_zone or settings.PORTAL_DISPLAY_TIME_ZONE,
    )


# --------------------------------------------------------------------------- the kind


def _vat_number(*, change: BillingChange, customer_id: str, value: str) -> tuple[gateway.TaxId | None, bool]:
    """Make `value` the customer's one VAT number at Stripe ("" for none); returns it and whether
    another was removed.  Read from Stripe first, so a retry after a crash halfway neither makes a
    second one nor deletes the new one; tax ids of other types (staff's) are left alone."""
    found = [tax for tax in gateway.tax_ids_list(customer_id=customer_id) if tax.type == "eu_vat"]
    kept = next((tax for tax in found if value and tax.value == value), None)
    removed = False
    for tax in found:
        if tax is not kept:
            gateway.tax_id_delete(
                customer_id=customer_id,
                tax_id=tax.id,
                idempotency_key=change.idempotency_key(f"tax-id-delete-{tax.id}"),
            )
            removed = True
    if value and kept is None:
        kept = gateway.tax_id_create_eu_vat(
            customer_id=customer_id, value=value, idempotency_key=change.idempotency_key("tax-id-create")
        )
    return kept, removed


@change_kind
class CustomerDetails(ChangeKind[DetailsParams, DetailsResult]):
    name = "customer_details"
    label = _("Change your details")
    template = "portal/changes/customer_details.html"
    Params = DetailsParams
    Result = DetailsResult
    messages = (DETAILS_CHANGED,)
    # The page's one-time key: a later save of the same values is a change of its own.
    dedupe = ()
    # Each change carries all the details: an older one still waiting would undo a newer one.
    supersedes = True

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: DetailsParams
    ) -> DetailsResult:
        stripe_id = ensure_stripe_customer(customer=customer)
        updated = gateway.customer_update_details(
            customer_id=stripe_id,
            email=params.email,
            name=params.name,
            address=params.address(),
            language=params.language,
            idempotency_key=change.idempotency_key("details"),
        )
        sync.customer_from_stripe(customer=customer, data=updated.raw, state_at=timezone.now())
        tax_id, removed = _vat_number(change=change, customer_id=stripe_id, value=params.tax_id)
        sync.customer_tax_id(
            customer=customer, stripe_id=tax_id.id if tax_id else "", value=tax_id.value if tax_id else ""
        )
        return DetailsResult(
            email=params.email,
            name=params.name,
            address=one_line(params.address()),
            tax_id=params.tax_id,
            tax_id_removed=removed,
        )

    def confirmation(
        self, *, change: BillingChange, params: DetailsParams, result: DetailsResult
    ) -> Confirmation:
        return Confirmation(DETAILS_CHANGED, _facts(change.customer, result))


DETAILS = changes.KINDS[CustomerDetails.name]


# --------------------------------------------------------------------------- what the portal calls


def _preferences_saved(customer: BillingCustomer, preferences: Preferences) -> bool:
    """Save what only the portal keeps; whether anything changed.  Opt-outs of what may not be
    switched off are dropped here too, whoever calls this."""
    switchable = set(policy.opt_outs_from(switched_on=set()))
    opt_outs = [key for key in preferences.opt_outs if key in switchable]
    zone = preferences.time_zone
    if not customer.time_zone and zone == settings.PORTAL_DISPLAY_TIME_ZONE:
        zone = ""  # the page showed the portal's default: keep following it
    wanted = {
        "language": preferences.language,
        "time_zone": zone,
        "phone": preferences.phone,
        "opt_outs": opt_outs,
    }
    changed = [field for field, value in wanted.items() if getattr(customer, field) != value]
    for field in changed:
        setattr(customer, field, wanted[field])
    if changed:
        customer.save(update_fields=changed)
    return bool(changed)


def details_save(
    *,
    customer: BillingCustomer,
    details: DetailsParams,
    preferences: Preferences,
    pending: BillingChange | None,
    requested_by: changes.Actor,
    key: str,
) -> Saved:
    """Save the Details page: the preferences at once, the details as a change if they differ
    from what Stripe has (or, with a change of them still `pending`, from what that one sends).
    `key` is the page's one-time token: the same submit twice is one change, one message."""
    baseline = (
        DetailsParams.model_validate(pending.params, strict=False)
        if pending is not None
        else current_details(customer=customer)
    )
    preferences_changed = _preferences_saved(customer, preferences)
    if details != baseline:
        # Recorded (and committed) on its own, then sent: a write is a row before it is a request.
        change = changes.request(
            customer=customer, kind=DETAILS, params=details, requested_by=requested_by, key=key
        )
        return Saved(change=change, preferences_changed=preferences_changed)
    if preferences_changed:
        # Nothing for Stripe: the confirmation the change would have sent, sent now.
        outbox.enqueue(
            customer=customer,
            message=DETAILS_CHANGED,
            about=f"details:{customer.pk}",
            step=f"preferences-{key}",
            facts=_facts(
                customer,
                DetailsResult(
                    email=baseline.email,
                    name=baseline.name,
                    address=one_line(baseline.address()),
                    tax_id=baseline.tax_id,
                ),
            ),
        )
    return Saved(change=None, preferences_changed=preferences_changed)
