"""`make demo`: the demo customers show the states they are meant to show, and the development
mailbox shows what was sent as it was written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.test import Client
from django.urls import path

from billing import channels
from billing.messages import Rendered
from billing.models import Delivery, RecoveryCase, Subscription
from billing.policy import Channel
from portal.dev import mailbox
from portal.dev import seed as demo
from portal.urls import urlpatterns as portal_urlpatterns

# The portal's URLs with the development mailbox, which portal.urls adds only when DEBUG installs portal.dev.
urlpatterns = [
    *portal_urlpatterns,
    path("dev/mailbox/", mailbox.mailbox, name="dev_mailbox"),
    path("dev/mailbox/<str:name>/", mailbox.message, name="dev_mailbox_message"),
]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _client(email: str) -> Client:
    client = Client()
    assert client.login(username=email, password=demo.PASSWORD), email
    return client


def _page(email: str, url: str) -> str:
    response = _client(email).get(url)
    assert response.status_code == 200, (email, url)
    return response.content.decode()


def _dashboard(email: str) -> str:
    return _page(email, "/")


# What `make demo` sets (BILLING_POLICY in the Makefile): no quiet hours, so the seed's messages
# go at once whatever the hour.
DEMO_POLICY = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}
DEEP_LINK = re.compile(r"https?://[^\s\"'<>]+(/l/[0-9a-z]+[upa]-[A-Za-z0-9_-]{22}/)")


@pytest.fixture(autouse=True)
def _demo_policy(settings: Any) -> None:
    settings.BILLING_POLICY = DEMO_POLICY
    channels.LocmemSmsBackend.outbox.clear()


@pytest.mark.django_db
def test_demo_customers_log_in_and_see_their_state(catalog: None) -> None:
    logins = demo.seed()

    assert [login.email for login in logins] == [
        "ada@example.com",
        "grace@example.com",
        "alan@example.com",
        "frances@example.com",
        "hedy@example.com",
        "katherine@example.com",
        "joan@example.com",
        "radia@example.com",
        "margaret@example.com",
        "astrid@example.com",
        "edsger@example.com",
        "linus@example.com",
        "barbara@example.com",
        "dennis@example.com",
        "tim@example.com",
        "charles@example.com",
        "ken@example.com",
    ]
    ada = _text(_dashboard("ada@example.com"))
    assert "Active" in ada and "Visa •••• 4242" in ada and "Nothing to pay" in ada
    assert "expires before your next payment" in _text(_dashboard("grace@example.com"))
    alan = _text(_dashboard("alan@example.com"))
    assert "Payment failed" in alan and "Visa •••• 0341" in alan
    assert "Your payment of €19.00 didn't go through. Your access continues until" in alan
    _recovery_is_shown("alan@example.com")
    frances = RecoveryCase.objects.get(customer__email="frances@example.com")
    assert frances.hard and frances.retries_stopped_at is not None
    frances_fix = _text(_page("frances@example.com", f"/fix/{frances.pk}/"))
    assert "Add a new card" in frances_fix and "Try the payment again" not in frances_fix
    assert _client("frances@example.com").get("/app/").status_code == 200
    hedy = _client("hedy@example.com").get("/app/")
    assert hedy.status_code == 402 and "Your access is paused" in hedy.content.decode()
    hedy_steps = Delivery.objects.filter(customer__email="hedy@example.com", channel="email", status="sent")
    assert sorted(hedy_steps.values_list("message", flat=True)) == [
        "payment_failed_direct",
        "payment_failed_final",
        "payment_failed_friendly",
        "payment_failed_reminder",
    ]
    # The backup card paid Katherine's renewal: one message names it, with a link to fix the default.
    katherine = RecoveryCase.objects.get(customer__email="katherine@example.com")
    assert (katherine.status, katherine.outcome) == ("recovered", "backup_card")
    backup_mail = Delivery.objects.get(
        customer__email="katherine@example.com", message="backup_card_paid", channel="email"
    )
    assert backup_mail.status == "sent"
    assert not Delivery.objects.filter(customer__email="katherine@example.com", message="payment_recovered")
    assert "Your backup card Mastercard •••• 4444 paid €19.00" in _text(
        _page("katherine@example.com", "/messages/")
    )
    assert "Your backup card paid" in _text(_page("katherine@example.com", f"/fix/{katherine.pk}/"))
    # Joan has more time to pay: every page says until when; Radia's request waits for staff.
    joan = _text(_dashboard("joan@example.com"))
    assert "Extended until" in joan and "we will charge €19.00 then" in joan
    assert Delivery.objects.filter(customer__email="joan@example.com", message="extension_granted").exists()
    assert "is with our billing team" in _text(_page("radia@example.com", "/extend/"))
    assert "Paused until" in _text(_dashboard("margaret@example.com"))
    astrid = _dashboard("astrid@example.com")
    assert '<html lang="sv">' in astrid and "kr" in astrid
    assert '<html lang="nl">' in _dashboard("edsger@example.com")
    _reminders_before_charges_are_sent()

    linus = _text(_dashboard("linus@example.com"))
    assert "Pro" in linus and "Changes to Basic (monthly) on" in linus
    linus_plan = _text(_page("linus@example.com", "/plan/"))
    assert "Changes to Basic (monthly) on" in linus_plan and "Cancel this change" in linus_plan
    barbara = _text(_dashboard("barbara@example.com"))
    assert "Active" in barbara and "Basic" in barbara and "Visa •••• 3184" in barbara
    dennis = _text(_dashboard("dennis@example.com"))
    assert "Active" in dennis and "Visa •••• 0341" in dennis and "Nothing to pay" in dennis
    assert "Payment failed" not in dennis
    assert "You have no subscription yet." in _text(_dashboard("tim@example.com"))
    assert "You have no active subscription." in _text(_page("tim@example.com", "/plan/"))
    charles = _text(_dashboard("charles@example.com"))
    assert "Ended" in charles and "Visa •••• 4242" in charles
    assert "You have no active subscription." in _text(_page("charles@example.com", "/plan/"))
    ken = _text(_dashboard("ken@example.com"))
    assert "Ends on" in ken and "Keep my subscription" in ken

    staff = Client()
    assert staff.login(username=demo.ADMIN_EMAIL, password=demo.PASSWORD)
    assert staff.get("/admin/").status_code == 200


def _recovery_is_shown(email: str) -> None:
    """Alan's open case: the fix page, the in-app message, the day 0, 3 and 7 emails (each with a
    deep link that opens the fix page without a login) and the day-7 text message."""
    case = RecoveryCase.objects.get(customer__email=email, status="open")
    assert case.decline_codes == ["insufficient_funds"]
    fix = _text(_page(email, f"/fix/{case.pk}/"))
    assert "Your card didn't have enough funds" in fix.replace("&#x27;", "'")
    assert "Try the payment again" in fix
    listing = _text(_page(email, "/messages/"))
    assert "Messages 1 new" in listing and "your access continues until" in listing
    subjects = [m.subject for m in mail.outbox if m.to == [email]]
    assert subjects == [
        "Your payment of €19.00 didn't go through",
        "Reminder: your payment of €19.00 is still open",
        "Action needed: €19.00 is still unpaid",
    ]
    for sent in (m for m in mail.outbox if m.to == [email]):
        link = DEEP_LINK.search(sent.body)
        assert link is not None and "Try the payment again:" in sent.body, sent.subject
        page = Client().get(link.group(1))
        assert page.status_code == 200 and "Try the payment again" in page.content.decode()
    ((to, text),) = channels.LocmemSmsBackend.outbox
    assert to == demo.ALAN_PHONE and DEEP_LINK.search(text)


def _change(email: str, price: str, when: str) -> str:
    """Preview a plan change on the Plan page and confirm it; the text of the change's page."""
    client = _client(email)
    fragment = client.get("/plan/preview/", {"price": price, "when": when}).content.decode()
    preview = re.search(r'name="preview" value="([^"]+)"', fragment)
    token = re.search(r'name="token" value="([^"]+)"', fragment)
    assert preview and token, (email, _text(fragment))
    response = client.post("/plan/confirm/", {"preview": preview.group(1), "token": token.group(1)})
    assert response.status_code == 302 and response["Location"].startswith("/changes/"), email
    return _text(client.get(response["Location"]).content.decode())


