"""Every portal page, at a phone's width, as axe-core sees it: no serious or critical violation,
no tap target under 44 px, no sideways scrolling; forms are checked with their errors shown.
A screenshot of each page at that width is kept in artifacts/browser/pages/."""

from __future__ import annotations

import datetime as dt
import pathlib
import re
from collections.abc import Callable
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing import sync
from billing.models import Invoice, RecoveryCase
from billing.services.customers import customer_create
from tests.billing.recovery_support import Renewal, emails_to, links_in
from tests.portal_support import PASSWORD, make_customer

from .conftest import SIZES, LivePortal, axe_violations, open_tab, playwright_sync, small_targets
from .test_plan_journey import _open_plan_page, _preview
from .test_portal_journey import _log_in

expect = playwright_sync.expect


def _checked(page: Any, name: str, shots: pathlib.Path, problems: list[str]) -> None:
    page.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
    problems.extend(f"{name}: {v}" for v in axe_violations(page))
    problems.extend(f"{name}: small target {t}" for t in small_targets(page))
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    if width[0] > width[1]:
        problems.append(f"{name}: scrolls sideways ({width[0]}px in {width[1]}px)")


def test_every_page_is_accessible_at_a_phones_width(
    live_portal: LivePortal, portal_chromium: Any, artifacts: pathlib.Path, settings: Any
) -> None:
    # Recovery messages go out at once (whatever the hour), with links to the live server.
    settings.BILLING_POLICY = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}
    settings.PORTAL_BASE_URL = live_portal.url
    with live_portal.quiet():
        # A renewal declined for lack of funds: its fix page has both buttons, and the product
        # page is in its grace period.
        grace = Renewal(email="grace@example.com", decline="insufficient_funds")
        grace.fail()
        ada = make_customer(email="ada@example.com", price="standard_month_eur")
        # A second card: the cards page then offers the backup card, with its consent checkbox.
        live_portal.api.v1.payment_methods.attach(
            "pm_card_mastercard", params={"customer": ada.stripe_customer_id}
        )
        sync.reconcile_customer(customer_id=ada.pk)
        user = get_user_model().objects.create_user(
            username="tim@example.com", email="tim@example.com", password=PASSWORD
        )
        EmailAddress.objects.create(user=user, email="tim@example.com", verified=True, primary=True)
        customer_create(user=user, email="tim@example.com", language="en")
        # Owing: a first payment declined, its invoice open (the pay buttons and the pay page).
        alan = make_customer(email="alan@example.com", card="pm_card_chargeCustomerFail")
        (owed,) = Invoice.objects.filter(customer=alan, status=Invoice.Status.OPEN)
    live_portal.webhooks_delivered()
    (failed_email,) = [m for m in emails_to("grace@example.com") if links_in(m.body)]
    (link,) = links_in(failed_email.body)
    with live_portal.quiet():
        case = grace.case
    shots = artifacts / "pages"
    shots.mkdir(exist_ok=True)
    problems: list[str] = []
    tab = open_tab(portal_chromium, **SIZES["phone"])
    page = tab.page
    try:
        visits: list[tuple[str, Callable[[], None]]] = [
            ("login", lambda: page.goto(f"{live_portal.url}/accounts/login/")),
            ("login-with-errors", lambda: _wrong_password(page)),
            ("signup", lambda: page.goto(f"{live_portal.url}/accounts/signup/")),
            ("password-reset", lambda: page.goto(f"{live_portal.url}/accounts/password/reset/")),
            ("fix-from-link", lambda: page.goto(link)),
            ("link-problem", lambda: page.goto(f"{live_portal.url}/l/1u-{'x' * 22}/")),
        ]
        for name, visit in visits:
            visit()
            page.wait_for_load_state("domcontentloaded")
            _checked(page, name, shots, problems)

        _log_in(page, live_portal, email="ada@example.com")
        _checked(page, "dashboard", shots, problems)
        # "Log out" keeps the brand company on a phone, never a row of its own.
        rows = page.evaluate(
            "() => [document.querySelector('.brand'), document.querySelector('.logout button')]"
            ".map(el => { const r = el.getBoundingClientRect(); return r.top + r.height / 2; })"
        )
        if abs(rows[0] - rows[1]) > 4:
            problems.append(f"dashboard: 'Log out' is not on the brand's row ({rows})")
        page.goto(f"{live_portal.url}/cards/")
        expect(page.get_by_role("checkbox").first).to_be_visible()  # the backup card's consent
        for name, path in [
            ("cards", "/cards/"),
            ("add-card", "/cards/add/"),
            ("account-email", "/accounts/email/"),
        ]:
            page.goto(f"{live_portal.url}{path}")
            page.wait_for_load_state("domcontentloaded")
            _checked(page, name, shots, problems)
        _open_plan_page(page)
        _checked(page, "plan", shots, problems)
        preview = _preview(page, "pro_month_eur", "now")
        preview.scroll_into_view_if_needed()
        _checked(page, "plan-preview", shots, problems)
        preview.get_by_role("button").click()
        expect(page).to_have_url(re.compile(r"/changes/[0-9a-f-]{36}/$"))
        _checked(page, "change", shots, problems)
        for name, path in [("invoices", "/invoices/"), ("pause", "/pause/"), ("details", "/details/")]:
            page.goto(f"{live_portal.url}{path}")
            page.wait_for_load_state("domcontentloaded")
            _checked(page, name, shots, problems)
        page.get_by_label("VAT number (optional)").fill("SE123")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Nothing was saved. Please correct what is marked below.")).to_be_visible()
        _checked(page, "details-with-errors", shots, problems)
        page.goto(f"{live_portal.url}/cancel/")
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("alert")).to_be_visible()
        _checked(page, "cancel-with-errors", shots, problems)
        page.get_by_label("It costs too much").check()
        page.get_by_role("button", name="Continue").click()
        _checked(page, "cancel-offer", shots, problems)
        page.get_by_role("button", name="Log out").click()

        _log_in(page, live_portal, email="tim@example.com")
        _checked(page, "dashboard-no-subscription", shots, problems)
        for name, path in [
            ("plan-start", "/plan/start/?price=standard_month_eur"),
            (
                "plan-start-back-from-the-bank",
                "/plan/start/return/?price=standard_month_eur&redirect_status=failed",
            ),
        ]:
            page.goto(f"{live_portal.url}{path}")
            page.wait_for_load_state("domcontentloaded")
            _checked(page, name, shots, problems)
        page.get_by_role("button", name="Log out").click()

        _log_in(page, live_portal, email="grace@example.com")
        expect(page.locator("[data-test=recovery-banner]")).to_be_visible()
        _checked(page, "dashboard-recovery", shots, problems)
        for name, path, status in [
            ("fix", f"/fix/{case.pk}/", 200),
            ("messages", "/messages/", 200),
            ("workspace-grace", "/app/", 200),
        ]:
            response = page.goto(f"{live_portal.url}{path}")
            assert response is not None and response.status == status, name
            _checked(page, name, shots, problems)
        expect(page.locator("[data-test=workspace]")).to_have_attribute("data-level", "grace")
        # More time to pay: the calendar, and a date the policy does not allow.
        page.goto(f"{live_portal.url}/extend/")
        _checked(page, "extend", shots, problems)
        page.get_by_label("The date you can pay").fill("2099-01-01")
        page.get_by_role("button", name="Ask for this date").click()
        expect(page.locator("[data-test=extend-error]")).to_be_visible()
        _checked(page, "extend-with-errors", shots, problems)
        # The grace period over: the product says access is paused, and how to get it back.
        with live_portal.quiet():
            RecoveryCase.objects.filter(pk=case.pk).update(
                grace_ends_at=timezone.now() - dt.timedelta(days=1)
            )
        response = page.goto(f"{live_portal.url}/app/")
        assert response is not None and response.status == 402
        expect(page.locator("[data-test=access-restricted]")).to_have_attribute("data-level", "restricted")
        _checked(page, "workspace-restricted", shots, problems)
        page.get_by_role("button", name="Log out").click()

        _log_in(page, live_portal, email="alan@example.com")
        _checked(page, "dashboard-owing", shots, problems)
        for name, path in [
            ("invoices-owing", "/invoices/"),
            ("invoice-pay", f"/invoices/{owed.stripe_id}/pay/"),
            ("card-back-from-the-bank", "/cards/return/?redirect_status=failed"),
            ("cards-owing", "/cards/"),
        ]:
            page.goto(f"{live_portal.url}{path}")
            page.wait_for_load_state("domcontentloaded")
            _checked(page, name, shots, problems)
    finally:
        page.context.close()
    assert tab.blocked == [], f"requests left loopback: {tab.blocked}"
    assert problems == [], "\n".join(problems)


def _wrong_password(page: Any) -> None:
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").first).to_be_visible()
