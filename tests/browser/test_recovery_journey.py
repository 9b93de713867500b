"""Payment recovery in a real browser (PRODUCT D5/D9): a renewal declined because the card expired,
fixed from the failed-payment email's button without a password; and each fix page and each page
for a link that doesn't open, at a phone's width.

The emails: the journey reads them where a developer does, in the development mailbox
(/dev/mailbox/, portal/dev/mailbox.py), not in `django.core.mail.outbox`.  The mailbox is only
routed and served when DEBUG installs portal.dev, which the test settings don't, so this module
brings its own URLconf (the portal's URLs plus the mailbox's, as tests/test_demo.py does) through
pytest-django's `urls` marker, and the journey turns on DEBUG and Django's file backend for its
run.  The live server reads both per request, so the webhooks it serves write the emails to the
folder the mailbox reads, and the customer opens the email there and clicks its button in the
email's own HTML (the mailbox's sandboxed frame, whose links open in the window), as they would in
their mail program.  The other tests read the links from the locmem outbox: their subject is the
pages, not the mail.

As in the other browser tests: the live server, the emulator's Stripe.js, card form and bank page,
its webhooks really flowing to the live server; waits are on what the customer sees."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
import re
from typing import Any

import pytest
from django.urls import path
from django.utils import timezone

from billing.models import Delivery, Invoice, RecoveryCase
from billing.money import customer_zone, format_day
from portal.dev import mailbox
from portal.urls import urlpatterns as portal_urlpatterns
from tests.billing.recovery_support import Renewal, emails_to, links_in

from .conftest import SIZES, LivePortal, Shopper, each_width, open_tab, playwright_sync
from .test_portal_journey import (
    CARD_FRAME,
    _approve_3ds,
    _change_result,
    _log_in,
    _no_horizontal_scroll,
    _type_card,
)

expect = playwright_sync.expect

# The portal's URLs with the development mailbox, which portal.urls adds only when DEBUG installs portal.dev.
urlpatterns = [
    *portal_urlpatterns,
    path("dev/mailbox/", mailbox.mailbox, name="dev_mailbox"),
    path("dev/mailbox/<str:name>/", mailbox.message, name="dev_mailbox_message"),
]
pytestmark = pytest.mark.urls(__name__)

# Messages go out whatever the hour the tests run at (quiet hours have their own tests).
QUIET_OFF = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}
FAILED_SUBJECT = "Your payment of €19.00 didn't go through"
THANKS_SUBJECT = "Thank you: your payment went through"


@pytest.fixture()
def recovering(live_portal: LivePortal, settings: Any) -> LivePortal:
    """The live portal sending recovery messages at once, with links to itself."""
    settings.BILLING_POLICY = QUIET_OFF
    settings.PORTAL_BASE_URL = live_portal.url
    return live_portal


def _failed(portal: LivePortal, declines: dict[str, str]) -> dict[str, Renewal]:
    """A renewal declined with its code for each email, and their events delivered to the live
    server (which opens the cases and sends the first messages)."""
    renewals = {}
    with portal.quiet():
        for email, code in declines.items():
            renewals[email] = Renewal(email=email, decline=code)
            renewals[email].fail()
    portal.webhooks_delivered()
    return renewals


def _until(case: RecoveryCase) -> str:
    """The day access continues until, as the pages write it: in the customer's time zone (the
    portal's, for these customers), which near midnight is not the test's UTC day."""
    with timezone.override(customer_zone(case.customer.time_zone)):
        return format_day(value=case.grace_ends_at, language="en")


def _watch_scripts(tab: Shopper) -> None:
    """As the `customer_browser` fixture: the page's scripts and console stay free of errors."""

    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            tab.script_errors.append(message.text)

    tab.page.on("pageerror", lambda error: tab.script_errors.append(str(error)))
    tab.page.on("console", console)


# --------------------------------------------------------------------------- the journey


def _open_from_the_mailbox(page: Any, portal: LivePortal, *, to: str, subject: str) -> Any:
    """The development mailbox's page of the one email `to` got with `subject`."""
    page.goto(f"{portal.url}/dev/mailbox/")
    mail = page.locator("[data-test=mail]").filter(has_text=f"To {to}").filter(has_text=subject)
    expect(mail).to_have_count(1)
    mail.get_by_role("link", name=subject).click()
    expect(page.get_by_role("heading", name=subject, level=2)).to_be_visible()
    return page.frame_locator("iframe.mail-html")