def _plan_of(email: str) -> str | None:
    sub = Subscription.objects.select_related("price").get(customer__email=email)
    return sub.price.lookup_key if sub.price else None


@pytest.mark.django_db
def test_the_plan_changes_the_readme_suggests_work_with_those_logins(
    catalog: None, django_capture_on_commit_callbacks: Any
) -> None:
    demo.seed()
    with django_capture_on_commit_callbacks(execute=True):
        upgraded = _change("ada@example.com", "pro_month_eur", "now")
        approval = _change("barbara@example.com", "standard_month_eur", "now")
        declined = _change("dennis@example.com", "pro_month_eur", "now")
        at_renewal = _change("edsger@example.com", "basic_month_eur", "renewal")
        cancel_page = _page("linus@example.com", "/plan/")
        token = re.search(r'name="token" value="([^"]+-c)"', cancel_page)
        assert token is not None
        cancelled = _client("linus@example.com").post(
            "/plan/scheduled/cancel/", {"token": token.group(1)}, follow=True
        )

    assert "Done: your plan is now Pro (monthly)." in upgraded
    assert _plan_of("ada@example.com") == "pro_month_eur"
    assert "Your bank wants you to approve the payment" in approval
    assert _plan_of("barbara@example.com") == "basic_month_eur"
    assert "The bank declined the payment" in declined
    assert _plan_of("dennis@example.com") == "standard_month_eur"
    # Edsger reads the portal in Dutch: "changes to Basic (monthly) on …; nothing is charged now".
    assert "Basic (maandelijks)" in at_renewal and "Er wordt nu niets afgeschreven." in at_renewal
    assert Subscription.objects.get(customer__email="edsger@example.com").scheduled_price is not None
    assert cancelled.status_code == 200
    linus = Subscription.objects.get(customer__email="linus@example.com")
    assert linus.scheduled_price is None and _plan_of("linus@example.com") == "pro_month_eur"


