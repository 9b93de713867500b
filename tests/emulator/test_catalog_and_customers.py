"""The catalog the portal syncs (tiers × intervals × currencies) and customer details."""

from __future__ import annotations

import pytest
import stripe


def test_prices_by_lookup_key_across_intervals_and_currencies(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Pro"})
    made = {}
    for currency, amount in (("eur", 3000), ("sek", 33000), ("usd", 3200)):
        for interval, count, factor in (("month", 1, 1), ("month", 3, 3), ("year", 1, 10)):
            key = f"pro_{interval}{count}_{currency}"
            made[key] = client.v1.prices.create(
                params={
                    "product": product.id,
                    "currency": currency,
                    "unit_amount": amount * factor,
                    "lookup_key": key,
                    "recurring": {"interval": interval, "interval_count": count},
                }
            )
    found = client.v1.prices.list(params={"lookup_keys": ["pro_month3_sek", "pro_year1_usd"]}).data
    assert {p.id for p in found} == {made["pro_month3_sek"].id, made["pro_year1_usd"].id}
    quarterly = client.v1.prices.retrieve(made["pro_month3_sek"].id)
    assert (quarterly.recurring.interval, quarterly.recurring.interval_count, quarterly.unit_amount) == (
        "month",
        3,
        99000,
    )
    assert len(client.v1.prices.list(params={"currency": "usd", "limit": 100}).data) == 3


def test_a_lookup_key_belongs_to_one_price_unless_transferred(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Basic"})
    params = {
        "product": product.id,
        "currency": "eur",
        "unit_amount": 1000,
        "lookup_key": "basic_month_eur",
        "recurring": {"interval": "month"},
    }
    old = client.v1.prices.create(params=params)  # type: ignore[arg-type]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create(params=params)  # type: ignore[arg-type]
    new = client.v1.prices.create(params={**params, "unit_amount": 1200, "transfer_lookup_key": True})  # type: ignore
    assert client.v1.prices.retrieve(old.id).lookup_key is None
    assert client.v1.prices.list(params={"lookup_keys": ["basic_month_eur"]}).data[0].id == new.id


def test_a_subscription_cannot_mix_currencies(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Pro"})
    eur = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "eur",
            "unit_amount": 3000,
            "recurring": {"interval": "month"},
        }
    )
    sek = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "sek",
            "unit_amount": 33000,
            "recurring": {"interval": "month"},
        }
    )
    customer = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": eur.id}],
            "default_payment_method": customer_default(client, customer.id),
        }
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": sub["items"].data[0].id, "price": sek.id}]}
        )
    assert "currency" in str(caught.value)


def customer_default(client: stripe.StripeClient, customer: str) -> str:
    return client.v1.customers.payment_methods.list(customer).data[0].id


def test_customer_details_locale_address_and_tax_ids(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(
        params={
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "preferred_locales": ["sv", "en"],
            "address": {
                "line1": "Drottninggatan 1",
                "city": "Stockholm",
                "postal_code": "111 51",
                "country": "SE",
            },
            "tax_id_data": [{"type": "eu_vat", "value": "SE556677889901"}],
        }
    )
    assert customer.preferred_locales == ["sv", "en"]
    assert (customer.address.city, customer.address.line2) == ("Stockholm", None)
    tax_ids = client.v1.customers.tax_ids.list(customer.id).data
    assert [(t.type, t.value, t.country) for t in tax_ids] == [("eu_vat", "SE556677889901", "SE")]
    client.v1.customers.tax_ids.delete(customer.id, tax_ids[0].id)
    assert client.v1.customers.tax_ids.list(customer.id).data == []
    updated = client.v1.customers.update(customer.id, params={"preferred_locales": ["nl"], "name": ""})
    assert (updated.preferred_locales, updated.name) == (["nl"], None)
    deleted = client.v1.customers.delete(customer.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.update(customer.id, params={"name": "x"})


def test_the_default_card_must_belong_to_the_customer(client: stripe.StripeClient) -> None:
    ada = client.v1.customers.create()
    bob = client.v1.customers.create()
    bobs_card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": bob.id})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.update(
            ada.id, params={"invoice_settings": {"default_payment_method": bobs_card.id}}
        )
    assert caught.value.param == "invoice_settings[default_payment_method]"
