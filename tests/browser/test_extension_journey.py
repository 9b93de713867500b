"""More time to pay in a real browser (PRODUCT F7): a declined customer asks for a date five days
on from the fix page, is agreed at once, sees "Extended until …" on every page while the
emulator's clock passes Stripe's old retry dates with no charge and no reminder, and is charged
once on the date; and a request beyond the policy goes to the staff queue, where staff approve it
in the admin with a reason and the customer is told.

As in the other browser tests: the live server, the emulator and its webhooks really flowing to
the live server; waits are on what the customer (or the staff member) sees.  The beat jobs are
called by the test at the moments the clock stands at, as Celery beat would call them."""

from __future__ import annotations

import datetime as dt
import pathlib
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.models import Delivery, Extension, RecoveryCase
from billing.money import customer_zone, format_day
from billing.services import extensions, recovery
from tests.billing.recovery_support import Renewal, set_decline

from .conftest import SIZES, LivePortal, each_width, open_tab, playwright_sync
from .test_portal_journey import _log_in, _no_horizontal_scroll
from .test_recovery_journey import _watch_scripts

expect = playwright_sync.expect

QUIET_OFF = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}


@pytest.fixture()
def recovering(live_portal: LivePortal, settings: Any) -> LivePortal:
    settings.BILLING_POLICY = QUIET_OFF
    settings.PORTAL_BASE_URL = live_portal.url
    return live_portal


def _failed(portal: LivePortal, emails: list[str]) -> dict[str, Renewal]:
    renewals = {}
    with portal.quiet():
        for email in emails:
            renewals[email] = Renewal(email=email)
            renewals[email].fail()
    portal.webhooks_delivered()
    return renewals


def _day(case: RecoveryCase, days: int) -> tuple[dt.date, str]:
    """The date `days` after the failure in the customer's calendar, and as the pages write it."""
    zone = customer_zone(case.customer.time_zone)
    day = case.opened_at.astimezone(zone).date() + dt.timedelta(days=days)
    with timezone.override(zone):
        return day, format_day(value=day, language="en")


def _charges(portal: LivePortal, customer: str) -> int:
    return len(portal.api.v1.charges.list(params={"customer": customer, "limit": 100}).data)


def test_a_declined_customer_asks_for_five_more_days_and_is_charged_on_the_date(
    recovering: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    renewals = _failed(recovering, [f"{name}-later@example.com" for name in SIZES])
    for name, tab in each_width(portal_chromium):
        _watch_scripts(tab)
        page = tab.page
        renewal = renewals[f"{name}-later@example.com"]
        with recovering.quiet():
            case = renewal.case
            stripe_customer = renewal.customer.stripe_customer_id or ""
        until, shown = _day(case, 5)
        charges = _charges(recovering, stripe_customer)

        # From the fix page: "Need more time?", then the calendar, limited by the policy.
        _log_in(page, recovering, email=renewal.customer.email)
        expect(page.locator("[data-test=recovery-banner]")).to_contain_text("didn't go through")
        page.locator("[data-test=recovery-banner]").get_by_role("link", name="Fix the payment").click()
        page.get_by_role("link", name="Ask for more time").click()
        expect(page.get_by_role("heading", name="More time to pay", level=1)).to_be_visible()
        date = page.get_by_label("The date you can pay")
        _first, first_shown = _day(case, 1)
        _last, last_shown = _day(case, 14)
        expect(page.locator("[data-test=extend-form]")).to_contain_text(
            f"Pick the date you can pay, from {first_shown} to {last_shown}."
        )
        expect(date).to_have_attribute("max", _last.isoformat())
        _no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / f"extension-ask-{name}.png"), full_page=True)
        date.fill(until.isoformat())
        page.get_by_label("Anything you'd like us to know (optional)").fill("Paid on the 25th")
        page.get_by_role("button", name="Ask for this date").click()

        # Agreed at once: the dashboard says until when, and every page does.
        expect(page.get_by_role("heading", name="Your subscription")).to_be_visible()
        expect(page.locator(".messages")).to_contain_text(
            "Done: we will charge the payment on the date you picked."
        )
        expect(page.locator("[data-test=extended-until]")).to_have_text(
            f"Extended until {shown}: we will charge €19.00 then, and your access continues as usual."
        )
        _no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / f"extension-agreed-{name}.png"), full_page=True)
        page.goto(f"{recovering.url}/app/")
        expect(page.locator("body")).not_to_contain_text("paused")

        # The clock passes Stripe's old retry dates and our reminders' days: nothing happens.
        with recovering.quiet():
            extension = Extension.objects.get(customer=renewal.customer)
            sent = Delivery.objects.filter(customer=renewal.customer, case__isnull=False).count()
        for day in (35, 37, 36.5 + 3):
            renewal.move(days=day)
            recovering.webhooks_delivered()
            with recovering.quiet():
                recovery.send_due_steps(now=renewal.at(day), limit=100)
        assert _charges(recovering, stripe_customer) == charges
        with recovering.quiet():
            assert Delivery.objects.filter(customer=renewal.customer, case__isnull=False).count() == sent

        # The date: the card has the money now; charged once, and thanked.
        set_decline(payment_method=renewal.card, code=None)
        with recovering.quiet():
            extensions.charge_due(now=extension.charge_at, limit=100)
            extensions.charge_due(now=extension.charge_at, limit=100)
        recovering.webhooks_delivered()
        assert _charges(recovering, stripe_customer) == charges + 1
        with recovering.quiet():
            case.refresh_from_db()
        assert (case.status, case.outcome) == ("recovered", "extension")
        page.goto(f"{recovering.url}/")
        expect(page.locator("[data-test=recovery-banner]")).to_have_count(0)
        page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("^Messages")).click()
        expect(page.locator("[data-test=message-list] li").first).to_contain_text(
            "Payment of €19.00 received. Thank you"
        )
        _no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / f"extension-paid-{name}.png"), full_page=True)
        assert tab.script_errors == [], f"errors in the page's scripts: {tab.script_errors}"


