"""Deep links: the link in a failed-payment message opens that customer's fix page without a
password; only the customer's click (a POST) acts, and only for the link's purpose and invoice.
A link that was changed, has expired, belongs to someone else or has done its job is refused with
a friendly page, and a crawler opening every link of every message changes nothing."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.apps import apps
from django.core import mail
from django.test import Client

from billing import channels
from billing.models import BillingChange, LinkEvent
from tests.billing.recovery_support import Renewal, emails_to, links_in
from tests.billing.support import confirmed_setup_intent
from tests.portal_support import emulator_events, logged_in, make_customer, post_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _setup(settings: Any, catalog: None) -> None:
    settings.BILLING_POLICY = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}
    channels.LocmemSmsBackend.outbox.clear()


def _failed(
    email: str, committed: Callable[[], Any], *, decline: str = "expired_card"
) -> tuple[Renewal, str]:
    renewal = Renewal(email=email, decline=decline, phone="+46701234567")
    renewal.fail()
    client = Client()
    for event in emulator_events():
        with committed():
            post_event(client, event)
    (message,) = [m for m in emails_to(email) if links_in(m.body)]
    (link,) = links_in(message.body)
    return renewal, link


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
        if number == 0:
            return digits


def _problem(response: Any) -> str:
    found = re.search(r'data-problem="([a-z_]+)"', response.content.decode())
    return found.group(1) if found else ""


def test_a_changed_link_is_refused_with_a_friendly_page_and_no_trace(committed: Callable[[], Any]) -> None:
    _renewal, link = _failed("tamper@example.com", committed)
    head, signature = link.rstrip("/").rsplit("-", 1)
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert "u-" in link  # an expired card: its link is for a new card
    other_purpose = link.replace("u-", "p-")  # the same delivery, asked to pay instead
    other_delivery = re.sub(r"/l/([0-9a-z]+)u-", lambda m: f"/l/{_base36(int(m.group(1), 36) + 1)}u-", link)
    for bad in (f"{head}-{flipped}/", other_purpose, other_delivery, link[:-5] + "/"):
        client = Client()
        page = client.get(bad)
        assert (page.status_code, _problem(page)) == (404, "invalid"), bad
        assert "Log in" in page.content.decode()
        assert client.post(bad).status_code == 404
    assert not LinkEvent.objects.exists()
    assert "sessionid" not in Client().cookies


def test_an_expired_link_says_so_and_offers_a_login(committed: Callable[[], Any]) -> None:
    _renewal, link = _failed("expired@example.com", committed)
    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=15)):
        page = Client().get(link)
        assert (page.status_code, _problem(page)) == (410, "expired")
        assert Client().post(link).status_code == 410
    assert not LinkEvent.objects.exists()


def test_a_link_opens_nothing_of_another_customers_and_nothing_else_of_its_own(
    committed: Callable[[], Any],
) -> None:
    renewal, link = _failed("owner@example.com", committed)
    other = make_customer(email="other@example.com", card="pm_card_chargeCustomerFail")
    # Logged in as someone else: the link is not theirs.
    page = logged_in(other).get(link)
    assert (page.status_code, _problem(page)) == (403, "other_account")
    assert "owner@example.com" not in page.content.decode()
    # The link's button opens its action for its customer, and nothing more of the account.
    browser = Client()
    with committed():
        assert browser.post(link)["Location"] == "/cards/add/"
    assert browser.get("/cards/add/").status_code == 200
    for elsewhere in ("/", "/cards/", "/invoices/", "/details/", "/plan/", "/messages/", "/app/"):
        assert browser.get(elsewhere)["Location"].startswith("/accounts/login/"), elsewhere
    other_invoice = other.invoices.first()
    assert other_invoice is not None
    assert browser.get(f"/invoices/{other_invoice.stripe_id}/pay/")["Location"].startswith("/accounts/login/")
    # Its own invoice's pay page is another purpose than this link's (a new card).
    assert browser.get(f"/invoices/{renewal.case.invoice_stripe_id}/pay/")["Location"].startswith(
        "/accounts/login/"
    )


def test_a_link_that_did_its_job_is_refused_for_a_second_action(committed: Callable[[], Any]) -> None:
    renewal, link = _failed("twice@example.com", committed)
    browser = Client()
    with committed():
        browser.post(link)
        added = browser.post(
            "/cards/confirm/",
            {
                "setup_intent": confirmed_setup_intent(
                    customer=renewal.customer, payment_method="pm_card_mastercard"
                )
            },
        )
    change = BillingChange.objects.get(customer=renewal.customer, kind="card_add")
    assert added["Location"] == f"/changes/{change.pk}/"
    assert browser.get(added["Location"]).status_code == 200  # its result stays on show
    assert renewal.case.status == "recovered"
    # A second action through the same link: refused.
    again = browser.post(
        "/cards/confirm/",
        {"setup_intent": confirmed_setup_intent(customer=renewal.customer, payment_method="pm_card_amex")},
    )
    assert again["Location"].startswith("/accounts/login/")
    assert BillingChange.objects.filter(customer=renewal.customer, kind="card_add").count() == 1
    reopened = Client().get(link)
    assert (reopened.status_code, _problem(reopened)) == (410, "done")
    assert LinkEvent.objects.filter(kind="used").count() == 1


def _database() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as values."""
    return {
        model._meta.label: sorted(tuple(row.values()) for row in model.objects.values())  # type: ignore[attr-defined]
        for model in apps.get_models()
    }


def test_a_crawler_following_every_link_of_every_message_changes_nothing(
    committed: Callable[[], Any],
) -> None:
    renewal, _link = _failed("crawled@example.com", committed)
    renewal.move(days=32 + 7.5)
    from billing.services import recovery

    # Two beat ticks on day 7: each sends a case's next step (day 3's reminder, then day 7's).
    for _tick in range(2):
        with committed():
            recovery.send_due_steps(now=renewal.at(32 + 7.5), limit=10)
    texts = [m.body for m in mail.outbox] + [
        alternative[0] for m in mail.outbox for alternative in getattr(m, "alternatives", [])
    ]
    texts += [text for _to, text in channels.LocmemSmsBackend.outbox]
    found = {link for text in texts for link in links_in(text)}
    assert len(found) >= 3  # the email, the reminder, the text message
    before = _database()
    crawler = Client()
    for link in sorted(found):
        page = crawler.get(link)
        assert page.status_code == 200
        # and what the page itself links to
        for href in re.findall(r'href="(/[^"]*)"', page.content.decode()):
            crawler.get(href)
        crawler.head(link)
    assert _database() == before
