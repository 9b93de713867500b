"""The Details page: a bad value is refused by the form with a sentence that says what is wrong,
and nothing reaches Stripe; good details reach Stripe as one change (customer and VAT number),
also through an outage, applied once; preferences only the portal keeps are saved at once with the
same confirmation; and a customer touches only their own details."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from billing import changes
from billing.models import BillingChange, BillingCustomer, Delivery
from tests.billing.support import mirror_snapshot, stripe_counted
from tests.portal_support import logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")

Status = BillingChange.Status
GOOD = {
    "token": "page-view-details-1",
    "email": "billing@lovelace.example",
    "name": "Lovelace Analytical AB",
    "line1": "Storgatan 1",
    "line2": "",
    "postal_code": "111 22",
    "city": "Stockholm",
    "country": "SE",
    "tax_id": "SE 5566 7788 9901",
    "language": "en",
    "time_zone": "Europe/Stockholm",
    "phone": "",
    # Everything switchable left on.
    "notify": ["reminder:email", "reminder:sms", "information:email", "information:sms"],
}


@pytest.fixture()
def ada() -> BillingCustomer:
    return make_customer(email="ada@example.com")


def _errors(response: Any) -> dict[str, list[str]]:
    """The errors the page shows, by field."""
    html = response.content.decode()
    found: dict[str, list[str]] = {}
    for field, errors in re.findall(
        r'data-field="(\w+)">\s*<label[^>]*>[^<]*</label>\s*<ul class="errorlist"[^>]*>(.*?)</ul>', html, re.S
    ):
        found[field] = re.findall(r"<li>(.*?)</li>", errors)
    return found


def _stripe_customer(customer: BillingCustomer) -> Any:
    return stripe_client().v1.customers.retrieve(str(customer.stripe_customer_id))


def _tax_ids(customer: BillingCustomer) -> list[tuple[str, str]]:
    listed = stripe_client().v1.customers.tax_ids.list(str(customer.stripe_customer_id)).data
    return [(tax.type, tax.value) for tax in listed]


def _emails(customer: BillingCustomer) -> list[str]:
    return list(
        Delivery.objects.filter(customer=customer, channel=Delivery.Channel.EMAIL).values_list(
            "message", flat=True
        )
    )


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("changed", "field", "says"),
    [
        ({"tax_id": "SE12"}, "tax_id", "This is not a valid VAT number for its country."),
        ({"tax_id": "XX123456789"}, "tax_id", "A VAT number starts with the two letters of its country"),
        ({"tax_id": "DE123456789"}, "tax_id", "does not add up (its check digits are wrong)"),
        ({"phone": "12345"}, "phone", "This is not a valid phone number."),
        ({"phone": "+46 8 123 456 78"}, "phone", "Text messages need a mobile number."),
        ({"phone": "0701234567", "country": ""}, "phone", "Please write the number with its country code"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone", "Select a valid choice."),
        ({"line1": "", "country": "SE"}, "line1", "Please fill in the street and number"),
        ({"country": "QQ"}, "country", "Select a valid choice."),
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"notify": ["payment_critical:email"]}, "notify", None),
    ],
)
def test_bad_input_is_refused_by_the_form_and_nothing_is_sent_to_stripe(
    ada: BillingCustomer, settings: Any, changed: dict[str, Any], field: str, says: str | None
) -> None:
    client = logged_in(ada)
    stripe_before = _stripe_customer(ada).to_dict()
    before = mirror_snapshot()
    with stripe_counted(settings) as stripe:
        response = client.post("/details/", {**GOOD, **changed})
    assert stripe.calls == 0
    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing was saved. Please correct what is marked below." in page
    if says is not None:
        assert any(says in error for error in _errors(response)[field]), _errors(response)
        assert 'aria-invalid="true"' in page
    # What the customer typed is still there to correct: nothing is lost.
    assert 'value="Lovelace Analytical AB"' in page
    assert mirror_snapshot() == before
    assert _stripe_customer(ada).to_dict() == stripe_before
    assert mail.outbox == []


def test_a_vat_number_is_kept_compact_and_a_local_mobile_number_as_e164(ada: BillingCustomer) -> None:
    from portal.forms import DetailsForm

    form = DetailsForm({**GOOD, "phone": "070-123 45 67", "tax_id": "se 556677-8899 01"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone"] == "+46701234567"
    assert form.cleaned_data["tax_id"] == "SE556677889901"


# --------------------------------------------------------------------------- the change applied


def test_details_reach_stripe_as_one_change_and_the_vat_number_is_replaced_not_added(
    ada: BillingCustomer, committed: Callable[[], Any]
) -> None:
    client = logged_in(ada)
    with committed():
        response = client.post("/details/", GOOD, follow=True)
    page = response.content.decode()
    assert re.search(r"/changes/[0-9a-f-]{36}/$", response.redirect_chain[-1][0])
    assert "Done: your details and preferences are saved." in page
    assert "Storgatan 1, 111 22 Stockholm, SE" in page

    stripe = _stripe_customer(ada)
    assert (stripe.email, stripe.name, stripe.preferred_locales) == (
        "billing@lovelace.example",
        "Lovelace Analytical AB",
        ["en"],
    )
    assert stripe.address.to_dict() == {
        "line1": "Storgatan 1",
        "line2": None,
        "postal_code": "111 22",
        "city": "Stockholm",
        "state": None,
        "country": "SE",
    }
    assert _tax_ids(ada) == [("eu_vat", "SE556677889901")]
    ada.refresh_from_db()
    assert (ada.email, ada.address_city, ada.address_country, ada.tax_id) == (
        "billing@lovelace.example",
        "Stockholm",
        "SE",
        "SE556677889901",
    )
    assert ada.tax_id_stripe_id.startswith("txi_")
    change = BillingChange.objects.get(customer=ada, kind="customer_details")
    assert change.status == Status.APPLIED
    # Confirmed by email (to the new billing email) and in the portal's list.
    [email] = mail.outbox
    assert email.to == ["billing@lovelace.example"]
    assert email.subject == "Your details were changed"
    assert "VAT number: SE556677889901" in email.body
    assert Delivery.objects.filter(change=change, channel=Delivery.Channel.IN_APP).count() == 1

    # Another number replaces it; an empty one removes it, and the address goes with its fields.
    with committed():
        client.post("/details/", {**GOOD, "token": "page-view-details-2", "tax_id": "NL004495445B01"})
    assert _tax_ids(ada) == [("eu_vat", "NL004495445B01")]
    with committed():
        client.post(
            "/details/",
            {
                **GOOD,
                "token": "page-view-details-3",
                "tax_id": "",
                **dict.fromkeys(("line1", "postal_code", "city", "country"), ""),
            },
        )
    assert _tax_ids(ada) == []
    assert _stripe_customer(ada).address is None
    ada.refresh_from_db()
    assert (ada.tax_id, ada.tax_id_stripe_id, ada.address_line1) == ("", "", "")
    assert BillingChange.objects.filter(customer=ada, status=Status.APPLIED).count() == 3


def test_the_page_shows_the_details_as_saved(ada: BillingCustomer, committed: Callable[[], Any]) -> None:
    client = logged_in(ada)
    with committed():
        client.post("/details/", {**GOOD, "phone": "+46701234567", "notify": ["reminder:email"]})
    page = client.get("/details/").content.decode()
    for shown in ('value="Storgatan 1"', 'value="SE556677889901"', 'value="+46701234567"'):
        assert shown in page
    assert '<option value="SE" selected>Sweden</option>' in page
    assert 'value="reminder:email" checked' in page
    assert 'value="reminder:sms">' in page  # switched off
    # What can't be switched off is shown on and disabled, with the reason.
    assert page.count('checked disabled aria-describedby="locked-why"') == 2 * 3 + 2
    assert "are always sent" in page


def test_details_saved_while_stripe_is_down_are_pending_then_applied_once(
    ada: BillingCustomer, stripe_down: Any, committed: Callable[[], Any]
) -> None:
    client = logged_in(ada)
    stripe_down()
    with committed():
        response = client.post("/details/", GOOD, follow=True)
    assert "Pending: we are sending this to our payment provider." in response.content.decode()
    change = BillingChange.objects.get(customer=ada, kind="customer_details")
    assert change.status == Status.PENDING
    # The Details page says so, and shows what is being sent.
    page = client.get("/details/").content.decode()
    assert "Your latest change of these details is waiting for our payment provider." in page
    assert 'value="Storgatan 1"' in page
    assert mail.outbox == []

    stripe_down.back()
    with committed():
        changes.apply(change_id=change.pk)  # as the worker does
        changes.apply(change_id=change.pk)  # and again: a repeated job
    change.refresh_from_db()
    assert change.status == Status.APPLIED
    assert _stripe_customer(ada).address.city == "Stockholm"
    assert _tax_ids(ada) == [("eu_vat", "SE556677889901")]
    assert _emails(ada) == ["details_changed"]


# --------------------------------------------------------------------------- preferences only


def test_preferences_alone_are_saved_without_stripe_with_the_same_confirmation(
    ada: BillingCustomer, settings: Any, committed: Callable[[], Any]
) -> None:
    client = logged_in(ada)
    with committed():
        client.post("/details/", GOOD)  # the details first, so that only preferences change next
    mail.outbox.clear()
    prefs = {
        **GOOD,
        "token": "page-view-details-2",
        "phone": "+31 6 12345678",
        "time_zone": "Europe/Amsterdam",
        "notify": ["reminder:email", "information:email"],
    }
    with stripe_counted(settings) as stripe, committed():
        response = client.post("/details/", prefs, follow=True)
        again = client.post("/details/", prefs, follow=True)  # the same submit twice
    assert stripe.calls == 0
    assert response.redirect_chain == [("/details/", 302)]
    assert "Done: your details and preferences are saved." in response.content.decode()
    assert again.redirect_chain == [("/details/", 302)]
    ada.refresh_from_db()
    assert (ada.phone, ada.time_zone) == ("+31612345678", "Europe/Amsterdam")
    assert sorted(ada.opt_outs) == ["information:sms", "reminder:sms"]
    assert [m.subject for m in mail.outbox] == ["Your details were changed"]
    assert "Mobile number: +31612345678" in mail.outbox[0].body
    assert BillingChange.objects.filter(customer=ada).count() == 1


def test_a_language_chosen_on_the_page_is_the_portals_and_stripes(
    ada: BillingCustomer, committed: Callable[[], Any]
) -> None:
    with committed():
        response = logged_in(ada).post("/details/", {**GOOD, "language": "nl"})
    assert response.cookies["django_language"].value == "nl"
    ada.refresh_from_db()
    assert ada.language == "nl"
    assert _stripe_customer(ada).preferred_locales == ["nl"]


# --------------------------------------------------------------------------- isolation


def test_a_customer_changes_only_their_own_details(
    ada: BillingCustomer, committed: Callable[[], Any]
) -> None:
    bob = make_customer(email="bob@example.com", card="pm_card_mastercard", price="pro_month_eur")
    bob_before = _stripe_customer(bob).to_dict()
    with committed():
        logged_in(ada).post("/details/", GOOD)
    assert _stripe_customer(bob).to_dict() == bob_before
    assert _tax_ids(bob) == []
    bob.refresh_from_db()
    assert (bob.email, bob.address_line1, bob.tax_id) == ("bob@example.com", "", "")
    page = logged_in(bob).get("/details/").content.decode()
    assert "Storgatan" not in page and 'value="SE556677889901"' not in page and "lovelace" not in page
    # Ada's change is not Bob's to see.
    change = BillingChange.objects.get(customer__user__email="ada@example.com", kind="customer_details")
    assert logged_in(bob).get(f"/changes/{change.pk}/").status_code == 404


def test_the_page_needs_a_login() -> None:
    response = Client().get("/details/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