def test_a_request_beyond_the_policy_is_approved_by_staff_in_the_admin_and_the_customer_is_told(
    recovering: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    (renewal,) = _failed(recovering, ["queued@example.com"]).values()
    with recovering.quiet():
        case = renewal.case
        get_user_model().objects.create_superuser("staff@example.com", "staff@example.com", "staff-pass-1")
    until, shown = _day(case, 12)
    for name, tab in each_width(portal_chromium):
        page = tab.page
        _log_in(page, recovering, email="queued@example.com")
        if name == "phone":
            page.goto(f"{recovering.url}/extend/")
            page.get_by_label("The date you can pay").fill(until.isoformat())
            page.get_by_label("Anything you'd like us to know (optional)").fill("My salary comes on the 28th")
            page.get_by_role("button", name="Ask for this date").click()
            expect(page.locator(".messages")).to_contain_text(
                "Thank you. Our billing team will answer your request within a working day."
            )
            page.goto(f"{recovering.url}/extend/")
            expect(page.locator("[data-test=extend-running]")).to_have_text(
                f"Your request for more time, until {shown}, is with our billing team."
            )
            page.screenshot(path=str(artifacts / f"extension-queued-{name}.png"), full_page=True)

            # Staff, in the admin (a desktop): the queue, the request, approved with a reason.
            staff = open_tab(portal_chromium, **SIZES["desktop"])
            try:
                admin = staff.page
                admin.goto(f"{recovering.url}/admin/login/")
                admin.get_by_label("Email").or_(admin.get_by_label("Username")).fill("staff@example.com")
                admin.get_by_label("Password").fill("staff-pass-1")
                admin.get_by_role("button", name="Log in").click()
                admin.goto(f"{recovering.url}/admin/billing/extension/?status__exact=requested")
                row = admin.locator("#result_list tbody tr").filter(has_text="queued@example.com")
                expect(row).to_have_count(1)
                admin.screenshot(path=str(artifacts / "extension-staff-queue-desktop.png"), full_page=True)
                row.get_by_role("link", name="Decide").click()
                expect(admin.locator("body")).to_contain_text("My salary comes on the 28th")
                expect(admin.locator("body")).to_contain_text("more days than are approved at once")
                admin.get_by_label("Approve: the customer pays on the date they asked for").check()
                admin.get_by_label("Reason").fill("Customer for three years, always paid")
                admin.screenshot(path=str(artifacts / "extension-staff-decide-desktop.png"), full_page=True)
                admin.get_by_role("button", name="Save the decision").click()
                expect(admin.locator(".messagelist")).to_contain_text("approved")
            finally:
                admin.context.close()
            with recovering.quiet():
                extension = Extension.objects.get(customer=renewal.customer)
                assert (extension.status, extension.decided_by.email if extension.decided_by else "") == (
                    "approved",
                    "staff@example.com",
                )
                assert extension.decision_reason == "Customer for three years, always paid"
        # The customer is told (the in-app line) and every page says until when.
        page.goto(f"{recovering.url}/")
        expect(page.locator("[data-test=extended-until]")).to_contain_text(f"Extended until {shown}")
        page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("^Messages")).click()
        expect(page.locator("[data-test=message-list] li").first).to_contain_text(
            f"You have until {shown} to pay: we will charge €19.00 then."
        )
        _no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / f"extension-approved-{name}.png"), full_page=True)
