"""The customer's Plan page journeys in a real browser: open the Plan page, pick a plan and when,
read the preview (an htmx fragment, from Stripe), confirm, and see the result, the dashboard and
the email; changes at the renewal are carried out by advancing the customer's test clock.

The portal runs on pytest-django's live server; Stripe is the emulator, which sends its signed
webhooks to the live server. Waits are on what the customer sees (Playwright's `expect`), or on
the emulator having delivered its webhooks, never on fixed sleeps."""

from __future__ import annotations

import datetime as dt
import pathlib
import re
import time
from typing import Any

import requests
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail

from billing import sync
from billing.models import BillingCustomer, Price, Subscription
from billing.money import format_money
from billing.services.customers import customer_create
from tests.portal_support import PASSWORD, make_customer, shown_day

from .conftest import LivePortal, Shopper, each_width, playwright_sync
from .test_portal_journey import _change_result, _log_in, _no_horizontal_scroll

expect = playwright_sync.expect

DAY = 86400
MONEY = re.compile(r"^€\d+\.\d\d$")


# --------------------------------------------------------------------------- what the customer does


def _open_plan_page(page: Any, *, via: str = "nav") -> None:
    if via == "dashboard":
        page.get_by_role("link", name="Change plan").click()
    else:
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Plan").click()
    expect(page.get_by_role("heading", name="Plan", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/plan/$"))
    # htmx (deferred) has run by then: a click before it would open the preview as a page of its own.
    page.wait_for_load_state("domcontentloaded")


def _preview(page: Any, price: str, when: str) -> Any:
    """Pick a plan and when; the preview comes into the Plan page (htmx), which stays where it is."""
    button = {"now": "Change now", "renewal": "Change at renewal"}[when]
    page.locator(f"[data-test=plans] [data-price={price}]").get_by_role("link", name=button).click()
    preview = page.locator("#plan-preview [data-test=preview]")
    expect(preview.get_by_role("button")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/plan/$"))
    return preview


def _dashboard(page: Any) -> None:
    page.get_by_role("link", name="Back to your subscription").click()
    expect(page.get_by_role("heading", name="Your subscription")).to_be_visible()


def _plan_on_dashboard(page: Any, *, plan: str, interval: str, price: str) -> None:
    expect(page.locator("[data-test=plan]")).to_have_text(plan)
    expect(page.locator("[data-test=interval]")).to_have_text(interval)
    expect(page.locator("[data-test=price]")).to_have_text(price)


def _mail(subject: str) -> Any:
    found = [m for m in mail.outbox if m.subject == subject]
    assert len(found) == 1, (subject, [m.subject for m in mail.outbox])
    return found[0]


def _money(amount: int) -> str:
    return format_money(amount=amount, currency="eur", language="en")


def _day(timestamp: int) -> str:
    return shown_day(dt.datetime.fromtimestamp(timestamp, tz=dt.UTC))


# --------------------------------------------------------------------------- arranging Stripe's side


def _customer_on_a_clock(portal: LivePortal, *, email: str, price: str) -> tuple[BillingCustomer, str]:
    """A customer on a test clock frozen at the present, who paid the first period of `price` with a
    good card; returns the customer and the clock's id."""
    api = portal.api
    user = get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    customer = customer_create(user=user, email=email, language="en")
    clock = api.v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())})
    stripe_customer = api.v1.customers.create(
        params={"email": email, "test_clock": clock.id, "metadata": {"portal_customer": str(customer.pk)}}
    )
    BillingCustomer.objects.filter(pk=customer.pk).update(
        stripe_customer_id=stripe_customer.id, currency="eur"
    )
    card = api.v1.payment_methods.attach("pm_card_visa", params={"customer": stripe_customer.id})
    api.v1.customers.update(
        stripe_customer.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    price_id = Price.objects.get(lookup_key=price).stripe_price_id
    api.v1.subscriptions.create(params={"customer": stripe_customer.id, "items": [{"price": price_id}]})
    sync.reconcile_customer(customer_id=customer.pk)
    return BillingCustomer.objects.get(pk=customer.pk), clock.id


def _advance_clock(portal: LivePortal, clock_id: str, *, to: int) -> None:
    """Advance the test clock and wait until it is ready and the portal has every webhook it sent
    (the portal processes each event as it receives it)."""
    portal.api.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": to})
    requests.post(
        f"{portal.emulator.url}/_emulator/test_clocks/{clock_id}/wait", json={"timeout": 30}, timeout=35
    ).raise_for_status()
    portal.webhooks_delivered()


def _stripe_subscription(portal: LivePortal, customer: BillingCustomer) -> Any:
    (subscription,) = portal.api.v1.subscriptions.list(params={"customer": customer.stripe_customer_id}).data
    return subscription


def _price_id(lookup_key: str) -> str:
    return str(Price.objects.get(lookup_key=lookup_key).stripe_price_id)


# --------------------------------------------------------------------------- the journeys


def test_monthly_to_yearly_now_charges_exactly_the_preview(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="ada@example.com", price="standard_month_eur")
    page = customer_browser.page
    _log_in(page, live_portal, email="ada@example.com")
    _open_plan_page(page, via="dashboard")
    expect(page.locator("[data-test=current-plan]")).to_have_text(
        "You are on Standard, billed monthly (€19.00)."
    )

    preview = _preview(page, "standard_year_eur", "now")
    expect(preview.get_by_role("heading")).to_have_text("Standard, billed yearly")
    charge = preview.locator("[data-test=preview-charge]")
    expect(charge).to_have_text(MONEY)
    shown_charge = charge.inner_text()
    shown_credit = preview.locator("[data-test=preview-credit]").inner_text()
    expect(preview.locator("[data-test=preview-next]")).to_contain_text("€190.00 on ")
    preview.get_by_role("button", name=f"Confirm and pay {shown_charge}").click()

    expect(_change_result(page)).to_have_text(
        f"Done: your plan is now Standard (yearly). {shown_charge} was charged."
    )
    # Stripe's side: one invoice for the change, paid, for exactly what the preview showed.
    (invoice,) = [
        i
        for i in live_portal.api.v1.invoices.list(params={"customer": customer.stripe_customer_id}).data
        if i.billing_reason == "subscription_update"
    ]
    assert invoice.status == "paid"
    assert _money(invoice.amount_paid) == shown_charge
    credited = -sum(line.amount for line in invoice.lines.data if line.amount < 0)
    assert f"−{_money(credited)}" == shown_credit
    assert invoice.amount_paid == 19000 - credited

    _dashboard(page)
    _plan_on_dashboard(page, plan="Standard", interval="Yearly", price="€190.00")
    live_portal.webhooks_delivered()
    message = _mail("Your plan is now Standard (yearly)")
    assert message.to == ["ada@example.com"]
    assert "from Standard (monthly) to Standard (yearly)" in message.body
    assert f"We charged {shown_charge} for the change" in message.body


def test_quarterly_to_monthly_at_renewal_is_scheduled_then_made_at_the_renewal(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer, clock = _customer_on_a_clock(
            live_portal, email="grace@example.com", price="standard_quarter_eur"
        )
    period_end = _stripe_subscription(live_portal, customer)["items"].data[0].current_period_end
    renewal = _day(period_end)
    page = customer_browser.page
    _log_in(page, live_portal, email="grace@example.com")
    _plan_on_dashboard(page, plan="Standard", interval="Quarterly", price="€54.00")
    _open_plan_page(page)

    preview = _preview(page, "standard_month_eur", "renewal")
    expect(preview.get_by_role("heading")).to_have_text("Standard, billed monthly")
    expect(preview.locator("[data-test=preview-charge]")).to_have_text("€0.00")
    expect(preview.locator("[data-test=preview-effective]")).to_have_text(renewal)
    expect(preview.locator("[data-test=preview-next]")).to_have_text(f"€19.00 on {renewal}")
    preview.get_by_role("button", name="Confirm the change").click()

    expect(_change_result(page)).to_have_text(
        f"Done: your plan changes to Standard (monthly) on {renewal}. Nothing is charged now."
    )
    _dashboard(page)
    expect(page.locator("[data-test=scheduled-change]")).to_have_text(
        f"Changes to Standard (monthly) on {renewal}."
    )
    _plan_on_dashboard(page, plan="Standard", interval="Quarterly", price="€54.00")
    live_portal.webhooks_delivered()
    message = _mail(f"Your plan changes to Standard (monthly) on {renewal}")
    assert f"On {renewal} your subscription changes to Standard (monthly)" in message.body
    assert "Nothing is charged for the change now." in message.body

    # A day past the renewal: Stripe moves the subscription to the monthly price and charges it.
    _advance_clock(live_portal, clock, to=period_end + DAY)
    page.reload()
    _plan_on_dashboard(page, plan="Standard", interval="Monthly", price="€19.00")
    expect(page.locator("[data-test=scheduled-change]")).to_have_count(0)
    subscription = _stripe_subscription(live_portal, customer)
    with live_portal.quiet():
        assert subscription["items"].data[0].price.id == _price_id("standard_month_eur")
    # The schedule's second phase runs (it is released at its end, as Stripe does).
    schedule = live_portal.api.v1.subscription_schedules.retrieve(subscription.schedule)
    assert (schedule.status, schedule.current_phase.start_date) == ("active", period_end)
    # Made, the change is confirmed once more, however many of Stripe's events told of it.
    made = _mail("Your plan is now Standard (monthly)")
    assert "changed from Standard (quarterly) to Standard (monthly) at its renewal" in made.body


def test_upgrade_with_a_good_card_is_charged_and_made(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="linus@example.com", price="standard_month_eur")
    page = customer_browser.page
    _log_in(page, live_portal, email="linus@example.com")
    _open_plan_page(page)

    preview = _preview(page, "pro_month_eur", "now")
    expect(preview.get_by_role("heading")).to_have_text("Pro, billed monthly")
    charge = preview.locator("[data-test=preview-charge]")
    expect(charge).to_have_text(MONEY)
    shown_charge = charge.inner_text()
    preview.get_by_role("button", name=f"Confirm and pay {shown_charge}").click()

    expect(_change_result(page)).to_have_text(
        f"Done: your plan is now Pro (monthly). {shown_charge} was charged."
    )
    (invoice,) = [
        i
        for i in live_portal.api.v1.invoices.list(params={"customer": customer.stripe_customer_id}).data
        if i.billing_reason == "subscription_update"
    ]
    assert (invoice.status, _money(invoice.amount_paid)) == ("paid", shown_charge)
    _dashboard(page)
    _plan_on_dashboard(page, plan="Pro", interval="Monthly", price="€49.00")
    live_portal.webhooks_delivered()
    message = _mail("Your plan is now Pro (monthly)")
    assert "from Standard (monthly) to Pro (monthly)" in message.body
    assert f"We charged {shown_charge}" in message.body


def test_upgrade_the_bank_declines_leaves_the_plan_as_it_was(
    live_portal: LivePortal, customer_browser: Shopper, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="mona@example.com", price="standard_month_eur")
        standard = _price_id("standard_month_eur")
    # The first month was paid with a good card; the card that is now the default declines.
    api = live_portal.api
    (good,) = api.v1.customers.payment_methods.list(customer.stripe_customer_id).data
    failing = api.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": customer.stripe_customer_id}
    )
    api.v1.customers.update(
        customer.stripe_customer_id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    api.v1.payment_methods.detach(good.id)
    page = customer_browser.page
    _log_in(page, live_portal, email="mona@example.com")
    _open_plan_page(page)

    preview = _preview(page, "pro_month_eur", "now")
    charge = preview.locator("[data-test=preview-charge]")
    expect(charge).to_have_text(MONEY)
    shown_charge = charge.inner_text()
    preview.get_by_role("button", name=f"Confirm and pay {shown_charge}").click()

    result = _change_result(page)
    expect(result).to_contain_text(
        f"The bank declined the payment of {shown_charge}, so your plan has not changed to Pro (monthly)."
    )
    expect(result).to_contain_text("your bank can tell you why, or you can use a different card.")
    page.screenshot(path=str(artifacts / "plan-upgrade-declined.png"), full_page=True)
    assert _stripe_subscription(live_portal, customer)["items"].data[0].price.id == standard

    page.get_by_role("link", name="Pay with another card").click()
    expect(page.get_by_role("heading", name="Add a card")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    _plan_on_dashboard(page, plan="Standard", interval="Monthly", price="€19.00")
    live_portal.webhooks_delivered()
    message = _mail("Your change to Pro (monthly) was not paid")
    assert f"The bank declined the payment of {shown_charge} for your change to Pro (monthly)" in message.body
    assert "your bank can tell you why, or you can use a different card." in message.body
    assert not [m for m in mail.outbox if m.subject.startswith("Your plan is now")]


def test_downgrade_scheduled_for_the_renewal_can_be_cancelled(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="hedy@example.com", price="standard_month_eur")
        renewal = _day(int(Subscription.objects.get(customer=customer).current_period_end.timestamp()))
    page = customer_browser.page
    _log_in(page, live_portal, email="hedy@example.com")
    _open_plan_page(page)
    # A downgrade is only offered at the renewal.
    basic = page.locator("[data-test=plans] [data-price=basic_month_eur]")
    expect(basic.get_by_role("link", name="Change now")).to_have_count(0)

    preview = _preview(page, "basic_month_eur", "renewal")
    expect(preview.locator("[data-test=preview-charge]")).to_have_text("€0.00")
    expect(preview.locator("[data-test=preview-effective]")).to_have_text(renewal)
    expect(preview.locator("[data-test=preview-next]")).to_have_text(f"€9.00 on {renewal}")
    preview.get_by_role("button", name="Confirm the change").click()
    expect(_change_result(page)).to_have_text(
        f"Done: your plan changes to Basic (monthly) on {renewal}. Nothing is charged now."
    )
    _dashboard(page)
    expect(page.locator("[data-test=scheduled-change]")).to_have_text(
        f"Changes to Basic (monthly) on {renewal}."
    )
    _plan_on_dashboard(page, plan="Standard", interval="Monthly", price="€19.00")

    _open_plan_page(page)
    scheduled = page.locator("[data-test=scheduled-change]")
    expect(scheduled).to_contain_text(f"Changes to Basic (monthly) on {renewal}.")
    expect(page.locator("[data-price=basic_month_eur]")).to_contain_text("Scheduled")
    scheduled.get_by_role("button", name="Cancel this change").click()
    expect(_change_result(page)).to_have_text(
        "Done: the change to Basic (monthly) is cancelled. Your plan stays as it is."
    )
    assert _stripe_subscription(live_portal, customer).schedule is None
    _dashboard(page)
    expect(page.locator("[data-test=scheduled-change]")).to_have_count(0)
    _plan_on_dashboard(page, plan="Standard", interval="Monthly", price="€19.00")

    live_portal.webhooks_delivered()
    _mail(f"Your plan changes to Basic (monthly) on {renewal}")
    message = _mail("You stay on Standard (monthly)")
    assert "The change to Basic (monthly) is cancelled" in message.body


def test_downgrade_scheduled_for_the_renewal_is_made_at_the_renewal(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer, clock = _customer_on_a_clock(
            live_portal, email="alan@example.com", price="standard_month_eur"
        )
    period_end = _stripe_subscription(live_portal, customer)["items"].data[0].current_period_end
    renewal = _day(period_end)
    page = customer_browser.page
    _log_in(page, live_portal, email="alan@example.com")
    _open_plan_page(page)
    preview = _preview(page, "basic_month_eur", "renewal")
    expect(preview.locator("[data-test=preview-next]")).to_have_text(f"€9.00 on {renewal}")
    preview.get_by_role("button", name="Confirm the change").click()
    expect(_change_result(page)).to_have_text(
        f"Done: your plan changes to Basic (monthly) on {renewal}. Nothing is charged now."
    )
    _dashboard(page)
    expect(page.locator("[data-test=scheduled-change]")).to_have_text(
        f"Changes to Basic (monthly) on {renewal}."
    )

    _advance_clock(live_portal, clock, to=period_end + DAY)
    page.reload()
    _plan_on_dashboard(page, plan="Basic", interval="Monthly", price="€9.00")
    expect(page.locator("[data-test=scheduled-change]")).to_have_count(0)
    subscription = _stripe_subscription(live_portal, customer)
    with live_portal.quiet():
        assert subscription["items"].data[0].price.id == _price_id("basic_month_eur")
    renewed = [
        i
        for i in live_portal.api.v1.invoices.list(params={"customer": customer.stripe_customer_id}).data
        if i.billing_reason == "subscription_cycle"
    ]
    assert [(i.status, i.amount_paid) for i in renewed] == [("paid", 900)]

    message = _mail(f"Your plan changes to Basic (monthly) on {renewal}")
    assert message.to == ["alan@example.com"]
    assert (
        f"You keep Standard (monthly) until the end of the period you have paid for. On {renewal}"
        in message.body
    )
    assert f"Your next payment: €9.00 on {renewal}." in message.body
    made = _mail("Your plan is now Basic (monthly)")
    assert "changed from Standard (monthly) to Basic (monthly) at its renewal" in made.body


def test_plan_page_and_preview_fit_a_phone_and_a_desktop(
    live_portal: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        make_customer(email="ada@example.com", price="standard_month_eur")
    for name, tab in each_width(portal_chromium):
        page = tab.page
        _log_in(page, live_portal, email="ada@example.com")
        _open_plan_page(page)
        expect(page.locator("[data-test=plans] .plan-tier")).to_have_count(3)
        page.screenshot(path=str(artifacts / f"plan-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
        preview = _preview(page, "standard_year_eur", "now")
        expect(preview.locator("[data-test=preview-charge]")).to_have_text(MONEY)
        preview.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / f"plan-preview-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
