"""The customer's pause in a real browser: pause for two months from the dashboard, with the
resume date and what billing does shown first; the customer's test clock then passes the
reminder and the resume date, the beat job (run as the beat would, at the clock's time) reminds
once and resumes once, charged once, whatever is run or delivered twice; and resuming early, with
the charge previewed.  Waits are on what the customer sees or on the emulator's webhooks, never
on fixed sleeps."""

from __future__ import annotations

import datetime as dt
import pathlib
import re
import time
from typing import Any
from unittest import mock

from django.core import mail

from billing import sync
from billing.models import BillingChange, BillingCustomer, Subscription
from billing.money import format_money
from billing.services import pauses
from tests.portal_support import deliver_events, make_customer, shown_day

from .conftest import LivePortal, Shopper, each_width, playwright_sync
from .test_plan_journey import _advance_clock, _customer_on_a_clock, _mail
from .test_portal_journey import _change_result, _log_in, _no_horizontal_scroll

expect = playwright_sync.expect

DAY = 86400


def _day(value: dt.datetime) -> str:
    return shown_day(value)


def _money(amount: int) -> str:
    return format_money(amount=amount, currency="eur", language="en")


def _open_pause_page(page: Any) -> None:
    page.locator("[data-test=pause]").click()
    expect(page.get_by_role("heading", name="Pause your subscription")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/pause/$"))


def _subscription_charges(portal: LivePortal, customer: BillingCustomer) -> list[int]:
    invoices = portal.api.v1.invoices.list(params={"customer": customer.stripe_customer_id}).data
    return [i.amount_paid for i in invoices if i.billing_reason == "subscription_update"]


def _customer_ten_days_into_a_month(portal: LivePortal, *, email: str) -> tuple[BillingCustomer, str]:
    """Standard monthly, paid ten days ago on the customer's test clock, which is now at the
    present: the pause credits about two thirds of the month."""
    started = int(time.time()) - 10 * DAY
    with portal.quiet(), mock.patch("time.time", return_value=started):
        customer, clock = _customer_on_a_clock(portal, email=email, price="standard_month_eur")
    # Not in `quiet()`: the portal takes the clock's webhooks meanwhile.
    _advance_clock(portal, clock, to=int(time.time()))
    with portal.quiet():
        sync.reconcile_customer(customer_id=customer.pk)
    return customer, clock


def _back_to_dashboard(page: Any) -> None:
    page.get_by_role("link", name="Go to your dashboard").click()
    expect(page.get_by_role("heading", name="Your subscription")).to_be_visible()


def test_pause_for_two_months_then_the_clock_passes_the_date_and_it_resumes_once(
    live_portal: LivePortal, customer_browser: Shopper, settings: Any
) -> None:
    # The reminder is a message quiet hours hold back; this journey is about the dates, at any hour.
    settings.BILLING_POLICY = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}
    customer, clock = _customer_ten_days_into_a_month(live_portal, email="pia@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="pia@example.com")
    expect(page.locator("[data-test=status]")).to_have_text("Active")
    _open_pause_page(page)
    billing = page.locator("[data-test=pause-billing]")
    expect(billing).to_contain_text("While paused nothing is charged, and you can't use Standard.")
    expect(billing).to_contain_text("You keep your account, your settings, your cards and your invoices.")
    two = page.locator("[data-test=pause-form] [data-months='2']")
    expect(two).to_contain_text(re.compile(r"2 months:\s+resumes on .+, when we charge €\d+\.\d\d;"))
    two.get_by_role("radio").check()
    page.get_by_role("button", name="Pause my subscription").click()

    expect(_change_result(page)).to_contain_text("Done: your subscription is paused until ")
    with live_portal.quiet():
        pause = BillingChange.objects.get(customer=customer, kind="subscription_pause")
        result = pauses.PauseResult.model_validate(pause.result)
    until = _day(result.resumes_at)
    expect(_change_result(page)).to_contain_text(
        f"Done: your subscription is paused until {until}. Nothing is charged until then; on {until} it "
        f"resumes and we charge {_money(result.next_amount)}."
    )
    live_portal.webhooks_delivered()
    paused_mail = _mail(f"Your subscription is paused until {until}")
    assert paused_mail.to == ["pia@example.com"]
    assert f"we charge {_money(result.next_amount)} for a new period" in paused_mail.body
    _back_to_dashboard(page)
    expect(page.locator("[data-test=status]")).to_have_text(f"Paused until {until}")
    expect(page.locator("[data-test=resume]")).to_be_visible()
    expect(page.locator("[data-test=messages]")).to_contain_text(f"Subscription paused until {until}.")

    # Two days before the date: the reminder, once, however often the beat runs.
    before = result.resumes_at - dt.timedelta(days=2)
    _advance_clock(live_portal, clock, to=int(before.timestamp()))
    with live_portal.quiet():
        for _ in range(2):
            pauses.resume_due(now=before)
    reminder = _mail(f"Your subscription resumes on {until}")
    assert f"On {until} we charge {_money(result.next_amount)} to your card" in reminder.body
    assert _subscription_charges(live_portal, customer) == []

    # The date passes on Stripe's clock; the beat runs (twice), webhooks arrive (and again).
    after = result.resumes_at + dt.timedelta(minutes=1)
    _advance_clock(live_portal, clock, to=int(after.timestamp()))
    with live_portal.quiet():
        pauses.resume_due(now=after)
        pauses.resume_due(now=after)
    live_portal.webhooks_delivered()
    with live_portal.quiet():
        deliver_events()  # every event once more, as Stripe may
        assert BillingChange.objects.filter(customer=customer, kind="subscription_resume").count() == 1
        assert Subscription.objects.get(customer=customer).status == Subscription.Status.ACTIVE
    assert result.next_amount > 0
    assert _subscription_charges(live_portal, customer) == [result.next_amount]
    assert live_portal.api.v1.subscriptions.retrieve(pause.params["subscription"]).status == "active"

    page.reload()
    expect(page.locator("[data-test=status]")).to_have_text("Active")
    expect(page.locator("[data-test=messages]")).to_contain_text(
        f"Subscription active again; {_money(result.next_amount)} charged."
    )
    resumed = _mail("Your subscription is active again")
    assert "Your pause has ended: your subscription to Standard (monthly) is active again." in resumed.body
    assert f"We charged {_money(result.next_amount)} for the new period." in resumed.body
    subjects = [m.subject for m in mail.outbox]
    assert subjects.index(f"Your subscription resumes on {until}") < subjects.index(
        "Your subscription is active again"
    )


def test_resume_early_charges_the_preview_and_confirms_it(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    customer, _clock = _customer_ten_days_into_a_month(live_portal, email="ravi@example.com")
    page = customer_browser.page
    _log_in(page, live_portal, email="ravi@example.com")
    _open_pause_page(page)
    page.locator("[data-test=pause-form] [data-months='1']").get_by_role("radio").check()
    page.get_by_role("button", name="Pause my subscription").click()
    expect(_change_result(page)).to_contain_text("Done: your subscription is paused until ")
    _back_to_dashboard(page)

    page.locator("[data-test=resume]").click()
    expect(page.get_by_role("heading", name="Your pause")).to_be_visible()
    preview = page.locator("[data-test=resume-preview]")
    expect(preview).to_contain_text(
        re.compile(r"Resume today and we charge €\d+\.\d\d today for a new period")
    )
    button = page.get_by_role("button", name=re.compile(r"^Resume now and pay €\d+\.\d\d$"))
    shown = button.inner_text().removeprefix("Resume now and pay ")
    button.click()

    expect(_change_result(page)).to_contain_text(
        f"Done: your subscription to Standard (monthly) is active again. {shown} was charged."
    )
    live_portal.webhooks_delivered()
    assert [_money(amount) for amount in _subscription_charges(live_portal, customer)] == [shown]
    message = _mail("Your subscription is active again")
    assert "You resumed your subscription to Standard (monthly): it is active again." in message.body
    assert f"We charged {shown} for the new period." in message.body
    _back_to_dashboard(page)
    expect(page.locator("[data-test=status]")).to_have_text("Active")


def test_the_pause_page_fits_a_phone_and_a_desktop(
    live_portal: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        make_customer(email="ada@example.com", price="standard_month_eur")
    for name, tab in each_width(portal_chromium):
        page = tab.page
        _log_in(page, live_portal, email="ada@example.com")
        _open_pause_page(page)
        expect(page.locator("[data-test=pause-form] label.check")).to_have_count(3)
        page.screenshot(path=str(artifacts / f"pause-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