@pytest.mark.urls(__name__)
def test_mailbox_shows_non_ascii_text_and_html_links_open_outside_the_frame(
    tmp_path: Path, settings: Any
) -> None:
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path
    message = EmailMultiAlternatives(
        subject="Betalning mottagen", body="Vi har tagit emot 19,00 €. Tack!", to=["astrid@example.com"]
    )
    message.attach_alternative(
        '<!doctype html><html lang="sv"><body><a href="http://127.0.0.1:8000/">Se ditt abonnemang</a></body></html>',
        "text/html",
    )
    message.send()

    browser = Client()
    listing = browser.get("/dev/mailbox/").content.decode()
    assert "Vi har tagit emot 19,00 €. Tack!" in listing
    link = re.search(r'<a href="(/dev/mailbox/[^"]+/)">Betalning mottagen</a>', listing)
    assert link is not None

    one = browser.get(link.group(1)).content.decode()
    # The HTML part sits in a sandboxed iframe; its links must navigate the window, not the frame.
    assert "&lt;base target=&quot;_top&quot;&gt;" in one
    assert "Se ditt abonnemang" in one


@pytest.mark.urls(__name__)
def test_mailbox_lists_text_messages_newest_first_beside_the_emails_with_their_links(
    tmp_path: Path, settings: Any
) -> None:
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path / "mailbox"
    settings.BILLING_SMS_BACKEND = "billing.sms.FileSmsBackend"
    settings.BILLING_SMS_FILE_PATH = tmp_path / "sms"
    browser = Client()

    empty = browser.get("/dev/mailbox/").content.decode()
    assert "No emails yet." in empty and "No text messages yet." in empty

    channels.send(
        channel=Channel.SMS,
        to="+46701234567",
        rendered=Rendered(subject="", text="Din paus slutar snart: http://127.0.0.1:8000/plan/", html=""),
    )
    channels.send(
        channel=Channel.SMS,
        to="+31612345678",
        rendered=Rendered(subject="", text="Je pauze eindigt binnenkort. Tack & <tot ziens>", html=""),
    )
    EmailMultiAlternatives(subject="Betalning mottagen", body="Tack!", to=["astrid@example.com"]).send()

    listing = browser.get("/dev/mailbox/").content.decode()
    emails, texts = listing.split('<h2 id="mailbox-texts">')
    assert '<h2 id="mailbox-emails">Emails</h2>' in emails and "Betalning mottagen" in emails
    assert texts.startswith("Text messages</h2>")
    # Newest first, as the emails.
    assert texts.index("To +31612345678") < texts.index("To +46701234567")
    assert texts.count('data-test="text"') == 2
    assert '<a href="http://127.0.0.1:8000/plan/" rel="nofollow">http://127.0.0.1:8000/plan/</a>' in texts
    assert "Tack &amp; &lt;tot ziens&gt;" in texts  # the text as written, never as markup
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d', texts)


def _reminders_before_charges_are_sent() -> None:
    """The demo runs the pre-dunning job: grace hears that her card expires before her next
    payment (with a link that adds a card without a password), edsger and astrid that their
    quarterly and yearly subscriptions renew; nobody else gets a reminder."""
    reminders = Delivery.objects.filter(message__in=("card_expiring", "renewal_upcoming"), channel="email")
    assert sorted(reminders.values_list("customer__email", "message", "status")) == [
        ("astrid@example.com", "renewal_upcoming", "sent"),
        ("edsger@example.com", "renewal_upcoming", "sent"),
        ("grace@example.com", "card_expiring", "sent"),
    ]
    (email,) = [m for m in mail.outbox if "grace@example.com" in m.to and "expires before" in m.subject]
    (link,) = re.findall(r"https?://[^\s\"'<>]+/l/[0-9a-z]+-[A-Za-z0-9_-]{22}/", email.body)
    browser = Client()
    assert browser.get(link).status_code == 200
    assert browser.post(link)["Location"] == "/cards/add/"
    assert browser.get("/cards/add/").status_code == 200
    (renewal,) = [m for m in mail.outbox if "edsger@example.com" in m.to]
    assert "/plan/" in renewal.body and "/cancel/" in renewal.body