def test_a_customer_whose_card_expired_fixes_the_payment_from_the_emails_button(
    recovering: LivePortal,
    portal_chromium: Any,
    artifacts: pathlib.Path,
    settings: Any,
    tmp_path: pathlib.Path,
) -> None:
    """The issue's journey, once at a phone's size and once at a desktop's (a customer each): the
    failed-payment email in the mailbox, its "Add a new card" button, the fix page without a
    login, a new card through 3-D Secure, the invoice paid and the case recovered, the thank-you."""
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path / "mailbox"
    renewals = _failed(recovering, {f"{name}@example.com": "expired_card" for name in SIZES})
    for name, tab in each_width(portal_chromium):
        _watch_scripts(tab)
        page = tab.page
        email = f"{name}@example.com"
        renewal = renewals[email]
        with recovering.quiet():
            case = renewal.case
            until = _until(case)
            (unpaid,) = Invoice.objects.filter(customer=renewal.customer, status=Invoice.Status.OPEN)
        assert (case.status, case.family, case.hard) == ("open", "card_replaced", True)

        # The email, in the mailbox; its button is the link, for a new card.
        message = _open_from_the_mailbox(page, recovering, to=email, subject=FAILED_SUBJECT)
        button = message.get_by_role("link", name="Add a new card")
        expect(button).to_have_attribute("href", re.compile(rf"^{re.escape(recovering.url)}/l/[0-9a-z]+u-"))
        button.click()

        # The fix page, without a login: what happened, until when, the one button.
        expect(page).to_have_url(re.compile(r"/l/[0-9a-z]+u-[A-Za-z0-9_-]{22}/$"))
        link = page.url
        expect(
            page.get_by_role("heading", name="Your card has expired or been replaced", level=1)
        ).to_be_visible()
        expect(page.locator("[data-test=fix-what]")).to_contain_text(
            "Your payment of €19.00 didn't go through. The card we have for you can't be charged any more."
        )
        expect(page.locator("[data-test=fix-dates]")).to_contain_text(f"Your access continues until {until}.")
        expect(page.get_by_role("button", name="Log out")).to_have_count(0)  # nobody logged in
        expect(page.locator("[data-test=recovery-banner]")).to_have_count(0)
        _no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / f"recovery-fix-from-link-{name}.png"), full_page=True)

        # Its button: the card form, which says the open invoice will be paid with the card.
        page.get_by_role("button", name="Add a new card").click()
        expect(page).to_have_url(re.compile(r"/cards/add/$"))
        expect(page.get_by_role("heading", name="Add a card")).to_be_visible()
        expect(page.locator("[data-test=will-pay]")).to_have_text(
            "Your unpaid invoice of €19.00 will be paid with this card right away."
        )
        page.wait_for_load_state("domcontentloaded")
        card = page.frame_locator(CARD_FRAME)
        expect(card.get_by_label("Card number")).to_be_visible()
        _no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / f"recovery-card-{name}.png"), full_page=True)
        # In a phone's context Chromium loses every click on the page after a screenshot taken
        # while the cross-site card frame is on it (no pointer event reaches the page at all): the
        # page is loaded again, as the customer would see it, before they use it.
        page.reload()
        page.wait_for_load_state("domcontentloaded")
        card = page.frame_locator(CARD_FRAME)
        expect(card.get_by_label("Card number")).to_be_visible()

        # A card whose bank asks for 3-D Secure to save it; approved in the bank's frame.
        _type_card(card, "4000 0025 0000 3155")
        page.get_by_role("button", name="Save card").click()
        _approve_3ds(page)
        expect(_change_result(page)).to_have_text(
            "Done: Visa •••• 3155 is saved and is now your default card."
        )
        expect(page.locator("[data-test=invoice-result]")).to_have_text(
            "Your unpaid invoice of €19.00 is now paid. Thank you!"
        )
        _no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / f"recovery-result-{name}.png"), full_page=True)

        # Stripe agrees; its webhooks close the case as recovered by the new card.
        assert recovering.api.v1.invoices.retrieve(unpaid.stripe_id).status == "paid"
        recovering.webhooks_delivered()
        with recovering.quiet():
            case.refresh_from_db()
            unpaid.refresh_from_db()
            thanks = sorted(
                Delivery.objects.filter(customer=renewal.customer, message="payment_recovered").values_list(
                    "channel", flat=True
                )
            )
        assert (case.status, case.outcome) == ("recovered", "card_update")
        assert unpaid.status == Invoice.Status.PAID
        assert thanks == ["email", "in_app"]

        # The thank-you, in the mailbox.
        _open_from_the_mailbox(page, recovering, to=email, subject=THANKS_SUBJECT)
        expect(page.locator(".mail-text")).to_contain_text(
            "We have received your payment of €19.00. Thank you!"
        )
        # The link has done its job: it opens nothing any more, and says so kindly.
        page.goto(link)
        expect(page.get_by_role("heading", name="Nothing left to do", level=1)).to_be_visible()
        expect(page.get_by_role("button", name="Add a new card")).to_have_count(0)
        assert tab.script_errors == [], f"errors in the page's scripts: {tab.script_errors}"

    # Logged in, the thank-you is the newest line of the customer's messages, and no banner is left.
    tab = open_tab(portal_chromium, **SIZES["desktop"])
    try:
        page = tab.page
        _log_in(page, recovering, email="desktop@example.com")
        expect(page.locator("[data-test=recovery-banner]")).to_have_count(0)
        page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("^Messages")).click()
        expect(page.locator("[data-test=message-list] li").first).to_contain_text(
            "Payment of €19.00 received. Thank you; all is in order."
        )
    finally:
        page.context.close()


