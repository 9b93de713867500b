"""The Plan page from the customer's side: the catalog with the current plan and the savings, a
preview fetched after the page, the confirm that charges what the preview showed, and what
happens with a tampered, foreign or stale preview, or with Stripe down."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from billing import tasks
from billing.models import BillingChange, Subscription
from tests.billing.conftest import StripeSwitch
from tests.portal_support import logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")


def _signed_preview(html: str) -> tuple[str, str]:
    preview = re.search(r'name="preview" value="([^"]+)"', html)
    token = re.search(r'name="token" value="([^"]+)"', html)
    assert preview and token, html
    return preview.group(1), token.group(1)


def test_the_plan_page_lists_the_catalog_with_the_current_plan_and_savings() -> None:
    customer = make_customer(email="page@example.com", price="standard_month_eur")
    html = logged_in(customer).get("/plan/").content.decode()
    assert "You are on Standard, billed monthly (€19.00)." in html
    assert "save 16 % (€38.00)" in html  # €190.00 a year against 12 × €19.00
    assert html.count('data-price="') == 9  # three tiers × three intervals, in euros
    assert "Your plan" in html and "5 users" in html


def test_preview_then_confirm_charges_exactly_what_was_shown(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="confirm@example.com", price="standard_month_eur")
    client = logged_in(customer)
    fragment = client.get(
        "/plan/preview/", {"price": "pro_month_eur", "when": "now"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    shown = re.search(r'data-test="preview-charge"><strong>([^<]+)</strong>', fragment)
    assert shown is not None and "<html" not in fragment
    preview, token = _signed_preview(fragment)
    with committed():
        response = client.post("/plan/confirm/", {"preview": preview, "token": token})
    change = BillingChange.objects.get(customer=customer, kind="plan_change")
    assert response.status_code == 302 and response["Location"] == f"/changes/{change.pk}/"
    invoice = stripe_client().v1.invoices.retrieve(change.result["invoice"])
    amount = f"€{invoice.amount_paid // 100}.{invoice.amount_paid % 100:02d}"
    assert shown.group(1) == amount
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "Done: your plan is now Pro (monthly)." in page


def test_a_tampered_or_foreign_preview_changes_nothing() -> None:
    mine = make_customer(email="mine-pv@example.com", price="standard_month_eur")
    theirs = make_customer(email="theirs-pv@example.com", price="standard_month_eur")
    their_client = logged_in(theirs)
    fragment = their_client.get("/plan/preview/", {"price": "pro_month_eur", "when": "now"}).content.decode()
    preview, token = _signed_preview(fragment)
    client = logged_in(mine)
    for value in (preview, preview[:-2] + "xx", "not-a-preview"):
        response = client.post("/plan/confirm/", {"preview": value, "token": token}, follow=True)
        assert "This preview is out of date" in response.content.decode()
    assert not BillingChange.objects.filter(kind="plan_change").exists()
    assert Subscription.objects.get(customer=theirs).price.lookup_key == "standard_month_eur"  # type: ignore[union-attr]


def test_with_stripe_down_the_preview_says_so_and_offers_no_confirm(stripe_down: StripeSwitch) -> None:
    customer = make_customer(email="down-pv@example.com", price="standard_month_eur")
    client = logged_in(customer)
    stripe_down()
    html = client.get("/plan/preview/", {"price": "pro_month_eur", "when": "now"}).content.decode()
    assert "We can't show the exact amount right now" in html
    assert 'name="preview"' not in html


def test_with_stripe_down_a_change_at_the_renewal_is_confirmed_and_made_once_it_is_back(
    stripe_down: StripeSwitch, committed: Callable[[], Any]
) -> None:
    customer = make_customer(email="down-renewal@example.com", price="standard_month_eur")
    client = logged_in(customer)
    stripe_down()
    html = client.get("/plan/preview/", {"price": "basic_month_eur", "when": "renewal"}).content.decode()
    # Nothing is charged now and the renewal charges the catalog's price: it may be confirmed.
    assert 'data-test="preview-from-catalog"' in html
    assert re.search(r'data-test="preview-next">€9.00 on ', html)
    preview, token = _signed_preview(html)
    with committed():
        client.post("/plan/confirm/", {"preview": preview, "token": token})
        client.post("/plan/confirm/", {"preview": preview, "token": token})
    (change,) = BillingChange.objects.filter(customer=customer, kind="plan_change")
    assert change.status == BillingChange.Status.PENDING
    stripe_down.back()
    with committed():
        tasks.apply_change(change_id=change.pk)
        tasks.apply_change(change_id=change.pk)
    change.refresh_from_db()
    assert change.status == BillingChange.Status.APPLIED, change.error_message
    sub = Subscription.objects.select_related("scheduled_price").get(customer=customer)
    assert sub.scheduled_price is not None and sub.scheduled_price.lookup_key == "basic_month_eur"
    schedules = stripe_client().v1.subscription_schedules.list(
        params={"customer": customer.stripe_customer_id}
    )
    assert len(schedules.data) == 1
    # With Stripe back, the preview is Stripe's again.
    html = client.get("/plan/preview/", {"price": "pro_month_eur", "when": "now"}).content.decode()
    assert 'data-test="preview-from-catalog"' not in html and 'name="preview"' in html


def test_a_refused_choice_says_why() -> None:
    customer = make_customer(email="refused-pv@example.com", price="pro_month_eur")
    html = (
        logged_in(customer)
        .get("/plan/preview/", {"price": "basic_month_eur", "when": "now"})
        .content.decode()
    )
    assert "A downgrade takes effect at the end of the period you have paid for." in html
    assert 'name="preview"' not in html


def test_the_dashboard_names_the_next_payment_of_a_scheduled_downgrade(committed: Callable[[], Any]) -> None:
    customer = make_customer(email="next-down@example.com", price="pro_month_eur")
    client = logged_in(customer)
    before = client.get("/").content.decode()
    assert re.search(r'data-test="next-charge">€49.00 on ', before)
    fragment = client.get("/plan/preview/", {"price": "basic_month_eur", "when": "renewal"}).content.decode()
    preview, token = _signed_preview(fragment)
    with committed():
        client.post("/plan/confirm/", {"preview": preview, "token": token})
    after = client.get("/").content.decode()
    assert re.search(r'data-test="next-charge">€9.00 on ', after)
    assert "Changes to Basic (monthly) on " in after
