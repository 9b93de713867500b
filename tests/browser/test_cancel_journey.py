"""Cancelling in a real browser: the survey, the honest alternative with its real price, the
cancel at the end of the paid period, and the undo; each with its confirmation on screen and in
the mailbox.  As in test_plan_journey: the live server, the emulator, webhooks really flowing,
waits on what the customer sees."""

from __future__ import annotations

import pathlib
import re
from typing import Any

from billing.models import Subscription
from tests.portal_support import make_customer, shown_day

from .conftest import LivePortal, Shopper, each_width, playwright_sync
from .test_plan_journey import _dashboard, _mail
from .test_portal_journey import _change_result, _log_in, _no_horizontal_scroll

expect = playwright_sync.expect


def _renewal(customer: Any) -> str:
    end = Subscription.objects.get(customer=customer).current_period_end
    assert end is not None
    return shown_day(end)


def _to_the_offer(page: Any, *, reason: str, comment: str = "") -> None:
    page.get_by_role("link", name="Cancel subscription").click()
    expect(page.get_by_role("heading", name="Cancel your subscription")).to_be_visible()
    page.get_by_label(reason).check()
    if comment:
        page.get_by_label("Anything you would like to tell us? (optional)").fill(comment)
    page.get_by_role("button", name="Continue").click()


def test_too_expensive_is_offered_the_cheaper_interval_declines_it_cancels_then_keeps(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="ada@example.com", price="basic_month_eur")
    renewal = _renewal(customer)
    page = customer_browser.page
    _log_in(page, live_portal, email="ada@example.com")
    _to_the_offer(page, reason="It costs too much", comment="Too much for now.")

    offer = page.locator("[data-test=offer]")
    expect(offer.get_by_role("heading")).to_have_text("Would a cheaper plan help?")
    expect(offer.locator("[data-test=offer-next]")).to_have_text(f"€90.00 on {renewal}")
    expect(offer.get_by_role("button", name="Switch to Basic (yearly) instead")).to_be_visible()
    page.get_by_role("button", name=f"Cancel my subscription on {renewal}").click()

    expect(_change_result(page)).to_have_text(
        f"Done: your subscription to Basic (monthly) ends on {renewal}. Nothing more is charged."
    )
    with live_portal.quiet():
        stripe_sub = live_portal.api.v1.subscriptions.retrieve(
            Subscription.objects.get(customer=customer).stripe_id
        )
    assert (stripe_sub.cancel_at_period_end, stripe_sub.cancellation_details.feedback) == (
        True,
        "too_expensive",
    )
    live_portal.webhooks_delivered()
    _mail(f"Your subscription ends on {renewal}")
    _dashboard(page)
    expect(page.locator("[data-test=status]")).to_have_text(f"Ends on {renewal}")

    page.get_by_role("button", name="Keep my subscription").click()
    expect(_change_result(page)).to_contain_text("Done: you keep your subscription to Basic (monthly).")
    live_portal.webhooks_delivered()
    _dashboard(page)
    expect(page.locator("[data-test=status]")).to_have_text("Active")
    with live_portal.quiet():
        assert live_portal.api.v1.subscriptions.retrieve(stripe_sub.id).cancel_at_period_end is False
    _mail("You keep your subscription to Basic (monthly)")


def test_taking_the_cheaper_interval_instead_of_cancelling(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="grace@example.com", price="basic_month_eur")
    renewal = _renewal(customer)
    page = customer_browser.page
    _log_in(page, live_portal, email="grace@example.com")
    _to_the_offer(page, reason="It costs too much")
    page.get_by_role("button", name="Switch to Basic (yearly) instead").click()
    expect(_change_result(page)).to_have_text(
        f"Done: your plan changes to Basic (yearly) on {renewal}. Nothing is charged now."
    )
    live_portal.webhooks_delivered()
    _dashboard(page)
    expect(page.locator("[data-test=status]")).to_have_text("Active")
    expect(page.locator("[data-test=scheduled-change]")).to_have_text(
        f"Changes to Basic (yearly) on {renewal}."
    )
    _mail(f"Your plan changes to Basic (yearly) on {renewal}")


def test_not_using_it_takes_the_pause_instead_of_cancelling(
    live_portal: LivePortal, customer_browser: Shopper
) -> None:
    with live_portal.quiet():
        customer = make_customer(email="margaret@example.com", price="standard_month_eur")
    page = customer_browser.page
    _log_in(page, live_portal, email="margaret@example.com")
    _to_the_offer(page, reason="I'm not using it right now")
    offer = page.locator("[data-test=offer]")
    expect(offer.get_by_role("heading")).to_have_text("Would a break help instead?")
    offer.get_by_role("radio", name=re.compile(r"2 months")).check()
    offer.get_by_role("button", name="Pause instead").click()

    result = _change_result(page)
    expect(result).to_contain_text("Done: your subscription is paused until ")
    resumes = re.search(r"paused until (.+?)\.", result.inner_text())
    assert resumes is not None
    with live_portal.quiet():
        stripe_sub = live_portal.api.v1.subscriptions.retrieve(
            Subscription.objects.get(customer=customer).stripe_id
        )
    assert (stripe_sub.status, stripe_sub.cancel_at_period_end) == ("paused", False)
    live_portal.webhooks_delivered()
    _mail(f"Your subscription is paused until {resumes.group(1)}")
    _dashboard(page)
    expect(page.locator("[data-test=status]")).to_have_text(f"Paused until {resumes.group(1)}")


def test_the_cancel_pages_fit_a_phone_and_a_desktop(
    live_portal: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    with live_portal.quiet():
        make_customer(email="alan@example.com", price="standard_month_eur")
    for name, tab in each_width(portal_chromium):
        page = tab.page
        _log_in(page, live_portal, email="alan@example.com")
        page.get_by_role("link", name="Cancel subscription").click()
        # Continuing without a reason says what is missing.
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("alert")).to_have_text(
            "Please choose a reason, so we know what to offer or improve."
        )
        page.screenshot(path=str(artifacts / f"cancel-survey-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
        page.get_by_label("It costs too much").check()
        page.get_by_role("button", name="Continue").click()
        expect(page.locator("[data-test=offer]")).to_be_visible()
        page.screenshot(path=str(artifacts / f"cancel-offer-{name}.png"), full_page=True)
        _no_horizontal_scroll(page)
