"""A customer sees and touches only their own things: another customer's card or change is "not
found" (404, not 403, so its existence isn't revealed), and nothing of theirs shows on our pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from billing.models import BillingChange, BillingCustomer, PaymentMethod
from tests.billing.support import confirmed_setup_intent, mirror_snapshot
from tests.portal_support import logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")


@pytest.fixture()
def alice() -> BillingCustomer:
    return make_customer(email="alice@example.com", card="pm_card_visa", price="standard_month_eur")


@pytest.fixture()
def bob(committed: Callable[[], Any]) -> tuple[BillingCustomer, PaymentMethod, BillingChange]:
    """Bob pays for Pro (€49.00) with a Mastercard, and has just added an Amex."""
    bob = make_customer(email="bob@example.com", card="pm_card_mastercard", price="pro_month_eur")
    setup_intent = confirmed_setup_intent(customer=bob, payment_method="pm_card_amex")
    with committed():
        logged_in(bob).post("/cards/confirm/", {"setup_intent": setup_intent})
    change = BillingChange.objects.get(customer=bob)
    assert change.status == BillingChange.Status.APPLIED
    mastercard = PaymentMethod.objects.get(customer=bob, last4="4444")
    return bob, mastercard, change


def test_another_customers_card_is_not_found(
    alice: BillingCustomer, bob: tuple[BillingCustomer, PaymentMethod, BillingChange]
) -> None:
    bob_customer, bobs_card, _change = bob
    client = logged_in(alice)
    api = stripe_client()
    stripe_before = api.v1.customers.retrieve(bob_customer.stripe_customer_id).to_dict()
    before = mirror_snapshot()

    for action, data in (("default", {}), ("backup", {"consent": "on"}), ("remove", {})):
        response = client.post(f"/cards/{bobs_card.pk}/{action}/", data)
        assert response.status_code == 404, action

    assert mirror_snapshot() == before
    assert api.v1.customers.retrieve(bob_customer.stripe_customer_id).to_dict() == stripe_before
    assert api.v1.payment_methods.retrieve(bobs_card.stripe_id).customer == bob_customer.stripe_customer_id

    # The control: the same requests on Alice's own card are found (refused by policy, or taken).
    own = PaymentMethod.objects.get(customer=alice)
    assert client.post(f"/cards/{own.pk}/remove/", follow=True).status_code == 200
    assert client.post(f"/cards/{own.pk}/default/").status_code == 302


def test_another_customers_change_is_not_found(
    alice: BillingCustomer, bob: tuple[BillingCustomer, PaymentMethod, BillingChange]
) -> None:
    _bob, _card, bobs_change = bob
    client = logged_in(alice)
    before = mirror_snapshot()
    assert client.get(f"/changes/{bobs_change.pk}/").status_code == 404
    assert client.get(f"/changes/{bobs_change.pk}/", HTTP_HX_REQUEST="true").status_code == 404
    assert client.post(f"/changes/{bobs_change.pk}/recheck/").status_code == 404
    assert mirror_snapshot() == before
    # Bob himself sees it.
    assert logged_in(bobs_change.customer).get(f"/changes/{bobs_change.pk}/").status_code == 200


def test_nothing_of_another_customer_shows_on_our_pages(
    alice: BillingCustomer,
    bob: tuple[BillingCustomer, PaymentMethod, BillingChange],
    committed: Callable[[], Any],
) -> None:
    bob_customer, bobs_card, bobs_change = bob
    client = logged_in(alice)
    setup_intent = confirmed_setup_intent(customer=alice, payment_method="pm_card_visa_debit")
    with committed():
        own_change = client.post("/cards/confirm/", {"setup_intent": setup_intent})["Location"]
    bobs_things = [
        bob_customer.email,
        bob_customer.stripe_customer_id,
        "•••• 4444",
        "•••• 0005",  # his Amex
        "€49.00",
        f"/cards/{bobs_card.pk}/",
        str(bobs_change.pk),
        *[card.stripe_id for card in bob_customer.payment_methods.all()],
        *[invoice.stripe_id for invoice in bob_customer.invoices.all()],
    ]
    # Each page with something of Alice's own on it, to know it shows what it should.
    alices = {"/": "•••• 5556", "/cards/": "•••• 4242", "/cards/add/": "Save card", own_change: "•••• 5556"}
    for url, hers in alices.items():
        page = client.get(url).content.decode()
        assert hers in page, url
        for thing in bobs_things:
            assert thing not in page, (url, thing)
    assert "•••• 4444" in logged_in(bob_customer).get("/cards/").content.decode()  # the control


def test_pages_need_a_login() -> None:
    client = Client()
    for url in ("/", "/cards/", "/cards/add/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert client.post("/cards/1/remove/")["Location"].startswith("/accounts/login/")
