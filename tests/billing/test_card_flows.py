"""Card changes from the customer's pages to Stripe and back: what Stripe ends up holding, what the
mirror shows, and what the customer is told."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from billing.models import BillingChange, BillingCustomer, Delivery, Invoice, PaymentMethod
from billing.money import customer_zone, format_day
from tests.billing.support import authenticate, confirmed_setup_intent, successful_charges
from tests.portal_support import logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")


def _add_card(
    client: Client, customer: BillingCustomer, card: str, committed: Callable[[], Any]
) -> BillingChange:
    setup_intent = confirmed_setup_intent(customer=customer, payment_method=card)
    with committed():
        response = client.post("/cards/confirm/", {"setup_intent": setup_intent})
    change = BillingChange.objects.filter(customer=customer).order_by("-created_at").first()
    assert change is not None
    assert response.status_code == 302 and response["Location"] == f"/changes/{change.pk}/"
    return change


def _stripe_defaults(customer: BillingCustomer) -> tuple[str, list[str]]:
    api = stripe_client()
    on_customer = api.v1.customers.retrieve(
        customer.stripe_customer_id
    ).invoice_settings.default_payment_method
    subs = api.v1.subscriptions.list(params={"customer": customer.stripe_customer_id}).data
    return str(on_customer), [str(s.default_payment_method) for s in subs]


def _card(customer: BillingCustomer, last4: str) -> PaymentMethod:
    return PaymentMethod.objects.get(customer=customer, last4=last4)


@pytest.fixture()
def subscriber() -> BillingCustomer:
    return make_customer(email="cards@example.com")


def test_add_card_saves_it_as_default_on_customer_and_subscription(
    subscriber: BillingCustomer, committed: Callable[[], Any]
) -> None:
    client = logged_in(subscriber)
    change = _add_card(client, subscriber, "pm_card_mastercard", committed)
    change.refresh_from_db()
    assert change.status == BillingChange.Status.APPLIED
    new = _card(subscriber, "4444")
    assert (
        stripe_client().v1.payment_methods.retrieve(new.stripe_id).customer == subscriber.stripe_customer_id
    )
    assert _stripe_defaults(subscriber) == (new.stripe_id, [new.stripe_id])
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "Done: Mastercard •••• 4444 is saved and is now your default card." in page
    dashboard = client.get("/").content.decode()
    assert "Mastercard</span> •••• 4444" in dashboard.split('data-test="default-card"')[1].split("</dd>")[0]
    note = Delivery.objects.get(channel=Delivery.Channel.EMAIL)
    assert (note.message, note.change_id, note.status) == ("card_added", change.pk, Delivery.Status.SENT)
    assert [m.to for m in mail.outbox] == [[subscriber.email]]


def test_a_setup_not_confirmed_or_not_ours_adds_nothing(subscriber: BillingCustomer) -> None:
    client = logged_in(subscriber)
    other = make_customer(email="someone@example.com", price=None)
    foreign = confirmed_setup_intent(customer=other)
    client.post("/cards/confirm/", {"setup_intent": foreign})
    unconfirmed = (
        stripe_client().v1.setup_intents.create(params={"customer": subscriber.stripe_customer_id}).id
    )
    client.post("/cards/confirm/", {"setup_intent": unconfirmed})
    assert sorted(BillingChange.objects.values_list("status", "error_code")) == [
        ("failed", "setup_intent_foreign"),
        ("failed", "setup_intent_requires_payment_method"),
    ]
    assert list(PaymentMethod.objects.filter(customer=subscriber).values_list("last4", flat=True)) == ["4242"]
    assert _stripe_defaults(subscriber)[0] == subscriber.default_payment_method_id


def test_set_default_moves_it_on_customer_and_subscription(
    subscriber: BillingCustomer, committed: Callable[[], Any]
) -> None:
    client = logged_in(subscriber)
    _add_card(client, subscriber, "pm_card_mastercard", committed)
    visa = _card(subscriber, "4242")
    assert _stripe_defaults(subscriber)[0] != visa.stripe_id
    with committed():
        response = client.post(f"/cards/{visa.pk}/default/", follow=True)
    assert "Done: Visa •••• 4242 is now your default card." in response.content.decode()
    assert _stripe_defaults(subscriber) == (visa.stripe_id, [visa.stripe_id])
    subscriber.refresh_from_db()
    assert subscriber.default_payment_method_id == visa.stripe_id
    assert subscriber.subscriptions.get().default_payment_method_id == visa.stripe_id
    # The email says what the card will pay next, from the subscription's state.
    renewal = subscriber.subscriptions.get().current_period_end
    with timezone.override(customer_zone("")):
        assert (
            f"Your next payment: €19.00 on {format_day(value=renewal, language='en')}."
            in mail.outbox[-1].body
        )
    assert list(
        Delivery.objects.filter(channel=Delivery.Channel.EMAIL)
        .order_by("created_at")
        .values_list("message", flat=True)
    ) == [
        "card_added",
        "card_default",
    ]


def test_an_expired_card_cannot_become_the_default(
    subscriber: BillingCustomer, committed: Callable[[], Any]
) -> None:
    client = logged_in(subscriber)
    _add_card(client, subscriber, "pm_card_mastercard", committed)
    visa = _card(subscriber, "4242")
    PaymentMethod.objects.filter(pk=visa.pk).update(exp_year=2020)
    response = client.post(f"/cards/{visa.pk}/default/", follow=True)
    assert "This card has expired." in response.content.decode()
    assert BillingChange.objects.filter(kind="card_set_default").count() == 0
    assert _stripe_defaults(subscriber)[0] != visa.stripe_id


def test_backup_card_needs_consent(subscriber: BillingCustomer, committed: Callable[[], Any]) -> None:
    client = logged_in(subscriber)
    _add_card(client, subscriber, "pm_card_mastercard", committed)
    visa = _card(subscriber, "4242")

    refused = client.post(f"/cards/{visa.pk}/backup/", follow=True)
    assert refused.redirect_chain == [("/cards/", 302)]
    assert "Please confirm that we may charge the backup card" in refused.content.decode()
    assert BillingChange.objects.filter(kind="card_set_backup").count() == 0
    assert (
        "backup_payment_method"
        not in stripe_client().v1.customers.retrieve(subscriber.stripe_customer_id).metadata
    )

    with committed():
        agreed = client.post(f"/cards/{visa.pk}/backup/", {"consent": "on"}, follow=True)
    assert "Done: Visa •••• 4242 is now your backup card." in agreed.content.decode()
    metadata = stripe_client().v1.customers.retrieve(subscriber.stripe_customer_id).metadata
    assert metadata["backup_payment_method"] == visa.stripe_id
    assert metadata["backup_consent_at"]
    subscriber.refresh_from_db()
    assert subscriber.backup_payment_method_id == visa.stripe_id
    assert subscriber.backup_consent_at is not None
    dashboard = client.get("/").content.decode()
    assert "Visa</span> •••• 4242" in dashboard.split('data-test="backup-card"')[1].split("</dd>")[0]


def test_the_default_card_is_not_also_the_backup(subscriber: BillingCustomer) -> None:
    client = logged_in(subscriber)
    visa = _card(subscriber, "4242")
    response = client.post(f"/cards/{visa.pk}/backup/", {"consent": "on"}, follow=True)
    assert "The default card can&#x27;t also be the backup card." in response.content.decode()
    assert BillingChange.objects.count() == 0


def test_only_card_of_a_live_subscription_cannot_be_removed(subscriber: BillingCustomer) -> None:
    client = logged_in(subscriber)
    visa = _card(subscriber, "4242")
    response = client.post(f"/cards/{visa.pk}/remove/", follow=True)
    assert "This is your only card and your subscription needs one." in response.content.decode()
    assert BillingChange.objects.count() == 0
    assert (
        stripe_client().v1.payment_methods.retrieve(visa.stripe_id).customer == subscriber.stripe_customer_id
    )
    assert PaymentMethod.objects.filter(pk=visa.pk).exists()


def test_default_card_cannot_be_removed_until_another_is_default(
    subscriber: BillingCustomer, committed: Callable[[], Any]
) -> None:
    client = logged_in(subscriber)
    _add_card(client, subscriber, "pm_card_mastercard", committed)
    mastercard = _card(subscriber, "4444")
    response = client.post(f"/cards/{mastercard.pk}/remove/", follow=True)
    assert "This is your default card. Make another card the default first." in response.content.decode()
    assert (
        stripe_client().v1.payment_methods.retrieve(mastercard.stripe_id).customer
        == subscriber.stripe_customer_id
    )


def test_remove_detaches_the_card_in_stripe(
    subscriber: BillingCustomer, committed: Callable[[], Any]
) -> None:
    client = logged_in(subscriber)
    _add_card(client, subscriber, "pm_card_mastercard", committed)
    visa = _card(subscriber, "4242")
    with committed():
        client.post(f"/cards/{visa.pk}/backup/", {"consent": "on"})
        response = client.post(f"/cards/{visa.pk}/remove/", follow=True)
    assert "Done: Visa •••• 4242 was removed." in response.content.decode()
    api = stripe_client()
    assert api.v1.payment_methods.retrieve(visa.stripe_id).customer is None
    assert [pm.id for pm in api.v1.customers.payment_methods.list(subscriber.stripe_customer_id).data] == [
        _card(subscriber, "4444").stripe_id
    ]
    # It was the backup card too: Stripe and the mirror forget that.
    metadata = api.v1.customers.retrieve(subscriber.stripe_customer_id).metadata.to_dict()
    assert not metadata.get("backup_payment_method")
    subscriber.refresh_from_db()
    assert subscriber.backup_payment_method_id == ""
    assert not PaymentMethod.objects.filter(pk=visa.pk).exists()
    assert "4242" not in client.get("/cards/").content.decode()


def test_without_a_live_subscription_the_only_card_can_go(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="nosub@example.com", price=None)
    card = _card(customer, "4242")
    with committed():
        logged_in(customer).post(f"/cards/{card.pk}/remove/")
    assert BillingChange.objects.get().status == BillingChange.Status.APPLIED
    assert stripe_client().v1.payment_methods.retrieve(card.stripe_id).customer is None


@pytest.fixture()
def owing() -> BillingCustomer:
    """A subscriber whose first payment (€19.00) was declined: the invoice is open."""
    customer = make_customer(email="owing@example.com", card="pm_card_chargeCustomerFail")
    assert Invoice.objects.get(customer=customer).status == Invoice.Status.OPEN
    return customer


def test_new_card_pays_the_open_invoice_at_once(owing: BillingCustomer, committed: Callable[[], Any]) -> None:
    client = logged_in(owing)
    assert "€19.00 will be paid with this card right away" in client.get("/cards/add/").content.decode()
    change = _add_card(client, owing, "pm_card_visa", committed)
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "Your unpaid invoice of €19.00 is now paid." in page
    invoice = Invoice.objects.get(customer=owing)
    assert invoice.status == Invoice.Status.PAID
    assert stripe_client().v1.invoices.retrieve(invoice.stripe_id).status == "paid"
    [charge] = successful_charges(customer=owing)
    assert charge.payment_method == _card(owing, "4242").stripe_id


def test_declined_card_for_the_open_invoice_says_why(
    owing: BillingCustomer, committed: Callable[[], Any]
) -> None:
    client = logged_in(owing)
    change = _add_card(client, owing, "pm_card_chargeCustomerFail", committed)
    change.refresh_from_db()
    # The card is saved (the bank accepted it for later use); only the payment was refused.
    assert change.status == BillingChange.Status.APPLIED
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "We tried to pay your unpaid invoice of €19.00 with this card, but the bank declined it." in page
    assert "your bank can tell you why, or you can use a different card." in page
    # The email says so too, the bad news first; it is one the customer can't opt out of.
    [email] = mail.outbox
    assert email.subject == "Your payment of €19.00 was declined"
    assert "declined" in email.body.split("\n\n")[1]
    assert Delivery.objects.get(channel=Delivery.Channel.EMAIL).category == "payment_critical"
    invoice = Invoice.objects.get(customer=owing)
    assert stripe_client().v1.invoices.retrieve(invoice.stripe_id).status == "open"
    assert successful_charges(customer=owing) == []
    assert "A payment of €19.00 has not gone through yet." in client.get("/").content.decode()


def test_payment_needing_3d_secure_asks_the_customer_then_ends_paid(
    owing: BillingCustomer, committed: Callable[[], Any]
) -> None:
    client = logged_in(owing)
    change = _add_card(client, owing, "pm_card_authenticationRequired", committed)
    change.refresh_from_db()
    invoice = Invoice.objects.get(customer=owing)
    stripe_invoice = stripe_client().v1.invoices.retrieve(invoice.stripe_id)
    assert stripe_invoice.status == "open"
    assert change.status == BillingChange.Status.APPLIED  # the card is saved
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "Your bank wants you to approve the payment of €19.00." in page

    # "Approve payment" asks us for what Stripe.js needs: read from Stripe at the click, it is the
    # invoice's own, and neither the page, the change nor any message ever held it.
    answer = client.post(f"/changes/{change.pk}/approve/")
    assert answer.status_code == 200
    client_secret = answer.json()["client_secret"]
    assert client_secret == stripe_invoice.confirmation_secret.client_secret
    assert client_secret not in page
    change.refresh_from_db()
    assert client_secret not in str(change.result)
    assert all(client_secret not in str(d.context) for d in Delivery.objects.all())

    # The customer approves in the bank's window (Stripe.js); the page then asks us to look again.
    assert authenticate(intent_id=client_secret.split("_secret_")[0]) == "succeeded"
    response = client.post(f"/changes/{change.pk}/recheck/", follow=True)
    assert "Your unpaid invoice of €19.00 is now paid." in response.content.decode()
    # Paid now: nothing left to approve.
    assert client.post(f"/changes/{change.pk}/approve/").status_code == 409
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID
    assert len(successful_charges(customer=owing)) == 1