# --------------------------------------------------------------------------- each fix page


@dataclasses.dataclass(frozen=True)
class Family:
    """A decline family with texts and an action of its own (billing/declines.py), a code the
    emulator declines with to make it, and what its fix page must say."""

    name: str
    code: str
    title: str
    button: str
    # Offered beside the button when the card on file may be tried again.
    other_card: bool

    @property
    def email(self) -> str:
        return f"{self.name.replace('_', '-')}@example.com"


FAMILIES = [
    Family(
        "insufficient_funds",
        "insufficient_funds",
        "Your card didn't have enough funds",
        "Try the payment again",
        True,
    ),
    Family(
        "card_replaced", "expired_card", "Your card has expired or been replaced", "Add a new card", False
    ),
    Family(
        "authentication",
        "authentication_required",
        "Your bank wants you to approve this payment",
        "Approve the payment",
        True,
    ),
    Family(
        "wrong_details", "incorrect_cvc", "Some of your card details didn't match", "Add a new card", False
    ),
    Family(
        "try_later",
        "processing_error",
        "Your bank couldn't take the payment just now",
        "Try the payment again",
        True,
    ),
    Family("lost_stolen", "lost_card", "This card can't be used for the payment", "Add a new card", False),
    Family("generic", "generic_decline", "Your bank declined the payment", "Try the payment again", True),
]


def _link_of(family: Family) -> str:
    """The link in the failed-payment email the family's customer got (the locmem outbox)."""
    (message,) = [m for m in emails_to(family.email) if links_in(m.body)]
    (link,) = links_in(message.body)
    return link


def _fix_page_says(page: Any, family: Family, *, until: str) -> None:
    expect(page.get_by_role("heading", name=family.title, level=1)).to_be_visible()
    expect(page.locator("[data-test=fix-what]")).to_contain_text("Your payment of €19.00 didn't go through.")
    expect(page.locator("[data-test=fix-dates]")).to_contain_text(f"Your access continues until {until}.")
    expect(page.locator("[data-test=fix-action]")).to_have_text(family.button)
    expect(
        page.get_by_role("button", name=family.button).or_(page.get_by_role("link", name=family.button))
    ).to_be_visible()
    expect(page.locator("[data-test=fix-other-card]")).to_have_count(1 if family.other_card else 0)
    if family.other_card:
        expect(page.locator("[data-test=fix-other-card]")).to_have_text("Pay with another card")
    _no_horizontal_scroll(page)


def test_each_fix_page_and_each_link_problem_page_at_a_phones_width(
    recovering: LivePortal, portal_chromium: Any, artifacts: pathlib.Path
) -> None:
    """A renewal declined in each family: its fix page opened from the email's link (GET, nobody
    logged in), then, logged in, the dashboard's banner and the fix page it leads to; and the page
    for each reason a link does not open.  Screenshots in artifacts/browser/recovery/."""
    shots = artifacts / "recovery"
    shots.mkdir(exist_ok=True)
    renewals = _failed(recovering, {family.email: family.code for family in FAMILIES})
    with recovering.quiet():
        cases = {family.name: renewals[family.email].case for family in FAMILIES}
        untils = {name: _until(case) for name, case in cases.items()}
    assert {name: case.family for name, case in cases.items()} == {
        family.name: family.name for family in FAMILIES
    }
    links = {family.name: _link_of(family) for family in FAMILIES}

    for family in FAMILIES:
        case = cases[family.name]
        tab = open_tab(portal_chromium, **SIZES["phone"])
        _watch_scripts(tab)
        page = tab.page
        try:
            response = page.goto(links[family.name])
            assert response is not None and response.status == 200
            _fix_page_says(page, family, until=untils[family.name])
            expect(page.get_by_role("button", name="Log out")).to_have_count(0)
            page.screenshot(path=str(shots / f"fix-link-{family.name}-phone.png"), full_page=True)

            _log_in(page, recovering, email=family.email)
            banner = page.locator("[data-test=recovery-banner]")
            expect(banner).to_contain_text(
                f"Your payment of €19.00 didn't go through. Your access continues until {untils[family.name]}."
            )
            page.screenshot(path=str(shots / f"dashboard-banner-{family.name}-phone.png"), full_page=True)
            banner.get_by_role("link", name="Fix the payment").click()
            expect(page).to_have_url(f"{recovering.url}/fix/{case.pk}/")
            _fix_page_says(page, family, until=untils[family.name])
            expect(banner).to_have_count(0)  # the page it leads to says it all
            page.screenshot(path=str(shots / f"fix-{family.name}-phone.png"), full_page=True)
        finally:
            page.context.close()
        assert tab.blocked == [] and tab.csp_violations == [] and tab.script_errors == []

    # The pages of a link that doesn't open: changed, expired, done, or someone else's.
    head, signature = links["insufficient_funds"].rstrip("/").rsplit("-", 1)
    changed = f"{head}-{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}/"
    with recovering.quiet():
        Delivery.objects.filter(case=cases["card_replaced"]).update(
            sent_at=timezone.now() - dt.timedelta(days=60)
        )
        RecoveryCase.objects.filter(pk=cases["generic"].pk).update(status=RecoveryCase.Status.RECOVERED)
    problems = [
        ("invalid", changed, 404, "This link doesn't work"),
        ("expired", links["card_replaced"], 410, "This link has expired"),
        ("done", links["generic"], 410, "Nothing left to do"),
    ]
    tab = open_tab(portal_chromium, **SIZES["phone"])
    page = tab.page
    try:
        for problem, link, status, title in problems:
            response = page.goto(link)
            assert response is not None and response.status == status, problem
            expect(page.locator("[data-test=link-problem]")).to_have_attribute("data-problem", problem)
            expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
            expect(page.get_by_role("link", name="Log in")).to_be_visible()
            expect(page.locator("[data-test=fix-action]")).to_have_count(0)
            _no_horizontal_scroll(page)
            page.screenshot(path=str(shots / f"link-{problem}-phone.png"), full_page=True)
        # Logged in as another customer on this browser: the link is not theirs to use.
        _log_in(page, recovering, email=FAMILIES[0].email)
        response = page.goto(links["lost_stolen"])
        assert response is not None and response.status == 403
        expect(page.locator("[data-test=link-problem]")).to_have_attribute("data-problem", "other_account")
        expect(page.get_by_role("heading", name="This link is for another account", level=1)).to_be_visible()
        expect(page.get_by_text("Log out first, then open the link again.")).to_be_visible()
        expect(page.get_by_text(FAMILIES[5].email)).to_have_count(0)
        _no_horizontal_scroll(page)
        page.screenshot(path=str(shots / "link-other_account-phone.png"), full_page=True)
    finally:
        page.context.close()
    assert tab.blocked == [] and tab.csp_violations == []
